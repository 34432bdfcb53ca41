#!/usr/bin/env bats
# Redis behind Sentinel losing its master (issue 11): kill -9 of the master
# during warm and during a loop of gets, on a private master, replica and 3
# sentinels (scripts/sandbox start-sentinel; down-after-milliseconds 1500).
# Counted with redis-cli on the master the sentinels name afterwards.

bats_require_minimum_version 1.5.0
load fault_helper
load ../sentinel_helper

# After a test: its consumers ($TMP/*pid.*) killed if a failure left them
# running; after one that killed the master, the dead node back as a replica;
# a master name a test gave the sentinels (DEAD_NAME) forgotten; a test's
# own sentinel set (OWN_SSB) stopped.
per_test_teardown() {
	local s f
	# a test's consumers left running (stopped, even) when it failed
	for f in "$TMP"/pid.* "$TMP"/lost-pid.*; do
		[ -e "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null
	done
	[ -z "${OWN_SSB:-}" ] || "$SANDBOX" --dir "$OWN_SSB" stop >/dev/null 2>&1 || true
	if [ -n "${DEAD_NAME:-}" ]; then
		for s in $CQ_SENTINEL_PORTS; do on "$s" SENTINEL REMOVE "$DEAD_NAME" >/dev/null 2>&1; done
	fi
	[ -n "${NO_HEAL:-}" ] ||
		"$SANDBOX" --dir "$SSB" sentinel-heal >>"$BATS_FILE_TMPDIR/sandbox.log" 2>&1 || true
}

# key $1 of this test is on the master (warm's progress, in one lookup)
master_has() { [ "$(on "$(master_port)" EXISTS "$P$1")" = 1 ]; }
# the sentinels name a master other than port $1 (they learn of a
# failover one after the other)
moved_from() { local m; m=$(master_port) && [ "$m" != "$1" ]; }
# wait for the background job; its exit code in rc
wait_bg() { rc=0; wait "$BGPID" || rc=$?; BGPID=; }
kill_master() { "$SANDBOX" --dir "$SSB" sentinel-kill-master 2>>"$BATS_FILE_TMPDIR/sandbox.log"; }
# key $1 of this test is on the private master
priv_has() { [ "$(pcli EXISTS "$P$1")" = 1 ]; }
# process $1 has ended (gone, or a zombie not waited for yet)
gone() {
	local st
	st=$(ps -o stat= -p "$1" 2>/dev/null)
	[ -z "$st" ] || [[ $st == Z* ]]
}

@test "kill -9 of the master during warm: warm carries on with the new master, every line written once" {
	local n=200000 old new rc
	seq 1 $n | awk '{ print "w" $1 "\tv" $1 }' >"$TMP/in"
	cachectl warm --ttl 1h --rate 100000 "$TMP/in" 2>"$TMP/err" &
	BGPID=$!
	wait_for 10 master_has w20000
	old=$(kill_master)
	wait_bg
	[ "$rc" -eq 0 ] || { cat "$TMP/err"; false; }
	wait_for 10 moved_from "$old"
	new=$(master_port)
	note "master $old killed, $new took over; $(cat "$TMP/err")"
	[ "$new" != "$old" ]
	# counted once each: no line failed, none counted twice
	[[ $(cat "$TMP/err") == "warmed $n keys in "*" (0 skipped, 0 failed)" ]]
	[ "$(count_on "$new")" -eq $n ]
	run -0 redis-cli -p "$new" --raw GET "${P}w$n"
	assert_output "v$n"
	# every key with its TTL: the db holds no key without one
	run -0 redis-cli -p "$new" --raw INFO keyspace
	[[ $output =~ db0:keys=([0-9]+),expires=([0-9]+) ]]
	[ "${BASH_REMATCH[1]}" -eq "${BASH_REMATCH[2]}" ]
}

@test "kill -9 of the master during a loop of gets: every get answers, with the right value" {
	local i old fails rc
	for i in $(seq 1 50); do printf 'g%d\tv%d\n' "$i" "$i"; done >"$TMP/in"
	run -0 cachectl warm -q --ttl 1h "$TMP/in"
	(
		i=0
		end=$((SECONDS + 8))
		while [ $SECONDS -lt $end ]; do
			i=$((i % 50 + 1))
			out=$(cachectl get "g$i" 2>&1)
			echo "$? g$i $out"
		done
	) >"$TMP/gets" &
	BGPID=$!
	sleep 1
	old=$(kill_master)
	wait_bg
	[ "$rc" -eq 0 ]
	wait_for 10 moved_from "$old"
	note "$(wc -l <"$TMP/gets") gets, master $old killed, now $(master_port)"
	[ "$(wc -l <"$TMP/gets")" -gt 20 ]
	fails=$(awk '$1 != 0 || $3 != "v" substr($2, 2)' "$TMP/gets")
	[ -z "$fails" ] || { echo "$fails"; false; }
}

@test "kill -9 of the master during warm --exec (one command at a time): every key written" {
	local n=40 old rc
	seq 1 $n | sed 's/^/e/' >"$TMP/keys"
	cachectl warm --keys "$TMP/keys" --exec 'sleep 0.1; echo "value of $1"' --ttl 1h 2>"$TMP/err" &
	BGPID=$!
	wait_for 10 master_has e5
	old=$(kill_master)
	wait_bg
	[ "$rc" -eq 0 ] || { cat "$TMP/err"; false; }
	wait_for 10 moved_from "$old"
	note "master $old killed, now $(master_port); $(cat "$TMP/err")"
	[[ $(cat "$TMP/err") == "warmed $n keys in "*" (0 skipped, 0 failed)" ]]
	[ "$(count_on "$(master_port)")" -eq $n ]
	run -0 on "$(master_port)" GET "${P}e$n"
	assert_output "value of e$n"
}

# the writes on port $1 so far are on its replica (a write, then WAIT,
# on one connection)
replicated() { [ "$(printf 'SET %s 1\nWAIT 1 2000\n' "${P}sync" | redis-cli -p "$1" --raw | tail -1)" = 1 ]; }

@test "kill -9 of the master under idle list and stream consumers (blocked in BLMOVE, XREADGROUP BLOCK): both carry on with the new master, every message consumed and acked once" {
	local b old new
	# each takes and acks its first message and waits, idle
	idle_consumers_start "$Q"
	sleep 0.5
	replicated "$(master_port)"
	old=$(kill_master)
	wait_for 15 moved_from "$old"
	new=$(master_port)
	# neither consumer gave up in its blocking read
	idle_consumers_carry_on "$Q"
	for b in list stream; do
		note "$b: master $old killed, $new took over; $(tr '\n' ' ' <"$TMP/err.$b")"
	done
	# on the new master: the list and every processing list empty, the
	# stream's entries all there and none pending
	run -0 on "$new" LLEN "$P$Q.list"
	assert_output 0
	[ -z "$(redis-cli -p "$new" --scan --pattern "*$P$Q.list*processing*" |
		while read -r k; do [ "$(on "$new" LLEN "$k")" = 0 ] || echo "$k"; done)" ]
	run -0 on "$new" XLEN "$P$Q.stream"
	assert_output 6
	run -0 on "$new" XPENDING "$P$Q.stream" qctl
	assert_line -n 0 0
}

# The log of the data node on port $1.
node_log() {
	local n=1 p
	for p in $CQ_SENTINEL_DATA_PORTS; do
		[ "$p" = "$1" ] && { echo "$SSB/sentinel/d$n/log"; return 0; }
		n=$((n + 1))
	done
	return 1
}

@test "a consumer's read answered by the master, the reply lost, then the master killed: the message is delivered in the consumer's life, once (list: back from its processing list; stream: its own pending entry read again)" {
	local m old new
	m=$(master_port)
	lost_reply_consumers_start "$Q"
	lost_reply_freeze "$m" "$(node_log "$m")" "$Q"
	# the master's moves are on the replica: then it dies
	replicated "$m"
	old=$(kill_master)
	wait_for 15 moved_from "$old"
	new=$(master_port)
	# the message waits for the list consumer in its processing list on
	# the new master, and pending under the stream consumer's name
	[ -n "$(redis-cli -p "$new" --scan --pattern "*$P$Q.list*processing*")" ]
	[ "$(on "$new" XPENDING "$P$Q.stream" qctl | head -1)" = 1 ]
	lost_reply_delivered "$old" "$Q"
	# on the new master: the list and every processing list empty, the
	# stream's entries all there and none pending
	run -0 on "$new" LLEN "$P$Q.list"
	assert_output 0
	[ -z "$(redis-cli -p "$new" --scan --pattern "*$P$Q.list*processing*")" ]
	run -0 on "$new" XPENDING "$P$Q.stream" qctl
	assert_line -n 0 0
}

@test "a list consumer's BLMOVE answered with a copy of a message it holds, the reply lost, the master the same: the copy goes back and is handled, the one held is kept" {
	local m try big pid rc n
	big=$(head -c 100000 /dev/zero | tr '\0' x)
	m=$(master_port)
	on "$m" LPUSH "$P$Q" "m$big" >/dev/null
	# the first handler fails: its message is held for a retry in 30 s
	# (in the processing list) while the consumer waits in BLMOVE for
	# the other job
	qctl consume --backend list -j 2 --retry-delay 30s \
		--exec "cut -c1 >>$TMP/got; [ -e $TMP/failed ] || { touch $TMP/failed; exit 3; }" \
		"$Q" 2>"$TMP/err" &
	pid=$!
	echo "$pid" >"$TMP/pid.list"
	wait_for 10 lines_at_least "$TMP/got" 1
	for try in 1 2 3 4 5 6; do
		[ "$try" -lt 6 ]
		drop_reply "$m" "$(node_log "$m")" "$P$Q" "m$big" blmove && break
		wait_for 10 lines_at_least "$TMP/got" $((try + 1))
	done
	# the copy dropped unanswered, in the processing list beside the
	# held one of the same body: given back, and handled
	n=$((try + 1))
	wait_for 10 lines_at_least "$TMP/got" "$n" || { cat "$TMP/err"; false; }
	kill -TERM "$pid"
	rc=0
	wait "$pid" || rc=$?
	note "$(tr '\n' ' ' <"$TMP/err")"
	[ "$rc" -eq 0 ] || { cat "$TMP/err"; false; }
	assert_equal "$(cat "$TMP/got")" "$(yes m | head -n "$n")"
	grep -q "^qctl: consume: consumed $n messages in .* ($((n - 1)) acked, 1 retried, 0 dead-lettered)$" "$TMP/err"
	grep -q "^qctl: consume: 1 message in processing list '[^']*cq:processing:[^']*' that this consumer never received (the connection to Redis at 127\.0\.0\.1:$m was lost before the reply came) went back to '$Q', to be delivered again$" "$TMP/err"
	# the held one went back for its retry at the stop: in the queue,
	# the processing list empty
	run -0 on "$m" LLEN "$P$Q"
	assert_output 1
	[ -z "$(redis-cli -p "$m" --scan --pattern "*$P$Q*processing*")" ]
}

# nothing pending in group qctl of this test's stream on port $1
none_pending() { [ "$(on "$1" XPENDING "$P$Q" qctl | head -1)" = 0 ]; }

@test "a stream consumer's XREADGROUP answered, the reply lost, the master the same: the entry is taken back, and the one a handler holds keeps its delivery count" {
	local m try big pid rc id
	big=$(head -c 100000 /dev/zero | tr '\0' x)
	m=$(master_port)
	qctl declare -q --backend stream "$Q"
	id=$(on "$m" XADD "$P$Q" '*' body h)
	# the first handler holds its entry until told; the other job waits
	# in XREADGROUP BLOCK, whose reply is dropped
	qctl consume --backend stream -j 2 \
		--exec "b=\$(cut -c1); echo \$b \$CQ_RETRIES >>$TMP/got; [ \$b != h ] || until [ -e $TMP/go ]; do sleep 0.05; done" \
		"$Q" 2>"$TMP/err" &
	pid=$!
	echo "$pid" >"$TMP/pid.stream"
	wait_for 10 lines_at_least "$TMP/got" 1
	for try in 1 2 3 4 5 6; do
		[ "$try" -lt 6 ]
		drop_reply "$m" "$(node_log "$m")" "$P$Q" "m$try$big" xreadgroup && break
		wait_for 10 lines_at_least "$TMP/got" $((try + 1))
	done
	# the dropped entry read again (its own pending entries) and handled
	wait_for 10 lines_at_least "$TMP/got" $((try + 1)) || { cat "$TMP/err"; false; }
	# the held entry was delivered once: reading the pending entries
	# again does not count a delivery of it (XPENDING's count)
	run -0 on "$m" XPENDING "$P$Q" qctl "$id" "$id" 1
	assert_line -n 3 1
	touch "$TMP/go"
	wait_for 10 none_pending "$m"
	# and the one taken back came as a first delivery, no retry
	assert_equal "$(cat "$TMP/got")" "$(printf 'h 0\nm 0\nm 0\nm 0\nm 0\nm 0\n' | head -n $((try + 1)))"
	kill -TERM "$pid"
	rc=0
	wait "$pid" || rc=$?
	note "$(tr '\n' ' ' <"$TMP/err")"
	[ "$rc" -eq 0 ] || { cat "$TMP/err"; false; }
	grep -q "^qctl: consume: 1 entry pending in group 'qctl' of stream '$Q' under this consumer's name ('.*') that it never received (the connection to Redis at 127\.0\.0\.1:$m was lost before the reply came): taken back$" "$TMP/err"
}

@test "a master lost that the sentinels still name (no replica to promote): SIGTERM ends warm's wait for it at once" {
	local s rc
	# a master of its own, watched by the sandbox's sentinels
	priv_redis_start --tcp
	DEAD_NAME="cqdead$$"
	for s in $CQ_SENTINEL_PORTS; do
		[ "$(on "$s" SENTINEL MONITOR "$DEAD_NAME" 127.0.0.1 "$PRIV_PORT" 2)" = OK ]
	done
	seq 1 2000 | awk '{ print "d" $1 "\tv" $1 }' >"$TMP/in"
	# --timeout 20s: the wait for a master would last a minute
	cachectl --timeout 20s warm --ttl 1h --rate 50 --window 1 \
		--redis "${CQ_REDIS_SENTINEL_URL%#*}#$DEAD_NAME" "$TMP/in" 2>"$TMP/err" &
	BGPID=$!
	wait_for 10 priv_has d5
	kill -9 "$(cat "$PRIV_PID")"
	sleep 1
	kill -TERM "$BGPID"
	wait_for 15 gone "$BGPID" || { cat "$TMP/err"; false; }
	wait_bg
	note "$(cat "$TMP/err")"
	[ "$rc" -eq 75 ]
	grep -q "^cachectl: warm: lost the master at 127\.0\.0\.1:$PRIV_PORT; " "$TMP/err"
}

@test "a master lost with every sentinel gone: warm exits 75 naming the lines not written; re-running them on the promoted replica completes the set" {
	local n=100000 lost from warmed s m replica rc
	seq 1 $n | awk '{ print "x" $1 "\tv" $1 }' >"$TMP/in"
	cachectl warm --ttl 1h --rate 50000 "$TMP/in" 2>"$TMP/err" &
	BGPID=$!
	wait_for 10 master_has x10000
	# the node that is master now (ROLE), whatever a sentinel still says
	for s in $CQ_SENTINEL_DATA_PORTS; do
		if [ "$(redis-cli -p "$s" --raw ROLE | head -1)" = master ]; then m=$s; else replica=$s; fi
	done
	for s in 1 2 3; do kill -9 "$(cat "$SSB/sentinel/s$s/pid")"; done
	NO_HEAL=1
	kill -9 "$(redis-cli -p "$m" INFO server | sed -n 's/^process_id:\([0-9]*\).*/\1/p')"
	wait_bg
	[ "$rc" -eq 75 ] || { echo "rc $rc"; cat "$TMP/err"; false; }
	note "$(cat "$TMP/err")"
	grep -Eq "^cachectl: warm: lost the master at 127\.0\.0\.1:$m; no sentinel answered \(asked .*\): " "$TMP/err"
	lost=$(sed -n 's/^cachectl: warm: \([0-9]*\) keys not confirmed written; lines from \([0-9]*\) on not read$/\1/p' "$TMP/err")
	from=$(sed -n 's/^cachectl: warm: \([0-9]*\) keys not confirmed written; lines from \([0-9]*\) on not read$/\2/p' "$TMP/err")
	warmed=$(sed -n 's/^warmed \([0-9]*\) keys in .* (0 skipped, \([0-9]*\) failed)$/\1/p' "$TMP/err")
	[ -n "$lost" ]
	[ -n "$from" ]
	[ -n "$warmed" ]
	[ "$warmed" -gt 0 ]
	[ $((warmed + lost + 1)) -eq "$from" ]
	# a reply counted only once the replica had the write: all there
	run -0 redis-cli -p "$replica" --raw EXISTS "${P}x1" "${P}x$warmed"
	assert_output 2
	[ "$(count_on "$replica")" -ge "$warmed" ]
	# promoted by hand, the replica takes the rest of the lines
	redis-cli -p "$replica" REPLICAOF NO ONE >/dev/null
	run -0 cachectl warm -q --ttl 1h --redis "redis://127.0.0.1:$replica/0" < <(tail -n +$((warmed + 1)) "$TMP/in")
	[ "$(count_on "$replica")" -eq $n ]
}

# stream $1 on the master holds at least $2 entries
stream_has() { [ "$(on "$(master_port)" XLEN "$1")" -ge "$2" ]; }

# each line of $1 from 1 to $2 is in stream $3 on port $4 or named in $5
# (qctl's "lines A-B: not confirmed", "line A: ...", "lines from N on")
every_line_kept_or_named() {
	local n=$2 named
	redis-cli -p "$4" --raw XRANGE "$3" - + | grep -x 'm[0-9]*' >"$TMP/kept" || true
	named=$(sed -n -e 's/^qctl: enqueue: lines \([0-9]*\)-\([0-9]*\): not confirmed: .*/\1 \2/p' \
		-e 's/^qctl: enqueue: line \([0-9]*\): not confirmed: .*/\1 \1/p' \
		-e "s/^qctl: enqueue: lines from \([0-9]*\) on: not sent\$/\1 $n/p" "$5")
	[ -n "$named" ]
	while read -r a b; do seq "$a" "$b"; done <<<"$named" | sed 's/^/m/' >>"$TMP/kept"
	[ "$(sort -u "$TMP/kept" | wc -l)" -eq "$n" ]
}

@test "a master lost with every sentinel gone: enqueue --backend stream exits 75, and each line is in the stream or named" {
	local q=st m s replica rc env	# the key is "${P}st" (CQ_PREFIX)
	# a master, replica and sentinels of its own: the suite's may be gone
	# (the test above kills them), and healing them would wait a minute
	# for sentinels that never answer
	OWN_SSB=$TMP/ssb NO_HEAL=1
	env=$("$SANDBOX" --dir "$OWN_SSB" start-sentinel 2>"$TMP/sandbox.log") || { cat "$TMP/sandbox.log"; false; }
	eval "$env"
	export CQ_REDIS_URL=$CQ_REDIS_SENTINEL_URL
	qctl declare --backend stream "$q"
	# lines 1-1000, then (once the master and sentinels are gone) the rest
	# (bats's fd 3 closed: a job left behind must not hold the run open)
	{
		seq 1 1000 | sed "s/^/m/"
		for _ in $(seq 300); do [ -e "$TMP/go" ] && break; sleep 0.1; done
		seq 1001 3000 | sed "s/^/m/"
	} 3>&- | qctl enqueue --backend stream --timeout 1 "$q" 2>"$TMP/err" 3>&- &
	BGPID=$!
	wait_for 10 stream_has "$P$q" 1000
	for s in $CQ_SENTINEL_DATA_PORTS; do
		if [ "$(redis-cli -p "$s" --raw ROLE | head -1)" = master ]; then m=$s; else replica=$s; fi
	done
	for s in 1 2 3; do kill -9 "$(cat "$OWN_SSB/sentinel/s$s/pid")"; done
	kill -9 "$(redis-cli -p "$m" INFO server | sed -n 's/^process_id:\([0-9]*\).*/\1/p')"
	touch "$TMP/go"
	wait_bg
	note "$(cat "$TMP/err")"
	[ "$rc" -eq 75 ] || { echo "rc $rc"; false; }
	grep -q 'lost the master at' "$TMP/err"
	# what the replica has plus what qctl named: every line
	every_line_kept_or_named m 3000 "$P$q" "$replica" "$TMP/err"
}
