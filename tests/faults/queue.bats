#!/usr/bin/env bats
# Faults on the queue side (issue 7): qctl killed with SIGKILL, handlers
# killed, RabbitMQ stopped and restarted under enqueue, consume and
# replay-dlq.  Nothing confirmed may be lost and nothing may be acked
# before it succeeded; duplicates are allowed (at-least-once), counted and
# reported.  A private sandbox: these tests stop and start its broker.

bats_require_minimum_version 1.5.0
load fault_helper

QUEUE_SUITE=1


# Check that "$1" (one body per line) holds each of msg-1..msg-$2 at least
# once; sets DUPS to the number of extra copies.
check_all_there() {
	local file=$1 n=$2 missing
	missing=$(comm -23 <(seq -f 'msg-%.0f' 1 "$n" | sort) <(sort -u "$file") | head -5)
	[ -z "$missing" ] || { echo "missing: $missing"; return 1; }
	local total unique
	total=$(wc -l <"$file")
	unique=$(sort -u "$file" | wc -l)
	[ "$unique" -eq "$n" ] || { echo "$unique unique, want $n"; return 1; }
	DUPS=$((total - unique))
}

@test "replay-dlq of 5,000 messages SIGKILLed at 20 random points: none lost, duplicates counted" {
	local n=5000 kills=0 runs=0 pid rc
	run -0 qctl declare -q "$Q" --dlq
	seq -f 'msg-%.0f' 1 "$n" | qctl enqueue -q "$Q.dlq"
	[ "$(depth "$Q.dlq")" -eq "$n" ]
	while [ "$kills" -lt 20 ]; do
		runs=$((runs + 1))
		# (slowed so that 20 runs do not finish the job)
		qctl replay-dlq -q "$Q.dlq" --rate 1000 --window 200 >/dev/null 2>"$TMP/err.$runs" &
		pid=$!
		# a random point: 20-250 ms into the run
		sleep "0.$(printf '%03d' $((20 + RANDOM % 230)))"
		if kill -KILL "$pid" 2>/dev/null; then
			kills=$((kills + 1))
		fi
		rc=0
		wait "$pid" || rc=$?
		[ "$rc" -eq 137 ] || [ "$rc" -eq 0 ] || { echo "run $runs: exit $rc"; cat "$TMP/err.$runs"; false; }
		# what is not in the target is still in the DLQ (the broker
		# requeued the dead run's unacked copies)
		[ "$(depth "$Q" "$Q.dlq")" -ge "$n" ]
	done
	# the last run, to the end
	run -0 --separate-stderr qctl replay-dlq "$Q.dlq"
	[ "$(depth "$Q.dlq")" -eq 0 ]
	take_bodies "$Q" >"$TMP/got"
	check_all_there "$TMP/got" "$n"
	note "replay-dlq: $kills SIGKILLs in $runs runs, $n messages, $DUPS duplicates"
	[ "$DUPS" -le $((kills * 200)) ]
}

# A handler that records each body it handled successfully in $DONE.
handler_ok() {
	cat >"$TMP/handler" <<'SH'
#!/bin/sh
body=$(cat)
sleep "${HANDLER_SLEEP:-0}"
printf '%s\n' "$body" >>"$DONE"
SH
	chmod +x "$TMP/handler"
	export DONE="$TMP/done"
	: >"$DONE"
}

@test "consume --exec with the handler SIGKILLed: the message is not acked, it is retried and handled" {
	local n=50
	run -0 qctl declare -q "$Q" --dlq
	seq -f 'msg-%.0f' 1 "$n" | qctl enqueue -q "$Q"
	handler_ok
	# msg-7, msg-23 and msg-42: the first attempt is killed with SIGKILL
	cat >"$TMP/killer" <<'SH'
#!/bin/sh
body=$(cat)
case $body in
msg-7|msg-23|msg-42)
	if [ ! -e "$TMP/killed-$body" ]; then
		: >"$TMP/killed-$body"
		kill -KILL $$
	fi ;;
esac
printf '%s\n' "$body" >>"$DONE"
SH
	chmod +x "$TMP/killer"
	run -0 --separate-stderr qctl consume "$Q" --exec "$TMP/killer" --until-empty --max-retries 3
	[ -e "$TMP/killed-msg-7" ]
	[ -e "$TMP/killed-msg-23" ]
	[ -e "$TMP/killed-msg-42" ]
	check_all_there "$DONE" "$n"
	[ "$DUPS" -eq 0 ]
	# the summary counts the three retries; nothing was dead-lettered
	[[ "$stderr" == *"consumed "*" (50 acked, 3 retried, 0 dead-lettered)"* ]]
	[ "$(depth "$Q")" -eq 0 ]
	[ "$(depth "$Q.dlq")" -eq 0 ]
}

@test "consume --exec with qctl SIGKILLed: unacked messages come back, none lost" {
	local n=300 pid rc kills=0
	run -0 qctl declare -q "$Q"
	seq -f 'msg-%.0f' 1 "$n" | qctl enqueue -q "$Q"
	handler_ok
	# 300 handlers of 50 ms, 4 at a time, take about 4 s: every kill
	# (0.3-0.7 s after a start) lands half-way, however fast the machine
	export HANDLER_SLEEP=0.05
	for i in 1 2 3; do
		qctl consume -q "$Q" --exec "$TMP/handler" --jobs 4 --until-empty 2>"$TMP/err" &
		pid=$!
		sleep "0.$((3 + RANDOM % 5))"
		kill -KILL "$pid" 2>/dev/null && kills=$((kills + 1))
		rc=0
		wait "$pid" || rc=$?
		[ "$rc" -eq 137 ] || [ "$rc" -eq 0 ]
	done
	[ "$(wc -l <"$DONE")" -lt "$n" ]	# the kills did stop it half-way
	# handlers orphaned by the kill may still be finishing
	sleep 0.3
	run -0 qctl consume -q "$Q" --exec "$TMP/handler" --jobs 4 --until-empty
	check_all_there "$DONE" "$n"
	note "consume: $kills SIGKILLs of qctl, $n messages, $DUPS handled twice"
	[ "$DUPS" -le $((kills * 8)) ]
	[ "$(depth "$Q")" -eq 0 ]
}

@test "the broker restarted under enqueue and consume --exec: both exit 75; nothing lost, nothing acked unhandled" {
	# one stop and start of the broker (the slow part) serves both
	local n=20000 nc=200 epid cpid rc
	run -0 qctl declare -q "$Q"
	run -0 qctl declare -q "$Q.c"
	seq -f 'msg-%.0f' 1 "$nc" | qctl enqueue -q "$Q.c"
	seq -f 'msg-%.0f' 1 "$n" >"$TMP/lines"
	# enqueue: the first half, then (once the broker is going down) the rest
	{ head -n $((n / 2)) "$TMP/lines"
	  while [ ! -e "$TMP/go" ]; do sleep 0.05; done
	  tail -n +$((n / 2 + 1)) "$TMP/lines"; } |
		qctl enqueue "$Q" --json >"$TMP/unconfirmed" 2>"$TMP/enq.err" &
	epid=$!
	# consume: the handler holds at the 50th message until the broker is down
	handler_ok
	cat >"$TMP/holder" <<'SH'
#!/bin/sh
body=$(cat)
# count and append under one lock, so two handlers never both pass at 49
exec 9>>"$DONE.lock"
flock 9
if [ "$(wc -l <"$DONE")" -ge 50 ]; then
	flock -u 9
	while [ ! -e "$TMP/go" ]; do sleep 0.05; done
fi
printf '%s\n' "$body" >>"$DONE"
SH
	chmod +x "$TMP/holder"
	qctl consume "$Q.c" --exec "$TMP/holder" --jobs 2 --until-empty 2>"$TMP/con.err" &
	cpid=$!
	wait_for 60 depth_at_least "$Q" $((n / 2))
	wait_for 60 lines_at_least "$DONE" 50
	sb stop-rabbit
	touch "$TMP/go"
	rc=0
	wait "$epid" || rc=$?
	[ "$rc" -eq 75 ] || { cat "$TMP/enq.err"; false; }
	grep -Eq '^qctl: enqueue: (lines? [0-9-]+: not confirmed: |lines from [0-9]+ on: not sent$)' "$TMP/enq.err"
	grep -Eq '^enqueued [0-9]+ messages in ' "$TMP/enq.err"
	rc=0
	wait "$cpid" || rc=$?
	[ "$rc" -eq 75 ] || { cat "$TMP/con.err"; false; }
	grep -Eq "^qctl: consume: RabbitMQ at 127\.0\.0\.1:[0-9]+: CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'$" "$TMP/con.err"
	local handled
	handled=$(wc -l <"$DONE")
	[ "$handled" -ge 50 ] && [ "$handled" -le 52 ]	# + the 2 held handlers
	sb start-rabbit

	# enqueue: re-send exactly the lines it reported, {"line":N,...} and
	# {"from_line":N,...}; then every line is in the queue
	local from nresend
	from=$(jq -r 'select(.from_line) | .from_line' "$TMP/unconfirmed")
	{
		jq -r 'select(.line) | .line' "$TMP/unconfirmed"
		[ -z "$from" ] || seq "$from" "$n"
	} | sort -n | uniq >"$TMP/resend-numbers"
	nresend=$(wc -l <"$TMP/resend-numbers")
	# (lines the broker confirmed while enqueue sat waiting on its input
	# are named too: it reads confirms only while publishing)
	[ "$nresend" -ge $((n / 2)) ]
	[ "$nresend" -le "$n" ]
	awk 'NR == FNR { want[$1] = 1; next } want[FNR]' "$TMP/resend-numbers" "$TMP/lines" |
		qctl enqueue -q "$Q"
	take_bodies "$Q" >"$TMP/got"
	check_all_there "$TMP/got" "$n"
	note "enqueue: broker stopped after $((n - nresend)) confirmed lines; re-sent $nresend; $DUPS duplicates"

	# consume: what was handled but not acked comes back (a duplicate);
	# nothing unhandled was acked, so every message gets handled
	run -0 qctl consume -q "$Q.c" --exec "$TMP/handler" --jobs 4 --until-empty
	check_all_there "$DONE" "$nc"
	note "consume: broker stopped after $handled handled; $DUPS handled twice"
	[ "$DUPS" -le 2 ]
}

@test "a dead-letter loop ends: bounded retries, then the DLQ; replay-dlq of those does not spin" {
	local n=5 pid rc
	run -0 qctl declare -q "$Q" --dlq
	seq -f 'msg-%.0f' 1 "$n" | qctl enqueue -q "$Q"
	printf '#!/bin/sh\ncat >>"%s"; echo >>"%s"; echo failing >&2; exit 1\n' \
		"$TMP/tries" "$TMP/tries" >"$TMP/fail"
	chmod +x "$TMP/fail"
	run --separate-stderr timeout 60 qctl consume "$Q" --exec "$TMP/fail" --max-retries 2 --until-empty
	[ "$status" -ne 124 ]	# it ended by itself
	# 1 try + 2 retries each, then the dead-letter queue
	[ "$(grep -c . "$TMP/tries")" -eq $((n * 3)) ]
	[ "$(depth "$Q")" -eq 0 ]
	[ "$(depth "$Q.dlq")" -eq "$n" ]
	[[ "$stderr" == *"(0 acked, $((n * 2)) retried, $n dead-lettered)"* ]]
	# replay them while a consumer that always fails bounces each one
	# straight back into the DLQ: replay moves what was there at start,
	# once, and stops
	qctl consume -q "$Q" --exec "$TMP/fail" --max-retries 0 2>/dev/null &
	pid=$!
	: >"$TMP/tries"
	run --separate-stderr timeout 60 qctl replay-dlq "$Q.dlq"
	[ "$status" -eq 0 ]
	[[ "$stderr" == "replayed $n to '$Q' (0 skipped, 0 failed) in "* ]]
	sleep 1
	kill -TERM "$pid"
	rc=0
	wait "$pid" || rc=$?
	[ "$rc" -eq 0 ]
	# each message went round exactly once more
	[ "$(grep -c . "$TMP/tries")" -eq "$n" ]
	[ "$(depth "$Q.dlq")" -eq "$n" ]
	[ "$(depth "$Q")" -eq 0 ]
	note "dead-letter loop: $((n * 3)) tries for $n messages, then the DLQ; replay moved them once"
}
