#!/usr/bin/env bats
# qctl consume (issue 4): print messages or run a handler per message; ack
# only after success; retries, dead letters, dedupe, signals, failures.

bats_require_minimum_version 1.5.0
load test_helper

# Queues are dropped in teardown, and a handler a test left running is
# killed; take_all (amqp-get, not qctl) looks at what is left in a queue.
QUEUE_SUITE=1

# The headers of the first message of queue $1 as JSON (peek puts it back).
first_headers() {
	qctl peek --json "$1" 2>/dev/null | head -n1 | jq -c .headers
}

enqueue() {
	qctl enqueue -q "$Q" "$@"
}

# ---- usage ----------------------------------------------------------------

@test "consume: usage errors exit 64" {
	run -64 --separate-stderr qctl consume
	assert_equal "$stderr" "$(printf "qctl: consume: missing QUEUE\nTry 'qctl consume --help'.")"
	run -64 --separate-stderr qctl consume a b
	run -64 --separate-stderr qctl consume --exec true -0 "$Q"
	[[ "$stderr" == *"--exec does not print"* ]]
	run -64 --separate-stderr qctl consume --poison-codes 65,x "$Q"
	[[ "$stderr" == *"--poison-codes: bad list '65,x'"* ]]
	run -64 --separate-stderr qctl consume --idle-timeout soon "$Q"
	[[ "$stderr" == *"--idle-timeout: bad duration 'soon'"* ]]
	run -64 --separate-stderr qctl consume --jobs 0 -e true "$Q"
	run -64 --separate-stderr qctl consume --jobs 2 "$Q"
	[[ "$stderr" == *"need --exec"* ]]
	run -0 qctl consume --help
	assert_output --partial "usage: qctl consume [OPTIONS] QUEUE"
}

@test "consume: a missing queue exits 1 and says so" {
	run -1 --separate-stderr qctl consume "$Q"
	assert_equal "$stderr" "qctl: consume: queue '$Q' does not exist (create it with: qctl declare $Q)"
}

# ---- printing -----------------------------------------------------------------

@test "consume: prints bodies one per line and acks them" {
	qctl declare -q "$Q"
	enqueue one two three
	run -0 --separate-stderr qctl consume --until-empty "$Q"
	assert_output "$(printf 'one\ntwo\nthree')"
	[[ "$stderr" == "qctl: consume: consumed 3 messages in "*"s (3 acked, 0 retried, 0 dead-lettered)" ]]
	# acked: nothing is left
	run -0 take_all "$Q"
	assert_output ""
}

@test "consume: -0 round-trips binary bodies (newlines, high bytes)" {
	qctl declare -q "$Q"
	printf 'line one\nline two\0\xff\xfe\x01 raw\0plain\0' >"$TMP/in"
	qctl enqueue -q -0 "$Q" <"$TMP/in"
	qctl consume -q -0 --count 3 "$Q" >"$TMP/out"
	cmp "$TMP/in" "$TMP/out"
}

@test "consume: --jsonl gives headers, properties, redelivered, tag and body or body_base64" {
	qctl declare -q "$Q"
	printf '%s\n' '{"body":"hello","headers":{"trace":"t1"},"message_id":"m-1","content_type":"text/plain"}' \
		'{"body_base64":"/wABAg==","message_id":"m-2"}' | qctl enqueue -q --jsonl "$Q"
	run -0 --separate-stderr qctl consume -q --jsonl --count 2 "$Q"
	assert_equal "${#lines[@]}" 2
	jq -e '.body == "hello" and .headers.trace == "t1" and .message_id == "m-1"
		and .content_type == "text/plain" and .redelivered == false
		and .delivery_tag == 1 and .queue == "'"$Q"'"' <<<"${lines[0]}"
	jq -e '.body_base64 == "/wABAg==" and (has("body") | not) and .delivery_tag == 2' <<<"${lines[1]}"
}

@test "consume: --count N takes N and leaves the rest in the queue" {
	qctl declare -q "$Q"
	enqueue 1 2 3 4 5
	run -0 --separate-stderr qctl consume --count 2 "$Q"
	assert_output "$(printf '1\n2')"
	run -0 take_all "$Q"
	assert_output "$(printf '3\n4\n5')"
}

@test "consume: --idle-timeout stops once nothing arrives; exit 1 when nothing came" {
	qctl declare -q "$Q"
	enqueue a
	run -0 --separate-stderr qctl consume --idle-timeout 300ms "$Q"
	assert_output a
	run -1 --separate-stderr qctl consume --idle-timeout 300ms "$Q"
	assert_output ""
	assert_equal "$stderr" "qctl: consume: queue '$Q' is empty"
}

@test "consume: --until-empty on an empty queue exits 1 (quietly with -q)" {
	qctl declare -q "$Q"
	run -1 --separate-stderr qctl consume --until-empty "$Q"
	assert_equal "$stderr" "qctl: consume: queue '$Q' is empty"
	run -1 --separate-stderr qctl consume -q --until-empty "$Q"
	assert_equal "$stderr" ""
}

@test "consume: a closed stdout pipe stops quietly with 74 and acks nothing unwritten" {
	qctl declare -q "$Q"
	# bodies bigger than a pipe buffer, so the first one cannot be
	# written in full before the reader goes
	for i in 1 2 3; do head -c 1000000 /dev/zero | tr '\0' "$i"; echo; done >"$TMP/big"
	qctl enqueue -q --max-size 2M "$Q" <"$TMP/big"
	run -0 --separate-stderr bash -c 'qctl consume "$1" | head -c 1 >/dev/null; echo "${PIPESTATUS[0]}"' _ "$Q"
	assert_output 74
	assert_equal "$stderr" ""
	# all three came back
	run -0 --separate-stderr qctl consume -q --until-empty "$Q"
	assert_equal "${#output}" $((3 * 1000000 + 2))
}

@test "consume: --dedupe while printing skips an id already printed" {
	qctl declare -q "$Q"
	enqueue --message-id same first
	enqueue --message-id same second
	enqueue --message-id other third
	run -0 --separate-stderr qctl consume --dedupe --until-empty "$Q"
	assert_output "$(printf 'first\nthird')"
	[[ "$stderr" == *"(2 acked, 0 retried, 0 dead-lettered, 1 skipped)" ]]
	run -0 rcli EXISTS "${P}qctl:done:$Q:same"
	assert_output 1
}

# ---- handlers ---------------------------------------------------------------------

@test "consume --exec: body on stdin, metadata in CQ_*; success acks" {
	qctl declare -q "$Q"
	enqueue -H trace-id=abc -H 'weird name!=x' --message-id id-1 "the body"
	run -0 --separate-stderr qctl consume --until-empty -e '
		cat >"$TMP/body"
		env | grep "^CQ_" | grep -v "^CQ_\(REDIS\|AMQP\|AMQPS\|API\|TLS\|SANDBOX\|RABBITMQCTL\|REDIS_CLI\|PREFIX\|BIN_DIR\)" | sort >"$TMP/env"' "$Q"
	[[ "$stderr" == *"(1 acked, 0 retried, 0 dead-lettered)" ]]
	assert_equal "$(cat "$TMP/body")" "the body"
	run cat "$TMP/env"
	assert_line "CQ_MESSAGE_ID=id-1"
	assert_line "CQ_QUEUE=$Q"
	assert_line "CQ_REDELIVERED=0"
	assert_line "CQ_RETRIES=0"
	assert_line "CQ_HEADER_TRACE_ID=abc"
	assert_line "CQ_HEADER_WEIRD_NAME_=x"
	run -0 take_all "$Q"
	assert_output ""
}

@test "consume --exec: a handler gets the default SIGPIPE, not qctl's ignored one" {
	qctl declare -q "$Q"
	enqueue x
	qctl consume -q --until-empty -e 'awk "/^SigIgn/ {print \$2}" /proc/self/status >"$TMP/ign"' "$Q"
	local mask
	mask=$(cat "$TMP/ign")
	# SIGPIPE is signal 13: bit 12 of the mask
	[ $(( 16#$mask & 0x1000 )) -eq 0 ]
}

@test "consume --exec: a handler that ignores a large body does not hang us" {
	qctl declare -q "$Q"
	head -c 3000000 /dev/zero | tr '\0' a | qctl enqueue -q --max-size 4M "$Q"
	run -0 --separate-stderr qctl consume --until-empty -e 'exit 0' "$Q"
	[[ "$stderr" == *"(1 acked, 0 retried, 0 dead-lettered)" ]]
}

@test "consume --exec: failures are retried, then dead-lettered to QUEUE.dlq with the reason" {
	qctl declare -q "$Q"
	enqueue --message-id bad-1 payload
	run -0 --separate-stderr qctl consume --until-empty --max-retries 2 -e '
		echo "run $CQ_RETRIES" >>"$TMP/runs"
		for i in 1 2 3 4 5 6; do echo "noise $i" >&2; done
		echo "boom at try $CQ_RETRIES" >&2
		exit 3' "$Q"
	[[ "$stderr" == *"(0 acked, 2 retried, 1 dead-lettered)" ]]
	# the handler's stderr is passed through
	[[ "$stderr" == *"boom at try 0"* ]]
	[[ "$stderr" == *"message 'bad-1' failed (exit 3): retry 1 of 2"* ]]
	[[ "$stderr" == *"message 'bad-1' dead-lettered to '$Q.dlq': exit 3"* ]]
	assert_equal "$(cat "$TMP/runs")" "$(printf 'run 0\nrun 1\nrun 2')"
	run -0 first_headers "$Q.dlq"
	local h=$output
	jq -e '."x-cq-retries" == 3 and ."x-cq-exit-code" == 3
		and ."x-cq-death-reason" == "exit 3"
		and ."x-cq-original-queue" == "'"$Q"'"
		and ."x-cq-original-routing-key" == "'"$Q"'"
		and (."x-cq-host" | length > 0)
		and (."x-cq-died-at" > 1700000000)
		and ."x-cq-stderr" == "noise 4\nnoise 5\nnoise 6\nboom at try 2"' <<<"$h"
	# the original is gone from the queue, the dead letter keeps its body
	run -0 take_all "$Q"
	assert_output ""
	run -0 take_all "$Q.dlq"
	assert_output payload
}

@test "consume --exec: a poison exit code goes to the dead-letter queue at once" {
	qctl declare -q "$Q"
	enqueue p1
	run -0 --separate-stderr qctl consume --until-empty -e 'echo ran >>"$TMP/runs"; exit 65' "$Q"
	[[ "$stderr" == *"(0 acked, 0 retried, 1 dead-lettered)" ]]
	assert_equal "$(cat "$TMP/runs")" ran
	run -0 first_headers "$Q.dlq"
	jq -e '."x-cq-death-reason" == "poison (exit 65)" and ."x-cq-retries" == 1' <<<"$output"
	# --poison-codes replaces the list
	enqueue p2
	run -0 --separate-stderr qctl consume --until-empty --max-retries 0 --poison-codes 70,71 -e 'exit 71' "$Q"
	[[ "$stderr" == *"'$Q.dlq': poison (exit 71)"* ]]
}

@test "consume --exec: a queue with a dead-letter exchange dead-letters through the broker (x-death)" {
	qctl declare -q --dlq "$Q"
	enqueue d1
	run -0 --separate-stderr qctl consume --until-empty --max-retries 0 -e 'exit 9' "$Q"
	[[ "$stderr" == *"dead-lettered through exchange '$Q.dlx': exit 9"* ]]
	run -0 first_headers "$Q.dlq"
	jq -e '."x-death"[0].reason == "rejected" and ."x-death"[0].queue == "'"$Q"'"
		and (has("x-cq-death-reason") | not)' <<<"$output"
}

@test "consume --exec: a DLX is found behind other queue arguments (ttl, max-length, priority)" {
	qctl declare -q --dlq --message-ttl 1h --max-length 100 --max-priority 5 "$Q"
	enqueue d1
	run -0 --separate-stderr qctl consume --until-empty --max-retries 0 -e 'exit 9' "$Q"
	[[ "$stderr" == *"dead-lettered through exchange '$Q.dlx': exit 9"* ]]
	run -0 first_headers "$Q.dlq"
	jq -e '."x-death"[0].reason == "rejected"' <<<"$output"
}

@test "consume --exec: queues without a DLX (with arguments, or not durable) dead-letter to QUEUE.dlq" {
	qctl declare -q --max-length 100 --message-ttl 1h "$Q"
	enqueue d1
	run -0 --separate-stderr qctl consume --until-empty --max-retries 0 -e 'exit 9' "$Q"
	[[ "$stderr" == *"dead-lettered to '$Q.dlq': exit 9"* ]]
	amqp-delete-queue -u "$CQ_AMQP_URL" -q "$Q" >/dev/null
	amqp-declare-queue -u "$CQ_AMQP_URL" -q "$Q" >/dev/null	# not durable
	enqueue d2
	run -0 --separate-stderr qctl consume --until-empty --max-retries 0 -e 'exit 9' "$Q"
	[[ "$stderr" == *"dead-lettered to '$Q.dlq': exit 9"* ]]
	run -0 take_all "$Q.dlq"
	assert_output "$(printf 'd1\nd2')"
}

@test "consume --exec: --dlq NAME publishes there even when the queue has a DLX" {
	qctl declare -q --dlq "$Q"
	qctl declare -q "$Q.other"
	enqueue d1
	run -0 --separate-stderr qctl consume --until-empty --max-retries 0 --dlq "$Q.other" -e 'exit 4' "$Q"
	run -0 first_headers "$Q.other"
	jq -e '."x-cq-death-reason" == "exit 4" and (has("x-death") | not)' <<<"$output"
}

@test "consume --exec: --handler-timeout kills a hung handler (and what it started)" {
	qctl declare -q "$Q"
	enqueue slow
	run -0 --separate-stderr timeout 60 qctl consume --until-empty --max-retries 0 \
		--handler-timeout 300ms -e 'sleep 50 & echo $! >"$TMP/handler.pid"; wait' "$Q"
	[[ "$stderr" == *"dead-lettered to '$Q.dlq': timeout"* ]]
	# the background sleep went with its process group
	wait_for 5 gone "$(cat "$TMP/handler.pid")"
	run -0 first_headers "$Q.dlq"
	jq -e '."x-cq-death-reason" == "timeout"' <<<"$output"
}

@test "consume --exec: --retry-delay holds a failed message, then retries it" {
	qctl declare -q "$Q"
	enqueue r1
	# fails the first time, succeeds the second
	run -0 --separate-stderr qctl consume --until-empty --retry-delay 200ms -e '
		echo "try $CQ_RETRIES" >>"$TMP/runs"
		[ "$CQ_RETRIES" = 1 ]' "$Q"
	[[ "$stderr" == *"(1 acked, 1 retried, 0 dead-lettered)" ]]
	assert_equal "$(cat "$TMP/runs")" "$(printf 'try 0\ntry 1')"
}

@test "consume --exec: --jobs runs handlers in parallel" {
	qctl declare -q "$Q"
	enqueue a b c
	# each handler waits (up to 10s) until all three are running at once
	run -0 --separate-stderr qctl consume --until-empty --jobs 3 --max-retries 0 -e '
		touch "$TMP/started.$(cat)"
		for i in $(seq 100); do
			[ "$(ls "$TMP" | grep -c "^started\.")" -ge 3 ] && exit 0
			sleep 0.1
		done
		exit 1' "$Q"
	[[ "$stderr" == *"(3 acked, 0 retried, 0 dead-lettered)" ]]
}

@test "consume --exec: --count stops after N handled" {
	qctl declare -q "$Q"
	enqueue a b c d
	run -0 --separate-stderr qctl consume --count 2 --jobs 2 -e 'cat >>"$TMP/seen"; echo >>"$TMP/seen"' "$Q"
	[[ "$stderr" == *"consumed 2 messages"* ]]
	run -0 take_all "$Q"
	assert_output "$(printf 'c\nd')"
}

@test "consume --exec: --dedupe skips an id already processed, and only after success" {
	qctl declare -q "$Q"
	enqueue --message-id pay-1 charge
	enqueue --message-id pay-1 charge-again
	enqueue --message-id pay-2 other
	run -0 --separate-stderr qctl consume --until-empty --dedupe -e 'cat >>"$TMP/done"; echo >>"$TMP/done"' "$Q"
	[[ "$stderr" == *"(2 acked, 0 retried, 0 dead-lettered, 1 skipped)" ]]
	assert_equal "$(cat "$TMP/done")" "$(printf 'charge\nother')"
	run -0 rcli PTTL "${P}qctl:done:$Q:pay-1"
	[ "$output" -gt 0 ]
	# a failure records nothing: the id is processed when it is retried
	enqueue --message-id pay-3 flaky
	run -0 --separate-stderr qctl consume --until-empty --dedupe -e '[ "$CQ_RETRIES" = 1 ]' "$Q"
	[[ "$stderr" == *"(1 acked, 1 retried, 0 dead-lettered, 0 skipped)" ]]
}

@test "consume --dedupe: Redis unreachable exits 69 and takes nothing" {
	qctl declare -q "$Q"
	enqueue keep
	run -69 --separate-stderr env CQ_REDIS_URL="redis://127.0.0.1:$(free_port)/0" \
		qctl consume --dedupe --until-empty -e true "$Q"
	[[ "$stderr" == "qctl: consume: cannot connect to Redis at 127.0.0.1:"* ]]
	run -0 take_all "$Q"
	assert_output keep
}

@test "consume --exec: SIGTERM lets the running handler finish and acks it" {
	qctl declare -q "$Q"
	enqueue first second
	qctl consume -e 'touch "$TMP/started"; sleep 1; cat >>"$TMP/done"' "$Q" \
		>"$TMP/out" 2>"$TMP/err" &
	local pid=$!
	for i in $(seq 100); do [ -e "$TMP/started" ] && break; sleep 0.1; done
	[ -e "$TMP/started" ]
	kill -TERM "$pid"
	local rc=0
	wait "$pid" || rc=$?
	assert_equal "$rc" 0
	assert_equal "$(cat "$TMP/done")" first
	grep -q "(1 acked, 0 retried, 0 dead-lettered)" "$TMP/err"
	# first was acked; second was never started and is still there
	run -0 take_all "$Q"
	assert_output second
}

@test "consume --exec: kill -9 of qctl mid-handler loses nothing" {
	qctl declare -q "$Q"
	enqueue precious
	qctl consume -e 'echo $$ >"$TMP/handler.pid"; sleep 30' "$Q" 2>/dev/null &
	local pid=$!
	for i in $(seq 100); do [ -s "$TMP/handler.pid" ] && break; sleep 0.1; done
	[ -s "$TMP/handler.pid" ]
	kill -9 "$pid"
	wait "$pid" || true
	# the unacked message went back to the queue
	for i in $(seq 50); do
		run take_all "$Q"
		[ "$output" = precious ] && break
		sleep 0.1
	done
	assert_output precious
}

@test "consume: heartbeats keep a consumer alive through a long handler" {
	qctl declare -q "$Q"
	enqueue long
	# the broker drops a client silent for two heartbeats (2s here)
	run -0 --separate-stderr qctl consume --until-empty --heartbeat 1s -e 'sleep 4' "$Q"
	[[ "$stderr" == *"(1 acked, 0 retried, 0 dead-lettered)" ]]
	run -0 take_all "$Q"
	assert_output ""
}

@test "consume: progress on a terminal, none with -q or without a terminal" {
	qctl declare -q "$Q"
	enqueue a
	# script(1) gives qctl a terminal; the handler outlasts the 250ms
	# between progress lines
	run -0 script -qec "qctl consume --until-empty -e 'sleep 1' '$Q'" /dev/null
	[[ "$output" == *"qctl: consume: 0 consumed (0 acked, 0 retried, 0 dead-lettered), 1 running"* ]]
	[[ "$output" == *"consumed 1 message in "* ]]
	enqueue b
	run -0 script -qec "qctl consume -q --until-empty -e 'sleep 1' '$Q'" /dev/null
	assert_output ""
	enqueue c
	run -0 --separate-stderr qctl consume --until-empty -e 'sleep 1' "$Q"
	[[ "$stderr" != *running* ]]
}

@test "consume: SIGINT while printing stops cleanly with 0 and keeps what it acked" {
	qctl declare -q "$Q"
	enqueue a b
	qctl consume "$Q" >"$TMP/out" 2>"$TMP/err" &
	local pid=$!
	for i in $(seq 100); do [ "$(wc -l <"$TMP/out")" -ge 2 ] && break; sleep 0.1; done
	kill -INT "$pid"
	local rc=0
	wait "$pid" || rc=$?
	assert_equal "$rc" 0
	assert_equal "$(cat "$TMP/out")" "$(printf 'a\nb')"
	grep -q "consumed 2 messages in .*(2 acked, 0 retried, 0 dead-lettered)" "$TMP/err"
	run -0 take_all "$Q"
	assert_output ""
}

@test "consume: the queue deleted under the consumer exits 1 and says so" {
	qctl declare -q "$Q"
	qctl consume "$Q" >"$TMP/out" 2>"$TMP/err" &
	local pid=$!
	sleep 0.5
	amqp-delete-queue -u "$CQ_AMQP_URL" -q "$Q" >/dev/null
	local rc=0
	wait "$pid" || rc=$?
	assert_equal "$rc" 1
	grep -q "^qctl: consume: RabbitMQ cancelled the consumer: queue '$Q' was deleted$" "$TMP/err"
}

# ---- connection failures ------------------------------------------------------------

@test "consume: an unreachable broker exits 69" {
	run -69 --separate-stderr env CQ_AMQP_URL="amqp://guest:guest@127.0.0.1:$(free_port)/" qctl consume "$Q"
	[[ "$stderr" == "qctl: consume: cannot connect to RabbitMQ at 127.0.0.1:"* ]]
}

@test "consume: a wrong password exits 77 and never prints it" {
	local hostport=${CQ_AMQP_URL#amqp://*@}
	run -77 --separate-stderr env CQ_AMQP_URL="amqp://guest:Wr0ngS3cret@$hostport" qctl consume "$Q"
	[[ "$stderr" == "qctl: consume: "*"RabbitMQ at "*"'guest'"*"refused"* ]]
	[[ "$stderr$output" != *Wr0ngS3cret* ]]
}

@test "consume: the broker's x-delivery-count beside qctl's retry count (CQ_DELIVERY_COUNT, the retry notice)" {
	qctl declare -q --quorum --delivery-limit 5 "$Q"
	qctl enqueue -q "$Q" m1
	export SEEN="$TMP/seen"
	# 1st delivery: the handler kills its consumer, the broker gets it back
	# (its sleep lets go of run's output, which would wait for it)
	run -137 qctl consume -q -n 1 --exec 'echo "$CQ_RETRIES $CQ_DELIVERY_COUNT" >> "$SEEN"; kill -9 $PPID; exec sleep 5 >/dev/null 2>&1' "$Q"
	# 2nd: the broker counted one return; the handler fails, qctl retries
	# with a new copy, which starts at the broker's 0 again
	run -0 --separate-stderr qctl consume --idle-timeout 1s \
		--exec 'echo "$CQ_RETRIES $CQ_DELIVERY_COUNT" >> "$SEEN"; [ "$CQ_DELIVERY_COUNT" = 0 ]' "$Q"
	[[ "$stderr" == *"message '"*"' failed (exit 1): retry 1 of 3 (broker delivery count 1)"* ]] ||
		{ echo "$stderr"; false; }
	[ "$(paste -sd, "$SEEN")" = "0 0,0 1,1 0" ]
	[ "$(take_all "$Q")" = "" ]
}

@test "consume: --until-empty on a missing queue says it does not exist, not that it is empty" {
	run -1 --separate-stderr qctl consume --until-empty "$Q"
	assert_equal "$stderr" "qctl: consume: queue '$Q' does not exist (create it with: qctl declare $Q)"
}
