#!/usr/bin/env bats
# Signals (issue 13): every long verb, on SIGINT or SIGTERM, stops taking
# work, settles what is in flight, releases its locks, stops the process
# groups it started, reports, and exits 75 when it stopped early; a second
# signal hurries it.  Checked from outside: the process table, redis-cli,
# rabbitmqctl / the management API, the exit code.  Commands cq runs get
# no cq secret in their environment without --pass-env.  The large runs
# are in tests/faults/signals.bats.

bats_require_minimum_version 1.5.0
load test_helper
load qctl_helper

# whatever a failed test left running (test_helper's teardown drops the
# queues)
per_test_teardown() {
	local p
	[ -n "${writer:-}" ] && kill "$writer" 2>/dev/null
	[ -n "${BG:-}" ] && kill -KILL "$BG" 2>/dev/null
	for p in $(cat "$TMP"/pid* 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
	return 0
}

# Start "$@" in the background with stdout/stderr in $TMP/out, $TMP/err;
# its pid in $BG.
bg() {
	"$@" <&0 >"$TMP/out" 2>"$TMP/err" 3>&- &
	BG=$!
}

# Wait for $BG and set $status to its exit code.
bg_wait() {
	status=0
	wait "$BG" || status=$?
}

# Processes whose command line holds $1 (the unique marker of a test).
marked() {
	pgrep -f -- "$1" | wc -l | tr -d ' '
}

# Wait until the shell test $2 (evaluated each time) holds, up to $1 s.
until_true() {
	local t=$1 i
	for ((i = 0; i < t * 10; i++)); do
		eval "$2" && return 0
		sleep 0.1
	done
	return 1
}

# Wait until file $1 exists and is not empty, up to 20 s.
wait_file() {
	wait_for 20 test -s "$1"
}

lock_key() { echo "${P}{${P}$1}|cq:lock"; }

@test "fetch: SIGTERM stops the command's process group and releases the lock; exit 75" {
	mark="fetch-$RANDOM$RANDOM"
	bg cachectl fetch k --ttl 1m -- sh -c "sleep 300 & echo \$! >'$TMP/pid'; echo x; wait; : $mark"
	wait_file "$TMP/pid"
	[ "$(rcli exists "$(lock_key k)")" = 1 ]
	kill -TERM "$BG"
	bg_wait
	[ "$status" = 75 ]
	grep -qx "cachectl: fetch: stopped by SIGTERM: the command was stopped, nothing cached" "$TMP/err"
	# no child left, no lock left, nothing cached
	wait_for 5 gone "$(cat "$TMP/pid")"
	[ "$(marked "$mark")" = 0 ]
	[ "$(rcli exists "$(lock_key k)")" = 0 ]
	[ "$(rcli exists "${P}k")" = 0 ]
	# the next caller computes at once instead of waiting the lock's TTL
	run -0 timeout 5 cachectl fetch k --ttl 1m -- echo fresh
	assert_output fresh
}

@test "fetch: SIGINT too; a second signal kills a command that ignores SIGTERM at once" {
	bg cachectl fetch k --ttl 1m -- sh -c "trap '' TERM; echo \$\$ >'$TMP/pid'; for i in \$(seq 300); do sleep 0.1; done"
	wait_file "$TMP/pid"
	kill -INT "$BG"
	sleep 0.5
	# the command ignores SIGTERM: fetch waits out its grace time...
	kill -0 "$BG"
	kill -0 "$(cat "$TMP/pid")"
	# ...unless hurried
	kill -INT "$BG"
	SECONDS=0
	bg_wait
	[ "$status" = 75 ]
	[ "$SECONDS" -lt 3 ]
	grep -q "stopped by SIGINT" "$TMP/err"
	wait_for 5 gone "$(cat "$TMP/pid")"
	[ "$(rcli exists "$(lock_key k)")" = 0 ]
}

@test "fetch: a command reading the terminal stays in cachectl's process group and can read it" {
	# in a group of its own it would be stopped by SIGTTIN
	run -0 timeout 20 script -qec "cachectl fetch k --ttl 1m -- sh -c 'read x; echo got:\$x'" /dev/null \
		< <(sleep 1; echo hello)
	[[ "$output" == *got:hello* ]]
	[ "$(rcli get "${P}k")" = got:hello ]
}

@test "warm --once: SIGTERM settles the writes, releases the once-lock, reports the lines not read, exit 75" {
	mkfifo "$TMP/in"
	( printf 'a\t1\nb\t2\n'; exec sleep 60 ) >"$TMP/in" 3>&- &
	writer=$!
	bg cachectl warm --once nightly --ttl 1m --json "$TMP/in"
	until_true 20 '[ "$(rcli exists "${P}cq:once:nightly")" = 1 ]'
	sleep 0.5
	kill -TERM "$BG"
	bg_wait
	[ "$status" = 75 ]
	# both lines read were written; the lock is gone
	[ "$(rcli get "${P}a")" = 1 ]
	[ "$(rcli get "${P}b")" = 2 ]
	[ "$(rcli exists "${P}cq:once:nightly")" = 0 ]
	grep -qx "cachectl: warm: stopped by SIGTERM" "$TMP/err"
	grep -q "lines from 3 on not read" "$TMP/err"
	[ "$(jq -c '[.warmed, .stopped]' "$TMP/out")" = "[2,true]" ]
	# the next run is not locked out
	run -0 --separate-stderr bash -c "printf 'c\t3\n' | cachectl warm --once nightly --ttl 1m"
	[ "$(rcli get "${P}c")" = 3 ]
}

@test "warm --once: a run that finds the lock held prints a --json record saying so" {
	rcli set "${P}cq:once:nightly" someone-else PX 60000 >/dev/null
	run -0 --separate-stderr bash -c "printf 'a\t1\n' | cachectl warm --once nightly --ttl 1m --json"
	[ "$(jq -c '[.locked_out, .warmed]' <<<"$output")" = "[true,0]" ]
	[ "$stderr" = "cachectl: warm: another run holds --once 'nightly'; not warming" ]
}

@test "warm --exec --jobs: SIGTERM stops every running command's process group; exit 75" {
	printf 'k1\nk2\nk3\nk4\nk5\n' >"$TMP/keys"
	bg cachectl warm --ttl 1m --exec "sleep 300 & echo \$\$ \$! >'$TMP/pid.'\$1; wait" --jobs 3 --keys "$TMP/keys"
	until_true 20 '[ "$(cat "$TMP"/pid.* 2>/dev/null | wc -w)" = 6 ]'
	for p in $(cat "$TMP"/pid.*); do kill -0 "$p"; done
	kill -TERM "$BG"
	bg_wait
	[ "$status" = 75 ]
	# the shells and their sleeps: none left
	for p in $(cat "$TMP"/pid.*); do ! kill -0 "$p" 2>/dev/null; done
	[ "$(ls "$TMP"/pid.* | wc -l)" = 3 ]
	[ "$(rcli --scan --pattern "${P}*" | wc -l)" = 0 ]
	grep -qx "cachectl: warm: stopped by SIGTERM" "$TMP/err"
}

@test "invalidate --pattern: SIGTERM deletes the batch scanned, reports, exit 75; the rest is left" {
	awk 'BEGIN { for (i = 1; i <= 50000; i++) printf "u%d\t%d\n", i, i }' |
		cachectl warm -q --ttl 1h
	bg cachectl invalidate --pattern 'u*' --rate 10000 --json
	sleep 1
	kill -TERM "$BG"
	bg_wait
	[ "$status" = 75 ]
	grep -qx "cachectl: invalidate: stopped by SIGTERM: the keys not scanned yet are left" "$TMP/err"
	n=$(jq -r .invalidated "$TMP/out")
	[ "$(jq -r .stopped "$TMP/out")" = true ]
	[ "$n" -gt 0 ]
	[ "$n" -lt 50000 ]
	[ "$(rcli --scan --pattern "${P}u*" | wc -l)" = $((50000 - n)) ]
}

@test "consume --handler-timeout: SIGKILL reaches the group 5s after SIGTERM even when the shell died" {
	qctl declare -q --dlq "$Q"
	qctl enqueue -q "$Q" job
	SECONDS=0
	run -0 --separate-stderr timeout 60 qctl consume --until-empty --max-retries 0 \
		--handler-timeout 300ms -e "(trap '' TERM; exec sleep 300) >/dev/null 2>&1 & echo \$! >'$TMP/pid'; wait" "$Q" 3>&-
	[[ "$stderr" == *"dead-lettered through exchange '$Q.dlx': timeout"* ]]
	# the child that ignores SIGTERM outlived its shell, then got SIGKILL:
	# the message was settled only once nothing of the attempt was left
	wait_for 5 gone "$(cat "$TMP/pid")"
	[ "$SECONDS" -ge 5 ]
	[ "$(ready "$Q.dlq")" = 1 ]
}

@test "consume: SIGTERM lets the running handler finish, settles it, exits 0 with the summary" {
	qctl declare -q "$Q"
	qctl enqueue -q "$Q" one two
	bg qctl consume --prefetch 1 -e "touch '$TMP/started'; sleep 1" "$Q"
	wait_for 20 test -e "$TMP/started"
	kill -TERM "$BG"
	bg_wait
	[ "$status" = 0 ]
	grep -q "consumed 1 message in" "$TMP/err"
	# the handled one is acked, the other is still in the queue
	until_true 10 '[ "$(ready "$Q")" = 1 ]'
}

@test "consume --until-empty: SIGINT finishes the running handler, then exits 75 (the queue was not drained)" {
	qctl declare -q "$Q"
	qctl enqueue -q "$Q" one two
	bg qctl consume --until-empty --prefetch 1 -e "touch '$TMP/started'; sleep 1" "$Q"
	wait_for 20 test -e "$TMP/started"
	kill -INT "$BG"
	bg_wait
	[ "$status" = 75 ]
	grep -qx "qctl: consume: stopped by SIGINT before the queue was drained" "$TMP/err"
	grep -q "consumed 1 message in" "$TMP/err"
	until_true 10 '[ "$(ready "$Q")" = 1 ]'
}

@test "enqueue: SIGINT settles what was sent, names the lines not sent, exit 75; the re-send recipe completes the queue" {
	qctl declare -q "$Q"
	seq 1 20000 >"$TMP/batch.txt"
	mkfifo "$TMP/in"
	( head -n 5000 "$TMP/batch.txt"; exec sleep 60 ) >"$TMP/in" 3>&- &
	writer=$!
	bg qctl enqueue --json "$Q" <"$TMP/in"
	until_true 20 '[ "$(ready "$Q")" = 5000 ]'
	kill -INT "$BG"
	bg_wait
	kill "$writer" 2>/dev/null || true
	[ "$status" = 75 ]
	grep -qx "qctl: enqueue: stopped by SIGINT" "$TMP/err"
	sent=$(jq -r '.from_line' "$TMP/out")
	[ "$sent" = 5001 ]
	grep -qx "qctl: enqueue: lines from $sent on: not sent" "$TMP/err"
	grep -q "^enqueued $((sent - 1)) messages in" "$TMP/err"
	# everything before was confirmed and is in the queue, nothing else
	[ "$(ready "$Q")" = $((sent - 1)) ]
	# the man page's recipe sends exactly the rest
	mv "$TMP/out" "$TMP/failed.jsonl"
	resend_lines "$TMP/failed.jsonl" "$TMP/batch.txt" |
		qctl enqueue -q "$Q"
	[ "$(ready "$Q")" = 20000 ]
	[ "$(take_bodies "$Q" | sort -n | uniq | wc -l)" = 20000 ]
}

@test "enqueue: SIGTERM while waiting for slow input exits 75 at once" {
	qctl declare -q "$Q"
	mkfifo "$TMP/in"
	( echo one; exec sleep 60 ) >"$TMP/in" 3>&- &
	writer=$!
	bg qctl enqueue "$Q" <"$TMP/in"
	until_true 20 '[ "$(ready "$Q")" = 1 ]'
	slow_input_stopped
}

@test "enqueue --backend list and stream: SIGTERM while waiting for slow input exits 75 at once, sending nothing after it" {
	local b
	for b in list stream; do
		rm -f "$TMP/in"
		mkfifo "$TMP/in"
		[ "$b" = list ] || qctl declare -q --backend "$b" "$Q.$b"
		( echo one; sleep 4; echo two; exec sleep 60 ) >"$TMP/in" 3>&- &
		writer=$!
		bg qctl enqueue --backend "$b" "$Q.$b" <"$TMP/in"
		until_true 20 '[ "$(rcli "$([ "$b" = list ] && echo LLEN || echo XLEN)" "$P$Q.$b")" = 1 ]'
		slow_input_stopped
		# qctl has exited and the writer is gone before "two": one entry
		[ "$(rcli "$([ "$b" = list ] && echo LLEN || echo XLEN)" "$P$Q.$b")" = 1 ]
	done
}

# The end of the tests above: SIGTERM to $BG, which waits on $writer.
slow_input_stopped() {
	kill -TERM "$BG"
	SECONDS=0
	bg_wait
	kill "$writer" 2>/dev/null || true
	[ "$status" = 75 ]
	[ "$SECONDS" -lt 3 ]
	grep -qx "qctl: enqueue: lines from 2 on: not sent" "$TMP/err"
	grep -q "^enqueued 1 message in" "$TMP/err"
}

@test "replay-dlq: SIGTERM stops taking, settles the window, prints the summary, exit 75; nothing lost" {
	qctl declare -q --dlq "$Q"
	seq 1 3000 | qctl enqueue -q "$Q"
	reject "$Q" 3000
	until_true 20 '[ "$(ready "$Q.dlq")" = 3000 ]'
	bg qctl replay-dlq --rate 300 "$Q.dlq"	# 10 s: the API's count lags
	until_true 20 '[ "$(ready "$Q")" -ge 500 ]'
	kill -TERM "$BG"
	bg_wait
	[ "$status" = 75 ]
	grep -q "qctl: replay-dlq: stopped by SIGTERM" "$TMP/err"
	moved=$(sed -n "s/^replayed \([0-9]*\) to '$Q'.*/\1/p" "$TMP/err")
	[ "$moved" -gt 0 ]
	[ "$moved" -lt 3000 ]
	# the summary's count is what the queue holds; the rest is back in the DLQ
	until_true 10 '[ "$(ready "$Q.dlq")" = $((3000 - moved)) ]'
	[ "$(ready "$Q")" = "$moved" ]
	[ "$( (take_bodies "$Q"; take_bodies "$Q.dlq") | sort -n | uniq | wc -l)" = 3000 ]
}

@test "fetch waiting for another caller's value: SIGTERM ends the wait, exit 75; the owner's lock and run are untouched" {
	cachectl fetch k --ttl 1m -- sh -c "until [ -e '$TMP/go' ]; do sleep 0.05; done; echo theirs" \
		>"$TMP/out1" 2>"$TMP/err1" 3>&- &
	echo $! >"$TMP/pid.owner"
	until_true 20 '[ "$(rcli exists "$(lock_key k)")" = 1 ]'
	token=$(rcli get "$(lock_key k)")
	bg cachectl fetch k --ttl 1m -- sh -c "touch '$TMP/ran'; echo mine"
	sleep 0.3
	kill -TERM "$BG"
	bg_wait
	[ "$status" = 75 ]
	[ "$(cat "$TMP/err")" = "cachectl: fetch: stopped by SIGTERM: no longer waiting for another caller" ]
	[ ! -s "$TMP/out" ]
	[ ! -e "$TMP/ran" ]
	# the owner's lock is still the owner's; its value lands as usual
	[ "$(rcli get "$(lock_key k)")" = "$token" ]
	touch "$TMP/go"
	wait "$(cat "$TMP/pid.owner")"
	[ "$(cat "$TMP/out1")" = theirs ]
	[ "$(rcli get "${P}k")" = theirs ]
	[ "$(rcli exists "$(lock_key k)")" = 0 ]
}

@test "fetch --stale: SIGTERM to the background refresh stops its command and releases the lock; the stale value stays" {
	cachectl fetch k --ttl 200ms --stale 1m -- echo old >/dev/null
	sleep 0.3
	run -0 cachectl fetch k --ttl 200ms --stale 1m -- sh -c "echo \$\$ \$PPID >'$TMP/pids'; sleep 300 & wait"
	assert_output old
	wait_file "$TMP/pids"
	read -r cmd refresher <"$TMP/pids"
	[ "$(rcli exists "$(lock_key k)")" = 1 ]
	kill -TERM "$refresher"
	wait_for 10 gone "$refresher"
	wait_for 5 gone "$cmd"
	[ "$(rcli exists "$(lock_key k)")" = 0 ]
	[ "$(rcli get "${P}k")" = old ]
}

@test "consume --dedupe: SIGTERM finishes the running handler and marks its id only; the others stay unmarked in the queue" {
	qctl declare -q "$Q"
	printf '{"body":"m%d","message_id":"id%d"}\n' 1 1 2 2 3 3 | qctl enqueue -q --jsonl "$Q"
	bg qctl consume --dedupe --prefetch 3 -e "touch '$TMP/started'; sleep 0.5; cat >>'$TMP/done'" "$Q"
	wait_for 20 test -e "$TMP/started"
	kill -TERM "$BG"
	bg_wait
	[ "$status" = 0 ]
	grep -q "consumed 1 message in .*(1 acked, 0 retried, 0 dead-lettered, 0 skipped)" "$TMP/err"
	[ "$(cat "$TMP/done")" = m1 ]
	[ "$(rcli --scan --pattern "${P}*" | sort | paste -sd' ')" = "${P}qctl:done:$Q:id1" ]
	until_true 10 '[ "$(ready "$Q")" = 2 ]'
	[ "$(take_bodies "$Q" | paste -sd' ')" = "m2 m3" ]
}

@test "consume --backend stream: SIGTERM lets the running handler finish and acks it; nothing left pending, the rest undelivered; exit 0" {
	qctl declare -q --backend stream "$Q"
	qctl enqueue -q --backend stream "$Q" one two three
	bg qctl consume --backend stream --prefetch 1 -e "touch '$TMP/started'; sleep 0.5; cat >>'$TMP/done'" "$Q"
	wait_for 20 test -e "$TMP/started"
	kill -TERM "$BG"
	bg_wait
	[ "$status" = 0 ]
	grep -q "consumed 1 message in .*(1 acked, 0 retried, 0 dead-lettered)" "$TMP/err"
	[ "$(cat "$TMP/done")" = one ]
	[ "$(rcli XLEN "$P$Q")" = 3 ]
	[ "$(rcli XPENDING "$P$Q" qctl | head -1)" = 0 ]
	# the group has handed out one entry; two wait for the next consumer
	[ "$(group_field "$P$Q" entries-read)" = 1 ]
	[ "$(group_field "$P$Q" lag)" = 2 ]
}

@test "replay-dlq --backend list and stream: SIGTERM ends the run, exit 75; the summary's count is in the queue, the rest in the DLQ, none twice" {
	local b len moved
	for b in list stream; do
		len=$([ "$b" = list ] && echo LLEN || echo XLEN)
		[ "$b" = list ] || qctl declare -q --backend "$b" --dlq "$Q.$b"
		seq 1 1000 | qctl enqueue -q --backend "$b" "$Q.$b.dlq"
		bg qctl replay-dlq --backend "$b" --rate 1000 "$Q.$b.dlq"
		until_true 20 '[ "$(rcli "$len" "$P$Q.$b")" -ge 100 ]'
		kill -TERM "$BG"
		bg_wait
		[ "$status" = 75 ]
		moved=$(sed -n "s/^replayed \([0-9]*\) to '$Q.$b' (0 skipped, 0 failed) in .*/\1/p" "$TMP/err")
		grep -qx "qctl: replay-dlq: stopped by SIGTERM: $((1000 - moved)) of the 1000 messages present not looked at (they stay in '$Q.$b.dlq')" "$TMP/err"
		[ "$(rcli "$len" "$P$Q.$b")" = "$moved" ]
		[ "$(rcli "$len" "$P$Q.$b.dlq")" = $((1000 - moved)) ]
		[ "$( (bodies "$b" "$P$Q.$b"; bodies "$b" "$P$Q.$b.dlq") | sort -un | wc -l)" = 1000 ]
	done
}

# The bodies held by list or stream ($1) key $2, with redis-cli.
bodies() {
	if [ "$1" = list ]; then
		rcli LRANGE "$2" 0 -1
	else
		rcli XRANGE "$2" - + | awk 'p { print; p = 0; next } $0 == "body" { p = 1 }'
	fi
}

@test "handlers and fetch commands get no cq secret unless --pass-env" {
	qctl declare -q "$Q"
	qctl enqueue -q "$Q" a
	run -0 --separate-stderr qctl consume --until-empty -e \
		"env | grep -E '^CQ_(AMQP|REDIS)_URL=' >'$TMP/env.consume'; echo \"\$CQ_QUEUE\" >'$TMP/q'" "$Q"
	[ ! -s "$TMP/env.consume" ]
	[ "$(cat "$TMP/q")" = "$Q" ]
	qctl enqueue -q "$Q" b
	run -0 --separate-stderr qctl consume --until-empty --pass-env -e \
		"env | grep -E '^CQ_(AMQP|REDIS)_URL=' >'$TMP/env.pass'" "$Q"
	grep -qx "CQ_AMQP_URL=$CQ_AMQP_URL" "$TMP/env.pass"
	run -0 cachectl fetch k --ttl 1m -- sh -c 'env | grep -c "^CQ_REDIS_URL=" || true'
	assert_output 0
	run -0 cachectl fetch k2 --ttl 1m --pass-env -- sh -c 'env | grep -c "^CQ_REDIS_URL=" || true'
	assert_output 1
	echo k3 >"$TMP/keys"
	run -0 cachectl warm --ttl 1m --keys "$TMP/keys" --exec 'env | grep -c "^CQ_REDIS_URL=" || true'
	[ "$(rcli get "${P}k3")" = 0 ]
}
