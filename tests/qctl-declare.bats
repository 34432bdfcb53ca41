#!/usr/bin/env bats
# qctl declare (issue 4): durable queues, dead-letter exchange and queue,
# idempotent; a conflicting declaration is a clear error, not a crash.

bats_require_minimum_version 1.5.0
load test_helper
load qctl_helper

# The queue's type, durability and arguments, as rabbitmqctl reports them.
queue_info() {
	rctl list_queues -q name type durable arguments |
		awk -v q="$1" -F'\t' '$1 == q { print $2 "\t" $3 "\t" $4 }'
}

@test "declare: a durable classic queue, idempotent" {
	run -0 --separate-stderr qctl declare "$Q"
	assert_equal "$stderr" "declared '$Q' (0 messages, 0 consumers)"
	qctl enqueue -q "$Q" kept
	run -0 --separate-stderr qctl declare "$Q"
	assert_equal "$stderr" "declared '$Q' (1 message, 0 consumers)"
	run -0 queue_info "$Q"
	[[ "$output" == "classic	true	"* ]]
}

@test "declare: --dlq routes rejected messages to QUEUE.dlq with RabbitMQ's x-death" {
	run -0 --separate-stderr qctl declare --dlq "$Q"
	assert_equal "$stderr" "declared '$Q' (0 messages, 0 consumers), dead letters to '$Q.dlq' via exchange '$Q.dlx'"
	qctl enqueue -q "$Q" -H app=billing bad-one
	reject "$Q"
	[ "$(ready "$Q")" = 0 ]
	[ "$(ready "$Q.dlq")" = 1 ]
	run -0 api_get "$Q.dlq"
	[ "$(jq -r '.[0].properties.headers["x-death"][0].reason' <<<"$output")" = rejected ]
	[ "$(jq -r '.[0].properties.headers["x-death"][0].queue' <<<"$output")" = "$Q" ]
	[ "$(jq -r '.[0].properties.headers.app' <<<"$output")" = billing ]
	[ "$(jq -r '.[0].payload | @base64d' <<<"$output")" = bad-one ]
	# again: nothing changes
	run -0 qctl declare -q --dlq "$Q"
}

@test "declare: --dlq=NAME picks the dead-letter queue; --json says what was declared" {
	run -0 --separate-stderr qctl declare --json --dlq="$Q.custom-dlq" "$Q"
	[ "$(jq -r .dlq <<<"$output")" = "$Q.custom-dlq" ]
	[ "$(jq -r .dlx <<<"$output")" = "$Q.dlx" ]
	[ "$(jq -r .messages <<<"$output")" = 0 ]
	qctl enqueue -q "$Q" x
	reject "$Q"
	[ "$(ready "$Q.custom-dlq")" = 1 ]
}

@test "declare: --message-ttl expires messages into the DLQ (reason expired)" {
	qctl declare -q --dlq --message-ttl 100ms "$Q"
	qctl enqueue -q "$Q" short-lived
	sleep 0.5
	run -0 api_get "$Q.dlq"
	[ "$(jq -r '.[0].properties.headers["x-death"][0].reason' <<<"$output")" = expired ]
}

@test "declare: --max-length, --max-priority and --quorum --delivery-limit set the arguments" {
	qctl declare -q --max-length 3 --max-priority 5 "$Q"
	run -0 queue_info "$Q"
	[[ "$output" == *"x-max-length"*3* ]]
	[[ "$output" == *"x-max-priority"*5* ]]
	qctl enqueue -q "$Q" 1 2 3 4 5
	[ "$(ready "$Q")" = 3 ]
	qctl declare -q --quorum --delivery-limit 2 --dlq "$Q.other"
	run -0 queue_info "$Q.other"
	[[ "$output" == "quorum	true	"*"x-delivery-limit"*2* ]]
}

@test "declare: --quorum --dlq makes both quorum queues, dead-lettering at-least-once with reject-publish" {
	qctl declare -q --quorum --dlq "$Q"
	run -0 queue_info "$Q"
	[[ "$output" == "quorum	true	"* ]]
	[[ "$output" == *'{"x-dead-letter-strategy","at-least-once"}'* ]]
	[[ "$output" == *'{"x-overflow","reject-publish"}'* ]]
	run -0 queue_info "$Q.dlq"
	[[ "$output" == "quorum	true	"* ]]
	# the broker really refuses what a full queue cannot take: exit 75, named
	qctl declare -q --quorum --dlq --max-length 2 "$Q.other"
	# (a quorum queue notices it is over its limit once past it: one at a
	# time until the broker says no; nothing accepted is dropped)
	sent=
	for body in a b c d e; do
		run --separate-stderr qctl enqueue --json "$Q.other" "$body"
		[ "$status" = 0 ] || break
		sent=$sent${sent:+,}$body
	done
	[ "$status" = 75 ]
	[ "$output" = '{"argument":1,"error":"nacked by broker"}' ]
	[[ $sent == a,b || $sent == a,b,c ]]
	[ "$(take_bodies "$Q.other" | paste -sd,)" = "$sent" ]
	[ "$(ready "$Q.other.dlq")" = 0 ]
}

@test "declare: --dead-letter-strategy at-most-once leaves the broker's default (a full queue drops its head)" {
	qctl declare -q --quorum --dlq --dead-letter-strategy at-most-once --max-length 2 "$Q"
	run -0 queue_info "$Q"
	[[ "$output" == "quorum	true	"* ]]
	[[ "$output" != *x-dead-letter-strategy* && "$output" != *x-overflow* ]]
	run -0 queue_info "$Q.dlq"
	[[ "$output" == "quorum	true	"* ]]
	qctl enqueue -q "$Q" a b c
	[ "$(take_bodies "$Q" | paste -sd,)" = b,c ]
	# the dropped head went to the DLQ (at-most-once: eventually)
	wait_for 10 bash -c "[ \"\$(amqp-get -u '$CQ_AMQP_URL' -q '$Q.dlq')\" = a ]"
	# the default would be a different queue: a clear error, exit 65
	run -65 --separate-stderr qctl declare --quorum --dlq --max-length 2 "$Q"
	[ "$stderr" = "qctl: declare: queue '$Q' already exists with a different 'x-dead-letter-strategy' (received the value 'at-least-once' of type 'longstr' but current is none); delete it or declare it with the same arguments" ] ||
		{ echo "$stderr"; false; }
	run -0 qctl declare -q --quorum --dlq --dead-letter-strategy at-most-once --max-length 2 "$Q"
}

@test "declare: a conflict is explained from the broker's reply, whatever the queue's name says" {
	local q="$Q': received x"
	qctl declare -q --max-length 5 "$q"
	run -65 --separate-stderr qctl declare --max-length 6 "$q"
	amqp-delete-queue -u "$CQ_AMQP_URL" -q "$q" >/dev/null
	assert_equal "$stderr" "qctl: declare: queue '$q' already exists with a different 'x-max-length' (received '6' but current is '5'); delete it or declare it with the same arguments"
}

@test "declare: different arguments exit 65 naming the argument; the queue is untouched" {
	qctl declare -q --max-length 5 "$Q"
	qctl enqueue -q "$Q" still-here
	run -65 --separate-stderr qctl declare --max-length 6 "$Q"
	[[ "$stderr" == "qctl: declare: queue '$Q' already exists with a different 'x-max-length' (received "*"); delete it or declare it with the same arguments" ]]
	run -65 --separate-stderr qctl declare --quorum "$Q"
	[[ "$stderr" == *"with a different '"* ]]
	run -65 --separate-stderr qctl declare "$Q"
	[[ "$stderr" == *"with a different 'x-max-length'"* ]]
	[ "$(ready "$Q")" = 1 ]
}

@test "declare: usage errors exit 64" {
	run -64 --separate-stderr qctl declare
	[[ "$stderr" == *"missing QUEUE"* ]]
	run -64 --separate-stderr qctl declare a b
	run -64 --separate-stderr qctl declare --delivery-limit 3 "$Q"
	[[ "$stderr" == *"--delivery-limit needs --quorum"* ]]
	run -64 --separate-stderr qctl declare --quorum --dead-letter-strategy at-least-once "$Q"
	[ "${stderr%%$'\n'*}" = "qctl: declare: --dead-letter-strategy needs --quorum and --dlq" ]
	run -64 --separate-stderr qctl declare --quorum --dlq --dead-letter-strategy sometimes "$Q"
	[[ "$stderr" == *"--dead-letter-strategy: 'sometimes' is not at-least-once or at-most-once"* ]]
	run -64 --separate-stderr qctl declare --max-length -1 "$Q"
	run -64 --separate-stderr qctl declare --max-priority 256 "$Q"
	run -64 --separate-stderr qctl declare --message-ttl 1x "$Q"
	# quotes are fine now (see the last test); a name the broker refuses
	run -64 --separate-stderr qctl declare "$Q$(printf '%0256d' 0)"
	[ "$(ready "$Q")" = missing ]
}

@test "declare: an unreachable broker exits 69, a wrong password 77 (not shown)" {
	run -69 --separate-stderr qctl declare --amqp amqp://guest:guest@127.0.0.1:1/ "$Q"
	[[ "$stderr" == "qctl: declare: cannot connect to RabbitMQ at 127.0.0.1:1"* ]]
	run -77 --separate-stderr qctl declare --amqp "$(bad_password_url)" "$Q"
	[[ "$stderr" != *wrong-s3cret* ]]
}

@test "declare: a comma-separated URL list is tried in order; a refused login stops it" {
	local port=${CQ_AMQP_URL##*:}
	port=${port%%/*}
	# the first is down, the second answers
	run -0 --separate-stderr qctl declare --amqp "amqp://guest:guest@127.0.0.1:1/%2f,$CQ_AMQP_URL" "$Q"
	[ "$(ready "$Q")" = 0 ]
	# all down: the last one tried is named
	run -69 --separate-stderr qctl declare --amqp "amqp://127.0.0.1:1/%2f,amqp://127.0.0.1:2/%2f" "$Q"
	assert_equal "$stderr" "qctl: declare: cannot connect to RabbitMQ at 127.0.0.1:2: a socket error occurred"
	# a wrong password is not a reason to try the next broker
	run -77 --separate-stderr qctl declare --amqp "amqp://guest:wrong@127.0.0.1:$port/%2f,$CQ_AMQP_URL" "$Q"
	assert_equal "$stderr" "qctl: declare: login to RabbitMQ at 127.0.0.1:$port as 'guest': ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For details see the broker logfile."
}

@test "any name the broker accepts works in every verb and round-trips in --json" {
	run -0 --separate-stderr qctl declare --dlq --json "$HQ"
	[ "${#lines[@]}" = 1 ]
	[ "$(jq -r .queue <<<"$output")" = "$HQ" ]
	[ "$(jq -r .dlq <<<"$output")" = "$HQ.dlq" ]
	[ "$(jq -r .dlx <<<"$output")" = "$HQ.dlx" ]
	run -0 --separate-stderr qctl declare --dlq "$HQ"
	assert_equal "$stderr" "declared '$HQ' (0 messages, 0 consumers), dead letters to '$HQ.dlq' via exchange '$HQ.dlx'"
	run -0 --separate-stderr qctl enqueue -q "$HQ" one two three
	[ "$(ready "$HQ")" = 3 ]
	run -0 --separate-stderr qctl peek --json -n 1 "$HQ"
	[ "$(jq -r '[.queue, .routing_key, .body] | join("|")' <<<"$output")" = "$HQ|$HQ|one" ]
	run -0 --separate-stderr qctl stats --json "$HQ"
	[ "$(jq -r '.queues[0] | [.queue, .dlq_queue, .ready] | join("|")' <<<"$output")" = "$HQ|$HQ.dlq|3" ]
	run -0 --separate-stderr qctl consume --count 1 --json "$HQ"
	[ "$(jq -r '[.queue, .body] | join("|")' <<<"$output")" = "$HQ|one" ]
	run -0 --separate-stderr qctl consume -q --count 1 -e 'exit 65' "$HQ"
	[ "$(ready "$HQ.dlq")" = 1 ]
	run -0 --separate-stderr qctl replay-dlq --json "$HQ.dlq"
	[ "$(jq -r '[.action, .to] | join("|")' <<<"$output")" = "moved|$HQ" ]
	[ "$(ready "$HQ.dlq")" = 0 ]
	run -0 --separate-stderr cqstat --no-cache --json -Q "$HQ"
	[ "$(jq -r '.queues[0] | [.queue, .ready] | join("|")' <<<"$output")" = "$HQ|2" ]
	run -0 --separate-stderr qctl purge --yes --json "$HQ"
	[ "$(jq -r .queue <<<"$output")" = "$HQ" ]
	[ "$(jq -r .purged <<<"$output")" = 2 ]
	[ "$(ready "$HQ")" = 0 ]
	run -0 --separate-stderr qctl purge --yes "$HQ"
	assert_output "purged 0 messages from '$HQ'"
}
