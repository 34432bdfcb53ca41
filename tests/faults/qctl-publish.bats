#!/usr/bin/env bats
# Faults under qctl's publishing verbs (issue 4): the broker stops while
# `enqueue` or `replay-dlq` has messages awaiting confirms.  Every input
# line is either confirmed (and survives the broker's restart) or named as
# not confirmed; a replay loses nothing.  A private sandbox: these tests
# stop and restart its RabbitMQ node.

bats_require_minimum_version 1.5.0
load fault_helper

QUEUE_SUITE=1

per_test_teardown() {
	[ ! -e "$TMP/alarm" ] || alarm_off
	sb_heal
}

# A memory alarm on the private node (publishing blocked), and its end.
alarm_on() {
	touch "$TMP/alarm"
	"$SANDBOX" --dir "$SB" ctl set_vm_memory_high_watermark absolute 1MB >/dev/null 2>&1
}
alarm_off() {
	"$SANDBOX" --dir "$SB" ctl set_vm_memory_high_watermark 0.4 >/dev/null 2>&1
	rm -f "$TMP/alarm"
}
mem_alarm() {
	curl -sf "$CQ_API_URL/api/nodes" | jq -e '.[0].mem_alarm == true' >/dev/null
}

# 1..$1 on stdout over about 10 s (a pause every 1/100 of it), so that the
# broker, stopped once 2,000 are in, stops mid-stream; and with a queue of
# a size the API can hand back in a few seconds.
slow_seq() {
	local i step=$(($1 / 100))
	for ((i = 1; i <= $1; i++)); do
		echo "$i"
		((i % step == 0)) && sleep 0.1
	done
}

# The lines of the mid-stream enqueue: what is sent before the stop, what
# is named after it and the re-send are the same whatever the size; 50,000
# (5,000 a second) keep it fast, CQ_FAULT_PUBLISH_N=200000 is the old size.
N=${CQ_FAULT_PUBLISH_N:-50000}

@test "enqueue: the broker stopping mid-stream: exit 75, every line confirmed or named" {
	qctl declare -q "$Q"
	seq 1 "$N" > "$TMP/in"
	slow_seq "$N" | qctl enqueue --json "$Q" > "$TMP/failed.jsonl" 2> "$TMP/err" &
	pid=$!
	wait_for 60 depth_at_least "$Q" 2000
	sb stop-rabbit
	status=0
	wait "$pid" || status=$?
	[ "$status" = 75 ] || { echo "status $status"; cat "$TMP/err"; false; }
	# the stop lands while lines await confirms, or while qctl awaits input
	grep -q "not confirmed: connection lost\|not confirmed: channel closed\|lines from [0-9]* on: not sent" "$TMP/err"
	sb start-rabbit
	# every message reported confirmed survived the restart
	confirmed=$(sed -n 's/^enqueued \([0-9]*\) messages.*/\1/p' "$TMP/err")
	[ "$confirmed" -gt 0 ]
	[ "$(depth "$Q")" -ge "$confirmed" ]
	# lines named as not confirmed, and the range never sent
	jq -r 'select(.line) | .line' "$TMP/failed.jsonl" > "$TMP/named"
	from=$(jq -r 'select(.from_line) | .from_line' "$TMP/failed.jsonl")
	[ -n "$from" ] && seq "$from" "$N" >> "$TMP/named"
	[ -s "$TMP/named" ]
	# re-send exactly those, with the recipe of qctl(1)
	resend_lines "$TMP/failed.jsonl" "$TMP/in" > "$TMP/resend"
	cmp "$TMP/resend" <(sort -n "$TMP/named")
	run -0 qctl enqueue -q "$Q" < "$TMP/resend"
	take_bodies "$Q" > "$TMP/stored"
	note "confirmed $confirmed, named and re-sent $(wc -l < "$TMP/named"), stored $(wc -l < "$TMP/stored")"
	# every line is in the queue now; duplicates only among the named
	sort -n -u "$TMP/stored" | cmp - "$TMP/in"
	[ "$(wc -l < "$TMP/stored")" -le $((N + $(wc -l < "$TMP/named"))) ]
}

@test "replay-dlq: the broker stopping mid-replay loses nothing; a re-run finishes" {
	qctl declare -q "$Q"
	qctl declare -q "$Q.dlq"
	seq 1 20000 | qctl enqueue -q -H "x-original-queue=$Q" "$Q.dlq"
	qctl replay-dlq -q --rate 400 "$Q.dlq" 2> "$TMP/err" &
	pid=$!
	wait_for 60 depth_at_least "$Q" 1000
	sb stop-rabbit
	status=0
	wait "$pid" || status=$?
	[ "$status" = 75 ] || { echo "status $status"; cat "$TMP/err" "$BATS_FILE_TMPDIR/sandbox.log"; false; }
	# the lost broker is named; what was in flight then (a few, or none when
	# every copy sent had been confirmed) is said to stay in the DLQ
	grep -q "RabbitMQ at 127.0.0.1:[0-9]*: " "$TMP/err"
	if grep "in flight" "$TMP/err" | grep -Evq "in flight (was|were) not confirmed and stay in '$Q.dlq'"; then
		cat "$TMP/err"; false
	fi
	sb start-rabbit
	run -0 qctl replay-dlq -q "$Q.dlq"
	take_bodies "$Q.dlq" > "$TMP/left"
	[ ! -s "$TMP/left" ]
	take_bodies "$Q" | sort -n -u > "$TMP/moved"
	cmp "$TMP/moved" <(seq 1 20000)
}

@test "enqueue: a memory alarm blocks publishing: said on stderr and in --json, and it goes on when the alarm clears" {
	qctl declare -q "$Q"
	# 50 lines over 5 s; the alarm comes after the first second
	for ((i = 1; i <= 50; i++)); do echo "$i"; sleep 0.1; done |
		qctl enqueue --json --timeout 60s "$Q" > "$TMP/out" 2> "$TMP/err" &
	pid=$!
	sleep 1
	alarm_on
	wait_for 30 grep -q "publishing blocked" "$TMP/err" || { cat "$TMP/err"; false; }
	sleep 1
	alarm_off
	status=0
	wait "$pid" || status=$?
	[ "$status" = 0 ] || { echo "status $status"; cat "$TMP/err"; false; }
	grep -qx "qctl: enqueue: publishing blocked by RabbitMQ: low on memory (waiting up to 60s for it to clear)" "$TMP/err"
	grep -q "^qctl: enqueue: publishing resumed after [0-9.]*s$" "$TMP/err"
	grep -q "^enqueued 50 messages" "$TMP/err"
	[ "$(jq -c 'select(.event) | [.event, .reason]' "$TMP/out" | paste -sd' ')" = '["blocked","low on memory"] ["unblocked",null]' ]
	take_bodies "$Q" | sort -n | cmp - <(seq 1 50)
}

@test "enqueue: a second SIGINT while RabbitMQ blocks publishing ends it within seconds: exit 75, each line named" {
	qctl declare -q "$Q"
	alarm_on
	wait_for 30 mem_alarm
	qctl enqueue --json --timeout 60s "$Q" a b c > "$TMP/out" 2> "$TMP/err" &
	pid=$!
	wait_for 30 grep -q "publishing blocked" "$TMP/err" || { cat "$TMP/err"; false; }
	kill -INT "$pid"
	sleep 0.3
	start=$(date +%s%N)
	kill -INT "$pid"
	status=0
	wait "$pid" || status=$?
	ms=$((($(date +%s%N) - start) / 1000000))
	note "ended ${ms} ms after the second SIGINT"
	[ "$status" = 75 ] || { echo "status $status"; cat "$TMP/err"; false; }
	# a blocked broker never answers connection.close: not waited for
	[ "$ms" -lt 5000 ]
	[ "$(jq -r 'select(.argument) | .argument' "$TMP/out" | paste -sd,)" = "1,2,3" ]
	grep -q "stopped by SIGINT" "$TMP/err"
	alarm_off
}

@test "enqueue: a second SIGINT while a line waits for RabbitMQ to unblock ends it within seconds: exit 75, lines named" {
	qctl declare -q "$Q"
	alarm_on
	wait_for 30 mem_alarm
	mkfifo "$TMP/in"
	qctl enqueue --json --timeout 60s "$Q" < "$TMP/in" > "$TMP/out" 2> "$TMP/err" &
	pid=$!
	exec 4> "$TMP/in"
	echo a >&4
	wait_for 30 grep -q "publishing blocked" "$TMP/err" || { cat "$TMP/err"; false; }
	# line 2 waits for the block to end before it is sent; 3 is unread
	echo b >&4
	echo c >&4
	sleep 0.5
	kill -INT "$pid"
	sleep 0.3
	start=$(date +%s%N)
	kill -INT "$pid"
	status=0
	wait "$pid" || status=$?
	ms=$((($(date +%s%N) - start) / 1000000))
	exec 4>&-
	note "ended ${ms} ms after the second SIGINT"
	[ "$status" = 75 ] || { echo "status $status"; cat "$TMP/err"; false; }
	[ "$ms" -lt 5000 ]
	[ "$(jq -c 'select(.line or .from_line) | [.line // .from_line, .error]' "$TMP/out" | paste -sd' ')" = \
		'[1,"stopped before its confirm came"] [2,"stopped before its confirm came"] [3,"not sent"]' ]
	alarm_off
}

@test "enqueue: --timeout bounds the wait of a blocked publisher: exit 75 naming each line" {
	qctl declare -q "$Q"
	alarm_on
	wait_for 30 mem_alarm
	run -75 --separate-stderr qctl enqueue --json --timeout 2s "$Q" a b c
	[ "$(jq -r 'select(.argument) | "\(.argument) \(.error)"' <<<"$output" | paste -sd,)" = \
		"1 publishing blocked by a resource alarm past the timeout,2 publishing blocked by a resource alarm past the timeout,3 publishing blocked by a resource alarm past the timeout" ]
	[[ "$stderr" == *"publishing blocked by RabbitMQ: low on memory (waiting up to 2s for it to clear)"* ]]
	[[ "$stderr" == *"blocked publishing (low on memory) for more than 2.000s (--timeout)"* ]]
	alarm_off
}
