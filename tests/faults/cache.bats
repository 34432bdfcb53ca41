#!/usr/bin/env bats
# Faults on the cache side (issue 7): redis-server restarted under a
# running `cachectl warm`, and stopped under `cachectl fetch`.  A private
# sandbox: these tests stop and start its redis-server.

bats_require_minimum_version 1.5.0
load fault_helper

setup_file() { fault_setup_file; }
teardown_file() { fault_teardown_file; }
per_test_teardown() { sb_heal; }

dbsize_over() { [ "$(rcli DBSIZE 2>/dev/null || echo 0)" -gt "$1" ]; }

@test "warm with redis-server restarted mid-run: exit 75 and the count of keys not written" {
	local n=300000 pid warmed lost from
	seq 1 "$n" | awk '{ printf "k%d\tvalue-%d\n", $1, $1 }' >"$TMP/in"
	cachectl warm --ttl 1h --rate 100000 "$TMP/in" 2>"$TMP/err" &
	pid=$!
	# restart once some keys are in (the new server starts empty)
	wait_for 10 dbsize_over 20000
	sb restart-redis
	run -75 wait "$pid"
	cat "$TMP/err"
	# cachectl: warm: Redis at ...: Connection reset by peer (or closed)
	# cachectl: warm: L keys not confirmed written; lines from F on not read
	# warmed W keys in ...s (0 skipped, 0 failed)
	grep -Eq "^cachectl: warm: Redis at 127\.0\.0\.1:[0-9]+: " "$TMP/err"
	lost=$(sed -n 's/^cachectl: warm: \([0-9]*\) keys not confirmed written; lines from \([0-9]*\) on not read$/\1/p' "$TMP/err")
	from=$(sed -n 's/^cachectl: warm: \([0-9]*\) keys not confirmed written; lines from \([0-9]*\) on not read$/\2/p' "$TMP/err")
	warmed=$(sed -n 's/^warmed \([0-9]*\) keys in .* (0 skipped, 0 failed)$/\1/p' "$TMP/err")
	[ -n "$lost" ] && [ -n "$from" ] && [ -n "$warmed" ]
	note "warm: $warmed written, $lost without a reply, lines from $from of $n not read"
	[ "$warmed" -gt 0 ] && [ "$from" -le "$n" ]
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
