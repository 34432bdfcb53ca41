#!/usr/bin/env bats
# Faults under qctl on Redis list queues (issue 12 §2): consumers and
# replays killed with SIGKILL at random points, a consumer killed beside a
# live one, Redis going away (under a stream consumer too), and a Redis Cluster.  Nothing is ever lost: each message is acked only after
# its handler succeeded (or its output was flushed), or is back in the
# queue once the dead consumer's lease expired.  Counted with redis-cli.
# A private sandbox: one test stops its redis-server.

bats_require_minimum_version 1.5.0
load fault_helper

export CQ_QUEUE_BACKEND=list

per_test_setup() {
	unset CQ_PREFIX
}

per_test_teardown() {
	kill_consumer_and_handlers
	redis_cluster_stop "$SB"
	sb_heal
}

# Everything the queue's consumers hold: the queue and every processing
# list in the registry, one body per line.
in_redis() {
	local proc
	rcli LRANGE "$Q" 0 -1
	for proc in $(rcli SMEMBERS "{$Q}|cq:consumers"); do
		rcli LRANGE "$proc" 0 -1
	done
}

# A handler that records its body (one write: lines never interleave) and
# its process group (for teardown), after a short random pause.
HANDLER='echo $$ >>"$TMP/handlers"; b=$(cat); sleep 0.0$((RANDOM % 5)); echo "$b" >>"$TMP/done"'

@test "list faults: consume killed with SIGKILL at random points loses nothing" {
	local n=1000 round dup
	rcli LPUSH "$Q" $(seq -f 'm%g' 1 $n) >/dev/null
	: >"$TMP/done"
	for round in 1 2 3 4 5 6; do
		# handlers (killed 0.1-0.4s in), or printing with acks after
		# each flush (killed 10-60ms in)
		if ((round % 2)); then
			qctl consume -q -j 4 --lease 1s -e "$HANDLER" "$Q" 2>>"$TMP/err" &
			BGPID=$!
			sleep "0.$((RANDOM % 4 + 1))"
		else
			qctl consume -q --prefetch 4 --lease 1s "$Q" >>"$TMP/done" 2>>"$TMP/err" &
			BGPID=$!
			sleep "0.0$((RANDOM % 6 + 1))"
		fi
		kill -9 "$BGPID"
		wait "$BGPID" 2>/dev/null || true
		BGPID=
		sleep 0.1	# orphaned handlers finish their write
		# each message is done, or in Redis (the queue or a processing list)
		note "round $round: $(sort -u "$TMP/done" | grep -c .) done, $(in_redis | grep -c .) in Redis"
		run -0 sort -u "$TMP/done" <(in_redis)
		assert_equal "${#lines[@]}" $n
	done
	# the dead consumers' leases expire: the next consumer recovers all
	sleep 1.1
	run --separate-stderr qctl consume -j 4 --until-empty -e "$HANDLER" "$Q"
	[ "$status" -le 1 ]
	run -0 sort -u "$TMP/done"
	assert_equal "${#lines[@]}" $n
	run -0 rcli EXISTS "$Q" "{$Q}|cq:consumers"
	assert_output 0
	# duplicates only from windows cut short: at most 4 per kill (4
	# handlers, or --prefetch 4 printed and not yet acked)
	dup=$(($(grep -c . "$TMP/done") - n))
	note "$dup duplicates after 6 kills"
	[ "$dup" -le $((6 * 4)) ]
}

@test "list faults: a live consumer's messages are never taken; once it is killed they come back" {
	rcli LPUSH "$Q" $(seq -f 'm%g' 1 20) >/dev/null
	# A holds m1 and m2 in handlers that outlive its lease many times over
	qctl consume -j 2 --lease 1s -e 'echo $$ >>"$TMP/handlers"; cat >/dev/null; sleep 60' \
		"$Q" 2>"$TMP/a.err" &
	BGPID=$!
	wait_for 10 test -s "$TMP/handlers"
	wait_for 10 eval '[ "$(wc -l <"$TMP/handlers")" = 2 ]'
	# B prints the rest and keeps looking for 3 seconds: A's lease is
	# renewed while its handlers run, so B never takes m1 or m2
	qctl consume --lease 1s --idle-timeout 3s "$Q" >"$TMP/b1" 2>/dev/null
	run -0 cat "$TMP/b1"
	assert_output "$(seq -f 'm%g' 3 20)"
	run -0 rcli LLEN "$(rcli SMEMBERS "{$Q}|cq:consumers")"
	assert_output 2
	# A dies: B recovers its two, A being known gone (same host, its
	# pid ended; B looks every second while idle)
	kill -9 "$BGPID"
	wait "$BGPID" 2>/dev/null || true
	BGPID=
	run -0 --separate-stderr qctl consume --lease 1s --idle-timeout 3s "$Q"
	assert_output "$(printf 'm1\nm2')"
	[[ "$stderr" == *"recovered 2 messages of a consumer that is gone (its process ended)"* ]]
}

@test "list faults: replay-dlq killed with SIGKILL again and again loses nothing; duplicates stay within its window and batch" {
	local n=3000 round dup dlq="$Q.dlq"
	rcli LPUSH "$dlq" $(seq -f 'd%g' 1 $n) >/dev/null
	for round in 1 2 3 4 5 6; do
		qctl replay-dlq -q --to "$Q" --window 50 --rate 2000 "$dlq" 2>>"$TMP/err" &
		BGPID=$!
		sleep "0.$((RANDOM % 3 + 1))"
		kill -9 "$BGPID" 2>/dev/null || true	# it may have finished
		wait "$BGPID" 2>/dev/null || true
		BGPID=
		# each is in the queue, the DLQ, or a killed replay's processing list
		run -0 sort -u <(rcli LRANGE "$Q" 0 -1) <(rcli LRANGE "$dlq" 0 -1) \
			<(for p in $(rcli SMEMBERS "{$dlq}|cq:consumers"); do rcli LRANGE "$p" 0 -1; done)
		note "round $round: $(rcli LLEN "$Q") in the queue, $(rcli LLEN "$dlq") in the DLQ"
		assert_equal "${#lines[@]}" $n
	done
	# the next replay takes back what the killed ones held, and finishes
	run -0 --separate-stderr qctl replay-dlq --to "$Q" "$dlq"
	run -0 rcli EXISTS "$dlq" "{$dlq}|cq:consumers" "{$dlq}|cq:meta"
	assert_output 0
	run -0 sort -u <(rcli LRANGE "$Q" 0 -1)
	assert_equal "${#lines[@]}" $n
	# qctl(1): at most twice the window (in flight, and removals waiting
	# for the next take) plus the 128 removals batched, per kill
	dup=$(($(rcli LLEN "$Q") - n))
	note "$dup duplicates after 6 kills (window 50)"
	[ "$dup" -le $((6 * (2 * 50 + 128))) ]
}

@test "list and stream faults: Redis going away under a running handler: exit 75, the message named not acked, counted 0, no busy wait" {
	local b user sys
	for b in list stream; do
		qctl declare -q --backend "$b" "$Q.$b"
		qctl enqueue -q --backend "$b" "$Q.$b" job
		: >"$TMP/handlers"
		# the handler outlives the server by 2 s; its ack is never sent
		( TIMEFORMAT='%3U %3S' rc=0
		  time qctl consume --backend "$b" "$Q.$b" \
			-e 'echo $$ >>"$TMP/handlers"; cat >/dev/null; while [ ! -e "$TMP/stopped" ]; do sleep 0.05; done; sleep 2' \
			>"$TMP/out" 2>"$TMP/err" || rc=$?
		  echo "$rc" >"$TMP/rc" ) 2>"$TMP/cpu" &
		BGPID=$!
		wait_for 10 test -s "$TMP/handlers"
		sb stop-redis
		touch "$TMP/stopped"
		wait "$BGPID" || true
		BGPID=
		rm -f "$TMP/stopped"
		cat "$TMP/err"
		assert_equal "$(cat "$TMP/rc")" 75
		# named: a list message by its body (it has no id), an entry by its id
		grep -Eq "^qctl: consume: message (with no id \('job'\)|'[0-9]+-[0-9]+') handled but not acked: the connection is gone \(it comes back, redelivered\)$" "$TMP/err"
		grep -q "^qctl: consume: consumed 0 messages in .* (0 acked, 0 retried, 0 dead-lettered)$" "$TMP/err"
		grep -q "^qctl: consume: Redis at 127.0.0.1:[0-9]* closed the connection$" "$TMP/err"
		# the closed socket is not polled in a loop while the handler runs
		read -r user sys <"$TMP/cpu"
		echo "$b: cpu $user user, $sys sys"
		awk -v u="$user" -v s="$sys" 'BEGIN { exit !(u + s < 0.5) }'
		sb start-redis
	done
}

@test "list and stream faults: a single Redis going away while consume waits idle (BLMOVE, XREADGROUP BLOCK): exit 75 at once, naming it" {
	local b
	for b in list stream; do
		qctl declare -q --backend "$b" "$Q.$b"
		qctl enqueue -q --backend "$b" "$Q.$b" job
		# Redis stops once the message is handled and consume waits again
		( wait_for 10 test -s "$TMP/out.$b" && sleep 0.5 && sb stop-redis ) 3>&- &
		BGPID=$!
		SECONDS=0
		run -75 --separate-stderr timeout 20 qctl consume --backend "$b" -e "cat >>'$TMP/out.$b'" "$Q.$b"
		wait "$BGPID"
		BGPID=
		echo "$b: ${SECONDS}s; $stderr"
		# not waited for as a lost master is (3x --timeout): there is none other
		[ "$SECONDS" -lt 5 ]
		assert_equal "$(cat "$TMP/out.$b")" job
		[[ ${stderr_lines[0]} == "qctl: consume: consumed 1 message in "*" (1 acked, 0 retried, 0 dead-lettered)" ]]
		[[ ${stderr_lines[1]} =~ ^qctl:\ consume:\ Redis\ at\ 127\.0\.0\.1:[0-9]+\ closed\ the\ connection$ ]]
		[ "${#stderr_lines[@]}" -eq 2 ]
		sb start-redis
	done
}

@test "list faults: on a Redis Cluster every step stays on the queue's slot; a dead-letter list off it is refused, naming the one that works" {
	redis_cluster_start "$SB" --replicas 0
	seq 1 100 | qctl enqueue -q "$Q"
	run -64 --separate-stderr qctl consume -e 'exit 3' --max-retries 0 --until-empty "$Q"
	assert_equal "$stderr" "qctl: consume: dead-letter list '$Q.dlq' is not on the hash slot of queue '$Q' in this Redis Cluster: give it the queue's hash tag (--dlq '{$Q}.dlq')"
	run -0 --separate-stderr qctl consume -e '[ "$(cat)" -gt 3 ]' --max-retries 0 --dlq "{$Q}.dlq" --until-empty "$Q"
	[[ "$stderr" == *"(97 acked, 0 retried, 3 dead-lettered)" ]]
	run -0 --separate-stderr qctl replay-dlq --to "$Q" "{$Q}.dlq"
	run -0 --separate-stderr qctl consume --until-empty "$Q"
	assert_output "$(printf '1\n2\n3')"
}

@test "list faults: replay-dlq --filter on a Redis Cluster moves every match and leaves the rest, nothing held" {
	redis_cluster_start "$SB" --replicas 0
	seq 1 3000 | qctl enqueue -q "{$Q}.dlq"
	# the acks given while the copies' replies are read (every one,
	# with a filter) go out with the next take: each read back in turn
	run -0 --separate-stderr qctl replay-dlq --to "$Q" --filter 'body:[02468]$' "{$Q}.dlq"
	[[ "$stderr" == *"replayed 1500 to '$Q' (1500 skipped, 0 failed) in "* ]]
	hp=${CQ_REDIS_URL#redis://}
	hp=${hp%%,*}
	run -0 redis-cli -c -h "${hp%:*}" -p "${hp##*:}" LLEN "$Q"
	assert_output 1500
	run -0 redis-cli -c -h "${hp%:*}" -p "${hp##*:}" LLEN "{$Q}.dlq"
	assert_output 1500
	run -0 redis-cli -c -h "${hp%:*}" -p "${hp##*:}" EXISTS "{$Q}.dlq|cq:consumers"
	assert_output 0
}
