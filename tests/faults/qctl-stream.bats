#!/usr/bin/env bats
# Faults under qctl on Redis Streams (issue 12 §3): kill -9 of consume at
# random points, while handlers succeed and while they dead-letter.  Every
# entry is either acked after a successful handler, or still pending and
# claimed again once the visibility timeout has passed; a dead letter is in
# exactly one of the two streams.  Counted with redis-cli.  A private
# redis-server (no broker is needed).

bats_require_minimum_version 1.5.0
: "${CQ_REDIS_URL:=redis://127.0.0.1:1/0}" "${CQ_AMQP_URL:=amqp://guest:guest@127.0.0.1:1/%2f}"
export CQ_REDIS_URL CQ_AMQP_URL
load ../test_helper

setup_file() {
	local dir=$BATS_FILE_TMPDIR/redis port i
	mkdir -p "$dir"
	port=$(free_port)
	redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
		--daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
		--dir "$dir" >/dev/null
	for i in $(seq 100); do
		[ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ] && break
		sleep 0.05
	done
	export CQ_REDIS_URL=redis://127.0.0.1:$port/0
}

teardown_file() {
	local pidf=$BATS_FILE_TMPDIR/redis/redis.pid
	[ -f "$pidf" ] && kill "$(cat "$pidf")" 2>/dev/null
	return 0
}

per_test_setup() {
	export CQ_QUEUE_BACKEND=stream
	K="$P$Q"
	rcli XGROUP CREATE "$K" qctl 0 MKSTREAM >/dev/null
}

per_test_teardown() {
	redis_cluster_stop "$BATS_FILE_TMPDIR/rc"
}

peer() { node "$TOP/bench/peers/ioredis-stream.js" "$@"; }

# The ids of the stream's entries the group has acked: delivered (up to
# last-delivered-id) and not pending.
acked_ids() {
	local last
	last=$(rcli XINFO GROUPS "$K" | awk 'prev == "last-delivered-id" { print; exit } { prev = $0 }')
	rcli XPENDING "$K" qctl - + 100000 | awk 'NR % 4 == 1' | sort >"$TMP/pending"
	rcli XRANGE "$K" - "$last" | awk '/^[0-9]+-[0-9]+$/' | sort |
		comm -23 - "$TMP/pending"
}

# The body field of every entry of the streams given.
bodies() {
	local k
	for k in "$@"; do
		rcli XRANGE "$k" - + | awk 'p == "body" { print } { p = $0 }'
	done
}

# Stop the handlers a killed consumer left (each wrote its pid).
reap_handlers() {
	local p
	for p in $(cat "$TMP"/pids 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
	: >"$TMP/pids"
}

@test "stream faults: kill -9 at random points: every acked entry was handled, the rest come back" {
	peer produce "$CQ_REDIS_URL" "$K" 400
	local round
	for round in 1 2 3 4 5 6; do
		qctl consume -j 4 --visibility-timeout 1s --exec '
			echo $$ >>"$TMP/pids"; cat >/dev/null
			sleep 0.0$((RANDOM % 3)); echo "$CQ_MESSAGE_ID" >>"$TMP/marks"' "$Q" \
			>/dev/null 2>>"$TMP/err" &
		local pid=$!
		sleep "0.$((2 + RANDOM % 6))"
		kill -9 "$pid"
		wait "$pid" || true
		reap_handlers
		# every entry acked so far had a handler that succeeded
		sort -u "$TMP/marks" >"$TMP/marked"
		run comm -23 <(acked_ids) "$TMP/marked"
		assert_output ""
	done
	# a consumer after them claims what the dead ones held (exit 1 when
	# the rounds had left nothing)
	sleep 1
	run qctl consume -j 4 --visibility-timeout 1s --idle-timeout 2s --exec \
		'cat >/dev/null; echo "$CQ_MESSAGE_ID" >>"$TMP/marks"' "$Q"
	[ "$status" -le 1 ] || { echo "$output"; false; }
	assert_equal "$(rcli XPENDING "$K" qctl | head -n1)" 0
	assert_equal "$(acked_ids | wc -l)" 400
	assert_equal "$(sort -u "$TMP/marks" | wc -l)" 400
	# duplicates: at most the entries in flight when each consumer died
	[ "$(wc -l <"$TMP/marks")" -le $((400 + 6 * 4)) ]
}

@test "stream faults: kill -9 while dead-lettering: each entry in exactly one stream" {
	peer produce "$CQ_REDIS_URL" "$K" 300
	local round ids
	for round in 1 2 3 4 5; do
		qctl consume -j 2 --visibility-timeout 1s --exec 'cat >/dev/null; exit 65' "$Q" \
			>/dev/null 2>>"$TMP/err" &
		local pid=$!
		sleep "0.$((1 + RANDOM % 5))"
		kill -9 "$pid"
		wait "$pid" || true
		assert_equal $(($(rcli XLEN "$K") + $(rcli XLEN "$K.dlq"))) 300
		# no dead letter's original is still in the stream
		ids=$(rcli XRANGE "$K.dlq" - + | awk 'prev == "x-cq-original-id" { print } { prev = $0 }')
		for id in $ids; do
			assert_equal "$(rcli XRANGE "$K" "$id" "$id")" ""
		done
	done
	sleep 1
	qctl consume --visibility-timeout 1s --idle-timeout 2s --exec 'exit 65' "$Q" 2>>"$TMP/err" || true
	assert_equal "$(rcli XLEN "$K")" 0
	assert_equal "$(rcli XLEN "$K.dlq")" 300
	assert_equal "$(rcli XPENDING "$K" qctl | head -n1)" 0
	assert_equal "$(rcli XRANGE "$K.dlq" - + | awk 'prev == "x-cq-original-id" { print } { prev = $0 }' | sort -u | wc -l)" 300
}

@test "stream faults: replay-dlq killed again and again loses nothing; duplicates stay within its window" {
	local n=3000 round
	# dead letters as consume leaves them (fields and reasons)
	peer produce "$CQ_REDIS_URL" "$K" "$n"
	qctl consume -q -j 4 --until-empty --exec 'cat >/dev/null; exit 65' "$Q" 2>/dev/null
	assert_equal "$(rcli XLEN "$K.dlq")" "$n"
	assert_equal "$(rcli XLEN "$K")" 0
	for round in 1 2 3 4 5 6; do
		qctl replay-dlq --window 100 "$Q.dlq" >>"$TMP/replays" 2>&1 &
		local pid=$!
		sleep "0.0$((1 + RANDOM % 9))"
		kill -9 "$pid" 2>/dev/null || true
		wait "$pid" || true
		# every message is in one stream or the other, or both
		bodies "$K" "$K.dlq" | sort -u >"$TMP/seen"
		assert_equal "$(wc -l <"$TMP/seen")" "$n"
	done
	# what the killed runs left (a run may have finished before its kill)
	if [ "$(rcli XLEN "$K.dlq")" -gt 0 ]; then
		qctl replay-dlq "$Q.dlq" 2>/dev/null
	fi
	assert_equal "$(rcli XLEN "$K.dlq")" 0
	assert_equal "$(bodies "$K" | sort -u | wc -l)" "$n"
	# a copy made again only for what was in flight when each run died,
	# and the confirmed copies whose deletes were batched (qctl(1))
	[ "$(rcli XLEN "$K")" -le $((n + 6 * (100 + 128))) ]
}

@test "stream faults: on a Redis Cluster a dead-letter stream off the queue's hash slot is refused up front, naming the one that works" {
	redis_cluster_start "$BATS_FILE_TMPDIR/rc" --replicas 0
	local port=${CQ_REDIS_CLUSTER_PORTS%% *}
	redis-cli -c -p "$port" XGROUP CREATE "$K" qctl 0 MKSTREAM >/dev/null
	seq 1 20 | qctl enqueue -q "$Q"
	run -64 --separate-stderr qctl consume -e 'exit 3' --max-retries 0 --until-empty "$Q"
	assert_equal "$stderr" "qctl: consume: dead-letter stream '$Q.dlq' is not on the hash slot of queue '$Q' in this Redis Cluster: give it the queue's hash tag (--dlq '{$K}.dlq')"
	assert_equal "$(redis-cli -c -p "$port" --raw XPENDING "$K" qctl | head -1)" 0
	run -0 --separate-stderr qctl consume -e '[ "$(cat)" -gt 3 ]' --max-retries 0 --dlq "{$K}.dlq" --until-empty "$Q"
	[[ "$stderr" == *"(17 acked, 0 retried, 3 dead-lettered)" ]]
	assert_equal "$(redis-cli -c -p "$port" XLEN "$P{$K}.dlq")" 3
}
