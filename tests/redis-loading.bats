#!/usr/bin/env bats
# A Redis just restarted answers -LOADING until its RDB is read: cq waits
# for it as for a lost node (up to 3x --timeout), then goes on, or exits 75
# naming the server and "loading".  Each test owns a private redis-server
# that loads its dataset slowly (key-load-delay); `CONFIG SET
# key-load-delay 0` (allowed while loading) ends the loading on demand.

bats_require_minimum_version 1.5.0
load test_helper

# Stop the private server at once (SHUTDOWN NOSAVE; the exited process
# may linger unreaped a second or more: its pid file says it is gone).
loading_stop() {
	[ -f "${PRIV_PID:-}" ] || return 0
	pcli SHUTDOWN NOSAVE >/dev/null 2>&1
	wait_for 5 test ! -f "$PRIV_PID"
}
per_test_teardown() { loading_stop; }

# Restart the private server so that it loads $1 keys (${P}1..) and the
# list $Q (m1 m2; prefixed) from its RDB, about $2 microseconds a key: it
# answers -LOADING meanwhile.
loading_start() {
	local keys=$1 delay=$2 dir=$BATS_TEST_TMPDIR/priv-redis i
	priv_redis_start --tcp
	pcli EVAL "for i = 1, $keys do redis.call('SET', KEYS[1] .. i, i) end
		redis.call('LPUSH', KEYS[2], 'm1', 'm2')" 2 "$P" "$P$Q" >/dev/null
	pcli SAVE >/dev/null
	loading_stop
	redis-server --port "$PRIV_PORT" --bind 127.0.0.1 --unixsocket "$PRIV_SOCK" \
		--save '' --appendonly no --daemonize yes --pidfile "$PRIV_PID" \
		--logfile "$dir/redis.log" --dir "$dir" --key-load-delay "$delay" \
		--loading-process-events-interval-bytes 1024 >/dev/null
	for i in $(seq 100); do
		[[ $(pcli PING 2>/dev/null) == LOADING* ]] && return 0
		sleep 0.05
	done
	echo "the private redis-server is not loading" >&2
	return 1
}

loading_end() { pcli CONFIG SET key-load-delay 0 >/dev/null; }

# Is the private server still loading?  Done?
loading() { [ "$(pcli INFO persistence | tr -d '\r' | sed -n 's/^loading://p')" = 1 ]; }
loaded() { [ "$(pcli PING)" = PONG ]; }
# Does the private server hold at least $1 keys?
priv_holds() { [ "$(pcli DBSIZE)" -ge "$1" ]; }

# $BGPID, started on the loading server, is still waiting half a second
# later, the server still loading; once the loading ends it finishes with
# exit 0 (its stderr, $TMP/err, shown).
waited_out() {
	local rc=0
	sleep 0.5
	loading
	kill -0 "$BGPID"
	loading_end
	wait "$BGPID" || rc=$?
	BGPID=
	cat "$TMP/err"
	assert_equal "$rc" 0
}

@test "get while Redis loads its dataset waits, then prints the value once loaded" {
	loading_start 3000 1000
	export CQ_REDIS_URL=$PRIV_URL
	cachectl --timeout 2s get 7 >"$TMP/out" 2>"$TMP/err" &
	BGPID=$!
	waited_out
	assert_equal "$(cat "$TMP/out")" 7
	[ ! -s "$TMP/err" ]
}

@test "get and warm give up on a Redis still loading after 3x --timeout: exit 75 naming it and 'loading'" {
	loading_start 3000 1000
	export CQ_REDIS_URL=$PRIV_URL
	local re="Redis at 127\.0\.0\.1:$PRIV_PORT was still loading its dataset into memory after [0-9.]+s"
	run -75 --separate-stderr cachectl --timeout 200ms get 7
	assert_output ""
	[[ $stderr =~ ^"cachectl: get: get '7': LOADING: "$re$ ]]
	printf 'w1\tv\nw2\tv\n' >"$TMP/in"
	run -75 --separate-stderr cachectl --timeout 200ms warm --ttl 1h "$TMP/in"
	[[ ${stderr%%$'\n'*} =~ ^"cachectl: warm: LOADING: "$re$ ]]
	loading
	loading_end
	wait_for 10 loaded
	run -0 pcli DBSIZE
	assert_output 3001
}

@test "warm started while Redis loads waits, then writes every line" {
	loading_start 3000 1000
	export CQ_REDIS_URL=$PRIV_URL
	seq 1 500 | awk '{ printf "w%d\tv%d\n", $1, $1 }' >"$TMP/in"
	cachectl --timeout 2s warm --ttl 1h "$TMP/in" 2>"$TMP/err" &
	BGPID=$!
	waited_out
	grep -q "^warmed 500 keys in .* (0 skipped, 0 failed)$" "$TMP/err"
	run -0 pcli DBSIZE
	assert_output 3501
	run -0 pcli GET "${P}w500"
	assert_output v500
}

@test "a list consumer started while Redis loads waits, then takes the messages" {
	loading_start 3000 1000
	export CQ_REDIS_URL=$PRIV_URL
	qctl --timeout 2s consume --backend list --count 2 --idle-timeout 5s "$Q" >"$TMP/out" 2>"$TMP/err" &
	BGPID=$!
	waited_out
	assert_equal "$(cat "$TMP/out")" $'m1\nm2'
	run -0 pcli LLEN "$P$Q"
	assert_output 0
}

@test "SIGTERM ends a wait on a loading Redis between two pauses: warm exits 75 saying so, a consumer 0 with its summary" {
	loading_start 3000 2000
	export CQ_REDIS_URL=$PRIV_URL
	local rc=0 t0
	printf 'w1\tv\n' >"$TMP/in"
	cachectl --timeout 10s warm --ttl 1h "$TMP/in" 2>"$TMP/err" &
	BGPID=$!
	qctl --timeout 10s consume --backend list "$Q" >"$TMP/out" 2>"$TMP/cerr" &
	local cpid=$!
	sleep 0.5
	loading
	t0=$(date +%s%N)
	kill -TERM "$BGPID" "$cpid"
	wait "$BGPID" || rc=$?
	BGPID=
	cat "$TMP/err"
	assert_equal "$rc" 75
	# a pause is 0.2 s: out long before the 30 s the wait could last
	[ $(( ($(date +%s%N) - t0) / 1000000 )) -lt 1000 ]
	[[ $(head -1 "$TMP/err") =~ ^"cachectl: warm: LOADING: Redis at 127.0.0.1:$PRIV_PORT was still loading its dataset into memory after "[0-9.]+"s (the wait for it was stopped by SIGTERM)"$ ]]
	grep -qx "cachectl: warm: 0 keys not confirmed written; lines from 1 on not read" "$TMP/err"
	rc=0
	wait "$cpid" || rc=$?
	cat "$TMP/cerr"
	assert_equal "$rc" 0
	grep -q "^qctl: consume: consumed 0 messages in " "$TMP/cerr"
	[ ! -s "$TMP/out" ]
	# nothing was written or taken meanwhile
	loading
	loading_end
	wait_for 10 loaded
	run -0 pcli DBSIZE
	assert_output 3001
	run -0 pcli LLEN "$P$Q"
	assert_output 2
}

@test "a single Redis that starts loading mid-run (DEBUG RELOAD): warm and a list enqueue send again what was refused with LOADING; exit 0, nothing lost or doubled; a replay loses nothing either" {
	# (sent again only when no command on its key was answered since:
	# see "a line refused with LOADING is not sent again behind a later
	# one on its key" below)
	local rc=0 i moved
	priv_redis_start --tcp --enable-debug-command local \
		--loading-process-events-interval-bytes 1024
	pcli EVAL "for i = 1, 2000 do redis.call('SET', KEYS[1] .. i, i) end" 1 "$P" >/dev/null
	seq 1 10000 | awk '{ printf "w%d\tv%d\n", $1, $1 }' >"$TMP/in"
	cachectl --redis "$PRIV_URL" --timeout 2s warm --ttl 1h --rate 5000 "$TMP/in" 2>"$TMP/err" &
	BGPID=$!
	# 100 messages every 50 ms
	for i in $(seq 0 49); do seq $((i * 100 + 1)) $((i * 100 + 100)); sleep 0.05; done |
		qctl --redis "$PRIV_URL" --timeout 2s enqueue --backend list "$Q" 2>"$TMP/qerr" &
	local qpid=$!
	# and a replay, whose writes go right behind its takes
	seq 1 5000 | qctl --redis "$PRIV_URL" enqueue -q --backend list "$Q.r.dlq"
	qctl --redis "$PRIV_URL" --timeout 2s replay-dlq --backend list --rate 2500 "$Q.r.dlq" 2>"$TMP/rerr" &
	local rpid=$!
	wait_for 10 priv_holds 2500
	# about 1 s of loading (the keys so far, 300 us each): the writes
	# meanwhile are answered -LOADING
	pcli CONFIG SET key-load-delay 300 >/dev/null
	pcli DEBUG RELOAD >/dev/null
	pcli CONFIG SET key-load-delay 0 >/dev/null
	# all were still running: the reload was mid-run
	kill -0 "$BGPID"
	kill -0 "$qpid"
	kill -0 "$rpid"
	wait "$BGPID" || rc=$?
	BGPID=
	cat "$TMP/err"
	assert_equal "$rc" 0
	grep -q "^warmed 10000 keys in .* (0 skipped, 0 failed)$" "$TMP/err"
	run -0 pcli --scan --pattern "${P}w*"
	assert_equal "${#lines[@]}" 10000
	run -0 pcli GET "${P}w10000"
	assert_output v10000
	rc=0
	wait "$qpid" || rc=$?
	cat "$TMP/qerr"
	# should the reload end under a batch, its part refused is not sent
	# again behind its part answered (one key: the order would change):
	# those lines are named, exit 75; every other line is in, once
	named=$(sed -n 's/^qctl: enqueue: lines\{0,1\} \([0-9]*\)-\{0,1\}\([0-9]*\): not confirmed: .*/\1 \2/p' "$TMP/qerr" |
		awk '{ n += ($2 == "" ? 1 : $2 - $1 + 1) } END { print n + 0 }')
	if [ "$rc" = 75 ]; then
		[ "$named" -gt 0 ]
	else
		assert_equal "$rc" 0
	fi
	grep -q "^enqueued $((5000 - named)) messages in " "$TMP/qerr"
	run -0 pcli LLEN "$P$Q"
	assert_output $((5000 - named))
	[ "$(pcli LRANGE "$P$Q" 0 -1 | sort -un | wc -l)" = $((5000 - named)) ]
	# the replay's writes refused with LOADING are not sent again (a
	# take waits behind them): named and left in the DLQ, exit 75;
	# every message is in one of the two lists, once, nothing held
	rc=0
	wait "$rpid" || rc=$?
	cat "$TMP/rerr"
	[ "$rc" = 0 ] || [ "$rc" = 75 ]
	moved=$(sed -n "s/^replayed \([0-9]*\) to '$Q.r' (0 skipped, [0-9]* failed) in .*/\1/p" "$TMP/rerr")
	run -0 pcli LLEN "$P$Q.r"
	assert_output "$moved"
	run -0 pcli LLEN "$P$Q.r.dlq"
	assert_output $((5000 - moved))
	[ "$( (pcli LRANGE "$P$Q.r" 0 -1; pcli LRANGE "$P$Q.r.dlq" 0 -1) | sort -un | wc -l)" = 5000 ]
	[ -z "$(pcli --scan --pattern "*$Q.r*processing*")" ]
}

@test "a line refused with LOADING is not sent again behind a later one on its key: warm ends with each key's last value, or names the line" {
	local rc=0
	priv_redis_start --tcp --enable-debug-command local \
		--loading-process-events-interval-bytes 1048576
	# each key twice, old then new; long lines, so that a batch is read
	# by the server in several parts and the reload can end inside one
	seq 1 100000 | awk 'BEGIN { pad = sprintf("%0400d", 0) }
		{ printf "w%d\told%s\nw%d\tnew%s\n", $1, pad, $1, pad }' >"$TMP/in"
	cachectl --redis "$PRIV_URL" --timeout 5s warm --ttl 1h "$TMP/in" 2>"$TMP/err" &
	BGPID=$!
	wait_for 10 priv_holds 20000
	pcli CONFIG SET key-load-delay 40 >/dev/null
	pcli DEBUG RELOAD >/dev/null
	pcli CONFIG SET key-load-delay 0 >/dev/null
	wait "$BGPID" || rc=$?
	BGPID=
	cat "$TMP/err"
	[ "$rc" = 0 ] || [ "$rc" = 75 ]
	# no key keeps its first line's value: an earlier line sent again
	# after a later one would have
	run -0 pcli EVAL "local n = 0 for _, k in ipairs(redis.call('KEYS', ARGV[1])) do if string.sub(redis.call('GET', k), 1, 3) ~= 'new' then n = n + 1 end end return n" 0 "${P}w*"
	assert_output 0
	run -0 pcli DBSIZE
	assert_output 100000
}
