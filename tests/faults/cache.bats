#!/usr/bin/env bats
# Faults on the cache side (issue 7): redis-server restarted under a
# running `cachectl warm`, and stopped under `cachectl fetch`.  A private
# sandbox: these tests stop and start its redis-server.

bats_require_minimum_version 1.5.0
load fault_helper

dbsize_over() { [ "$(rcli DBSIZE 2>/dev/null || echo 0)" -gt "$1" ]; }

@test "warm with redis-server restarted mid-run: exit 75 and the count of keys not written" {
	local n=300000 pid warmed lost from rc failed
	seq 1 "$n" | awk '{ printf "k%d\tvalue-%d\n", $1, $1 }' >"$TMP/in"
	cachectl warm --ttl 1h --rate 100000 "$TMP/in" 2>"$TMP/err" &
	pid=$!
	# restart once some keys are in (the new server starts empty)
	wait_for 10 dbsize_over 20000
	sb restart-redis
	rc=0
	wait "$pid" || rc=$?
	[ "$rc" -eq 75 ]
	cat "$TMP/err"
	# cachectl: warm: Redis at ...: Connection reset by peer (or closed)
	# cachectl: warm: L keys not confirmed written; lines from F on not read
	# warmed W keys in ...s (0 skipped, L failed)
	grep -Eq "^cachectl: warm: Redis at 127\.0\.0\.1:[0-9]+: " "$TMP/err"
	lost=$(sed -n 's/^cachectl: warm: \([0-9]*\) keys not confirmed written; lines from \([0-9]*\) on not read$/\1/p' "$TMP/err")
	from=$(sed -n 's/^cachectl: warm: \([0-9]*\) keys not confirmed written; lines from \([0-9]*\) on not read$/\2/p' "$TMP/err")
	warmed=$(sed -n 's/^warmed \([0-9]*\) keys in .* (0 skipped, \([0-9]*\) failed)$/\1/p' "$TMP/err")
	failed=$(sed -n 's/^warmed \([0-9]*\) keys in .* (0 skipped, \([0-9]*\) failed)$/\2/p' "$TMP/err")
	[ -n "$lost" ]
	[ -n "$from" ]
	[ -n "$warmed" ]
	# the summary counts what the error line counts
	[ "$failed" = "$lost" ]
	note "warm: $warmed written, $lost without a reply, lines from $from of $n not read"
	[ "$warmed" -gt 0 ]
	[ "$from" -le "$n" ]
	[ $((warmed + lost + 1)) -eq "$from" ]
	# nothing went to the new server behind our back
	run -0 rcli DBSIZE
	assert_output 0
	# the figures say where to resume: the first line without a reply
	run -0 cachectl warm -q --ttl 1h < <(tail -n +$((warmed + 1)) "$TMP/in")
	run -0 rcli DBSIZE
	assert_output $((n - warmed))
	run -0 cachectl get "k$n"
	assert_output "value-$n"
}

@test "warm --json with redis-server stopped mid-run: \"failed\" counts the keys not confirmed written" {
	local n=100000 pid lost rc
	seq 1 "$n" | awk '{ printf "k%d\tvalue-%d\n", $1, $1 }' >"$TMP/in"
	cachectl warm --json --ttl 1h --rate 50000 "$TMP/in" >"$TMP/out" 2>"$TMP/err" &
	pid=$!
	wait_for 10 dbsize_over 5000
	sb stop-redis
	rc=0
	wait "$pid" || rc=$?
	cat "$TMP/err" "$TMP/out"
	[ "$rc" -eq 75 ]
	lost=$(sed -n 's/^cachectl: warm: \([0-9]*\) keys not confirmed written; .*/\1/p' "$TMP/err")
	[ -n "$lost" ]
	[ "$lost" -gt 0 ]
	[ "$(jq -r .failed "$TMP/out")" = "$lost" ]
	[ $(($(jq -r '.warmed + .failed' "$TMP/out"))) -eq "$(jq -r .records "$TMP/out")" ]
}

@test "fetch with redis-server stopped: fail-open runs CMD uncached, --fail-closed exits 69" {
	sb stop-redis
	run -0 --separate-stderr cachectl fetch k --ttl 1m -- echo computed
	assert_output computed
	[[ "$stderr" == "cachectl: fetch: "*"Redis"* ]]
	# CMD's own failure still passes through
	run -3 --separate-stderr cachectl fetch k --ttl 1m -- sh -c 'echo partial; exit 3'
	assert_output partial
	run -69 --separate-stderr cachectl fetch k --ttl 1m --fail-closed -- touch "$TMP/ran"
	[[ "$stderr" == "cachectl: fetch: cannot connect to Redis at 127.0.0.1:"* ]]
	[ ! -e "$TMP/ran" ]
	sb start-redis
	run -0 cachectl fetch k --ttl 1m -- echo cached-now
	assert_output cached-now
	run -0 cachectl get k
	assert_output cached-now
}

@test "fetch with redis-server stopped while CMD runs: the output is still printed" {
	cachectl fetch k --ttl 1m -- sh -c 'sleep 1.5; echo late' >"$TMP/out" 2>"$TMP/err" &
	local pid=$!
	sleep 0.5
	sb stop-redis
	wait "$pid"
	[ "$(cat "$TMP/out")" = late ]
	# it says the value was not cached
	[[ "$(cat "$TMP/err")" == "cachectl: fetch: warning: the output was not cached: Redis at 127.0.0.1:"*" closed the connection"* ]]
	sb start-redis
	run -1 cachectl get k
}

@test "fetch waiting on another caller's lock when redis-server restarts: no hang, the value comes" {
	cachectl fetch k --ttl 1m -- sh -c 'sleep 2; echo slow' >"$TMP/a" 2>"$TMP/a.err" &
	local a=$!
	sleep 0.3
	cachectl fetch k --ttl 1m --wait 10s -- echo second >"$TMP/b" 2>"$TMP/b.err" &
	local b=$!
	sleep 0.3
	sb restart-redis
	wait "$a"
	[ "$(cat "$TMP/a")" = slow ]
	local rc=0
	wait "$b" || rc=$?
	# the waiter lost its connection: it fails open and runs CMD itself
	# (never a hang until --wait, never a crash)
	[ "$rc" -eq 0 ]
	[ "$(cat "$TMP/b")" = second ]
	[[ "$(cat "$TMP/b.err")" == "cachectl: fetch: warning: "*"running the command without the cache"* ]]
}
