#!/usr/bin/env bats
# qctl peek (issue 4): show messages without removing them, with the dead
# letter story; say that they are now redelivered; warn before peeking a
# quorum queue with a delivery limit.

bats_require_minimum_version 1.5.0
load test_helper
load qctl_helper

@test "peek: shows messages, leaves them all, and says they are now redelivered" {
	qctl declare -q "$Q"
	qctl enqueue -q --message-id m-1 "$Q" "first body"
	qctl enqueue -q "$Q" second
	run -0 --separate-stderr qctl peek "$Q"
	[[ "${lines[0]}" =~ ^"#1 id=m-1 age="[0-9]+s" size=10"$ ]]
	assert_equal "${lines[1]}" "   body: first body"
	[[ "${lines[2]}" == "#2 id="*" size=6" ]]
	assert_equal "$stderr" "qctl: peek: note: the 2 messages shown went back to '$Q' and are now marked redelivered"
	[ "$(ready "$Q")" = 2 ]
	run -0 api_get "$Q" 10 ack_requeue_true
	[ "$(jq -r '[.[].redelivered] | join(",")' <<<"$output")" = true,true ]
	# a second peek sees the same messages again, flagged
	run -0 qctl peek -q "$Q"
	[[ "${lines[0]}" == "#1 id=m-1 "*" redelivered" ]]
}

@test "peek: --count N shows N distinct messages" {
	qctl declare -q "$Q"
	seq 1 5 | qctl enqueue -q "$Q"
	run -0 qctl peek -q --count 3 "$Q"
	[ "$(grep -c '^#' <<<"$output")" = 3 ]
	[ "$(grep '^   body:' <<<"$output" | tr '\n' ' ')" = "   body: 1    body: 2    body: 3 " ]
	[ "$(ready "$Q")" = 5 ]
}

@test "peek: dead letters show reason, count, queue and exchange from x-death" {
	qctl declare -q --dlq "$Q"
	qctl enqueue -q "$Q" doomed
	reject "$Q"
	run -0 qctl peek -q "$Q.dlq"
	[[ "${lines[1]}" =~ ^"   died: rejected (count 1), queue '$Q', exchange '' (default), routing key '$Q', "[0-9]+s" ago [x-death]"$ ]]
	run -0 qctl peek -q --json "$Q.dlq"
	[ "$(jq -r .death.source <<<"$output")" = x-death ]
	[ "$(jq -r .death.reason <<<"$output")" = rejected ]
	[ "$(jq -r .death.queue <<<"$output")" = "$Q" ]
	[ "$(jq -r .death.count <<<"$output")" = 1 ]
	[ "$(jq -r '.headers["x-death"][0].reason' <<<"$output")" = rejected ]
	[ "$(jq -r .body <<<"$output")" = doomed ]
}

@test "peek: qctl's own dead-letter headers, and an application's, are understood" {
	qctl declare -q "$Q.dlq"
	qctl enqueue -q "$Q.dlq" -H x-cq-original-queue=orders -H x-cq-death-reason='exit 3' \
		-H x-cq-retries=5 -H x-cq-exit-code=3 -H x-cq-host=worker-1 \
		-H "x-cq-died-at=$(date +%s)" -H 'x-cq-stderr=disk full' by-qctl
	qctl enqueue -q "$Q.dlq" -H x-original-queue=mail -H x-exception-message=timeout by-app
	run -0 qctl peek -q "$Q.dlq"
	assert_line --index 1 --regexp "^   died: exit 3 \(count 5\), queue 'orders', [0-9]+s ago \[qctl\]$"
	assert_line --index 2 "   retries 5, exit code 3, host worker-1"
	assert_line --index 3 "   stderr: disk full"
	assert_line --index 6 "   died: timeout, queue 'mail' [headers]"
}

@test "peek: after the last retry died through the DLX, the exit code and stderr of qctl's headers are said to be an earlier attempt's" {
	qctl declare -q --dlq "$Q"
	qctl enqueue -q "$Q" job
	# attempt 1 exits 3 (retried with qctl's headers), attempt 2 exits 4
	# and is rejected into the DLX: x-death says so, without an exit code
	run -0 qctl consume -q --exec 'echo "try $CQ_RETRIES" >&2; exit $((3 + CQ_RETRIES))' \
		--max-retries 1 --count 2 "$Q"
	[ "$(ready "$Q.dlq")" = 1 ]
	run -0 qctl peek -q "$Q.dlq"
	assert_line --index 1 --regexp "^   died: rejected \(count 1\), queue '$Q', .* ago \[x-death\]$"
	assert_line --index 2 "   earlier: attempt 1 failed with exit code 3"
	assert_line --index 3 "     stderr: try 0"
	assert_line --index 4 "   body: job"
	run -0 qctl peek -q --json "$Q.dlq"
	[ "$(jq -c '.death | [.source, .reason, .exit_code, .stderr]' <<<"$output")" = '["x-death","rejected",null,null]' ]
	[ "$(jq -c '.death.earlier' <<<"$output")" = '{"retries":1,"exit_code":3,"stderr":"try 0"}' ]
	# qctl's own dead-lettering (no DLX on the queue: its headers are the
	# death) still shows them as the death's
	qctl declare -q "$Q.other"
	qctl enqueue -q "$Q.other" job
	run -0 qctl consume -q --exec 'echo no >&2; exit 5' --max-retries 0 --count 1 "$Q.other"
	run -0 qctl peek -q "$Q.other.dlq"
	assert_line --index 2 --regexp "^   retries 1, exit code 5, host .+$"
	assert_line --index 3 "   stderr: no"
}

@test "peek: bodies are previewed with escapes; --json carries binary bodies as base64" {
	qctl declare -q "$Q"
	printf '{"body_base64":"AP9saW5lCnR3bw=="}\n' | qctl enqueue -q --jsonl "$Q"
	seq 1 100 | tr -d '\n' | qctl enqueue -q "$Q"
	run -0 qctl peek -q --preview 20 "$Q"
	assert_line --index 1 '   body: \x00\xffline\ntwo'
	assert_line --index 3 '   body: 12345678910111213141...'
	run -0 qctl peek -q --json -n 1 "$Q"
	[ "$(jq -r .body_base64 <<<"$output")" = AP9saW5lCnR3bw== ]
	[ "$(jq -r .size <<<"$output")" = 10 ]
}

@test "peek: the queue-argument probe reads the broker's reply, not a name that looks like one" {
	# the old parser took the first "current is the value" of the text,
	# inside this queue's name, and never saw the delivery limit
	local q="$Q current is the value '9' of type 'long' x"
	qctl declare -q --quorum --delivery-limit 5 "$q"
	qctl enqueue -q "$q" x
	run -0 --separate-stderr qctl peek "$q"
	amqp-delete-queue -u "$CQ_AMQP_URL" -q "$q" >/dev/null
	[[ "$stderr" == "qctl: peek: warning: '$q' is a quorum queue with a delivery limit of 5: each peek counts as a delivery"* ]]
}

@test "peek: warns before peeking a quorum queue with a delivery limit" {
	qctl declare -q --quorum --delivery-limit 5 "$Q"
	qctl enqueue -q "$Q" x
	run -0 --separate-stderr qctl peek "$Q"
	[[ "$stderr" == "qctl: peek: warning: '$Q' is a quorum queue with a delivery limit of 5: each peek counts as a delivery"* ]]
	qctl declare -q --quorum "$Q.other"
	qctl enqueue -q "$Q.other" y
	run -0 --separate-stderr qctl peek "$Q.other"
	[[ "$stderr" != *warning* ]]
	qctl declare -q --max-length 10 --dlq "$Q.target"
	qctl enqueue -q "$Q.target" z
	run -0 --separate-stderr qctl peek "$Q.target"
	[[ "$stderr" != *warning* ]]
}

@test "peek: an empty queue exits 1; a missing queue exits 1 naming it" {
	qctl declare -q "$Q"
	run -1 --separate-stderr qctl peek "$Q"
	assert_equal "$stderr" "qctl: peek: queue '$Q' is empty"
	run -1 --separate-stderr qctl peek "$Q.nope"
	assert_equal "$stderr" "qctl: peek: queue '$Q.nope' does not exist (create it with: qctl declare $Q.nope)"
}

@test "peek: a closed stdout stops quietly with exit 74 and every message stays" {
	qctl declare -q "$Q"
	seq 1 2000 | qctl enqueue -q "$Q"
	run -0 --separate-stderr bash -c "qctl peek -q -n 2000 '$Q' | head -c 10 >/dev/null; echo \${PIPESTATUS[0]}"
	assert_output 74
	[ "$(ready "$Q")" = 2000 ]
}

@test "peek: usage errors (64), unreachable broker (69), wrong password (77)" {
	run -64 qctl peek
	run -64 qctl peek --count 0 "$Q"
	run -64 qctl peek a b
	run -69 qctl peek --amqp amqp://guest:guest@127.0.0.1:1/ "$Q"
	run -77 --separate-stderr qctl peek --amqp "$(bad_password_url)" "$Q"
	[[ "$stderr" != *wrong-s3cret* ]]
}
