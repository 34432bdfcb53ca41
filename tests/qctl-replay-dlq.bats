#!/usr/bin/env bats
# qctl replay-dlq (issue 4): move dead letters back where they died, each
# republish confirmed before the dead-letter copy is acked; never loses,
# never loops; dead letters made by other clients too.

bats_require_minimum_version 1.5.0
load test_helper
load qctl_helper

# $Q with a DLX; N messages (bodies 1..N, header app=billing) rejected into
# $Q.dlq by the management API (any client's basic.reject, requeue=false).
dead_letters() {
	qctl declare -q --dlq "$Q"
	seq 1 "$1" | qctl enqueue -q -H app=billing "$Q"
	reject "$Q" "$1"
	[ "$(ready "$Q.dlq")" = "$1" ]
}

@test "replay-dlq: rejected messages go back to their queue with body, properties and headers" {
	dead_letters 3
	run -0 api_get "$Q.dlq" 10 ack_requeue_true
	ids=$(jq -r '[.[].properties.message_id] | join(",")' <<<"$output")
	run -0 --separate-stderr qctl replay-dlq "$Q.dlq"
	[[ "$stderr" =~ ^"replayed 3 to '$Q' (0 skipped, 0 failed) in "[0-9.]+"s"$ ]]
	[ "$(ready "$Q.dlq")" = 0 ]
	run -0 api_get "$Q" 10
	[ "$(jq -r '[.[].payload | @base64d] | join(",")' <<<"$output")" = 1,2,3 ]
	[ "$(jq -r '[.[].properties.message_id] | join(",")' <<<"$output")" = "$ids" ]
	[ "$(jq -r '[.[].properties.headers.app] | unique | join(",")' <<<"$output")" = billing ]
	[ "$(jq -r '[.[].properties.delivery_mode] | unique | join(",")' <<<"$output")" = 2 ]
	[ "$(jq -r '.[0].properties.headers["x-death"][0].reason' <<<"$output")" = rejected ]
	[ "$(jq -r '.[0].properties.headers["x-cq-replayed"]' <<<"$output")" = 1 ]
}

@test "replay-dlq: hand-republished dead letters: application headers, qctl headers, the DLQ's name" {
	qctl declare -q "$Q"
	qctl declare -q "$Q.other"
	qctl declare -q "$Q.dlq"
	qctl enqueue -q "$Q.dlq" -H x-original-queue="$Q.other" -H x-exception-message=boom to-other
	qctl enqueue -q "$Q.dlq" -H x-cq-original-queue="$Q.other" -H x-cq-retries=3 -H "x-cq-died-at=$(date +%s)" by-qctl
	qctl enqueue -q "$Q.dlq" -H custom=1 by-name
	run -0 --separate-stderr qctl replay-dlq "$Q.dlq"
	[[ "$stderr" == "replayed 3 to their original queues (0 skipped, 0 failed)"* ]]
	run -0 take_all "$Q.other"
	assert_output "$(printf 'to-other\nby-qctl')"
	run -0 take_all "$Q"
	assert_output by-name
}

@test "replay-dlq: --to sends everything to one queue; --reset-retries drops the retry count" {
	dead_letters 2
	qctl declare -q "$Q.target"
	qctl enqueue -q "$Q.dlq" -H x-cq-retries=4 -H "x-cq-original-queue=$Q" retried
	run -0 --separate-stderr qctl replay-dlq --reset-retries --to "$Q.target" "$Q.dlq"
	[[ "$stderr" == "replayed 3 to '$Q.target' (0 skipped, 0 failed)"* ]]
	run -0 api_get "$Q.target"
	[ "$(jq -r '[.[].payload | @base64d] | join(",")' <<<"$output")" = 1,2,retried ]
	[ "$(jq -r '.[2].properties.headers | has("x-cq-retries")' <<<"$output")" = false ]
	[ "$(jq -r '.[2].properties.headers["x-cq-original-queue"]' <<<"$output")" = "$Q" ]
}

@test "replay-dlq: --dry-run lists what would move where and moves nothing" {
	dead_letters 2
	run -0 --separate-stderr qctl replay-dlq --dry-run "$Q.dlq"
	[ "${#lines[@]}" = 2 ]
	[[ "${lines[0]}" =~ ^"would move "[0-9A-Za-z]{17}" to '$Q'"$ ]]
	[[ "$stderr" == "would replay 2 to '$Q' (0 skipped), nothing moved" ]]
	[ "$(ready "$Q.dlq")" = 2 ]
	[ "$(ready "$Q")" = 0 ]
	run -0 qctl replay-dlq -q --dry-run --json "$Q.dlq"
	[ "$(jq -r .action <<<"${lines[0]}")" = would-move ]
	[ "$(jq -r .to <<<"${lines[0]}")" = "$Q" ]
}

@test "replay-dlq: --filter by header, body regex and death reason; --count" {
	qctl declare -q --dlq "$Q"
	qctl enqueue -q -H tenant=acme "$Q" "order 1" "order 2"
	qctl enqueue -q -H tenant=other "$Q" "order 3" "invoice 4"
	reject "$Q"
	qctl enqueue -q "$Q.dlq" -H x-original-queue="$Q" "order 5 by hand"
	run -0 --separate-stderr qctl replay-dlq --filter tenant=other --filter 'body:^order [0-9]$' "$Q.dlq"
	[[ "$stderr" == "replayed 1 to '$Q' (4 skipped, 0 failed)"* ]]
	run -0 take_all "$Q"
	assert_output "order 3"
	# skipped ones went back in their places: order 1, order 2, invoice 4, order 5
	run -0 --separate-stderr qctl replay-dlq --filter header:tenant=acme --count 2 "$Q.dlq"
	[[ "$stderr" == "replayed 2 to '$Q' (0 skipped, 0 failed)"* ]]
	run -0 --separate-stderr qctl replay-dlq --filter reason:rejected "$Q.dlq"
	[[ "$stderr" == "replayed 1 to '$Q' (1 skipped, 0 failed)"* ]]
	run -0 take_all "$Q.dlq"
	assert_output "order 5 by hand"
	run -0 take_all "$Q"
	assert_output "$(printf 'order 1\norder 2\ninvoice 4')"
}

@test "replay-dlq: --count N looks at N messages, the ones --filter passes over too (as qctl(1) and --help say)" {
	qctl declare -q "$Q"
	qctl declare -q "$Q.dlq"
	qctl enqueue -q "$Q.dlq" a b c
	run -0 --separate-stderr qctl replay-dlq --filter body:b --count 1 "$Q.dlq"
	[[ "$stderr" == "replayed 0 to their original queues (1 skipped, 0 failed)"* ]]
	run -0 --separate-stderr qctl replay-dlq --filter body:b --count 2 "$Q.dlq"
	[[ "$stderr" == "replayed 1 to '$Q' (1 skipped, 0 failed)"* ]]
	run -0 take_all "$Q"
	assert_output b
	run -0 take_all "$Q.dlq"
	assert_output "$(printf 'a\nc')"
	run -0 qctl replay-dlq --help
	assert_output --partial "  -n, --count N      look at no more than N messages (with --filter,"
}

@test "replay-dlq: a message whose queue is gone stays in the DLQ and is reported (75)" {
	dead_letters 2
	qctl declare -q "$Q.dlq"
	qctl enqueue -q --message-id lost-1 -H x-original-queue="$Q.gone" "$Q.dlq" orphan
	run -75 --separate-stderr qctl replay-dlq "$Q.dlq"
	[[ "$stderr" == *"qctl: replay-dlq: message lost-1: not moved to '$Q.gone' (stays in '$Q.dlq'): unroutable (no queue bound)"* ]]
	[[ "$stderr" == *"replayed 2 to their original queues (0 skipped, 1 failed)"* ]]
	[ "$(ready "$Q.dlq")" = 1 ]
	[ "$(ready "$Q")" = 2 ]
	run -0 take_all "$Q.dlq"
	assert_output orphan
}

@test "replay-dlq: a message with no known origin is skipped and stays" {
	qctl declare -q "$Q.other"
	qctl enqueue -q --message-id nowhere "$Q.other" plain
	run -0 --separate-stderr qctl replay-dlq "$Q.other"
	[[ "$stderr" == *"message nowhere: skipped: no original queue known (use --to QUEUE)"* ]]
	[ "$(ready "$Q.other")" = 1 ]
}

@test "replay-dlq: moves only the messages present at start, so it cannot loop" {
	# every message put in $Q dead-letters at once back into $Q.dlq
	qctl declare -q --dlq --max-length 0 "$Q"
	qctl enqueue -q "$Q.dlq" -H x-original-queue="$Q" a b c
	run -0 --separate-stderr timeout 60 qctl replay-dlq "$Q.dlq"
	[[ "$stderr" == "replayed 3 to '$Q' (0 skipped, 0 failed)"* ]]
	[ "$(ready "$Q.dlq")" = 3 ]
}

@test "replay-dlq: kill -9 at any point loses nothing; a re-run finishes the move" {
	dead_letters 3000
	qctl replay-dlq -q --rate 3000 --window 200 "$Q.dlq" &
	pid=$!
	sleep 0.5
	kill -9 "$pid"
	wait "$pid" || true
	moved=$(ready "$Q")
	[ "$moved" -gt 0 ]
	[ "$moved" -lt 3000 ]
	run -0 qctl replay-dlq -q "$Q.dlq"
	[ "$(ready "$Q.dlq")" = 0 ]
	take_bodies "$Q" | sort -n | uniq > "$TMP/got"
	cmp "$TMP/got" <(seq 1 3000)
}

@test "replay-dlq: 2000 messages through a small window, in order" {
	dead_letters 2000
	run -0 --separate-stderr qctl replay-dlq --window 16 "$Q.dlq"
	[[ "$stderr" == "replayed 2000 to '$Q' (0 skipped, 0 failed)"* ]]
	take_bodies "$Q" > "$TMP/got"
	cmp "$TMP/got" <(seq 1 2000)
}

@test "replay-dlq: --json reports each message" {
	dead_letters 2
	run -0 qctl replay-dlq -q --json "$Q.dlq"
	[ "$(jq -r .action <<<"$output" | sort -u)" = moved ]
	[ "$(jq -r .to <<<"$output" | sort -u)" = "$Q" ]
}

@test "replay-dlq: a reader that goes away ends the run: 74 without a word; moved and left add up" {
	qctl declare -q "$Q"
	qctl declare -q "$Q.dlq"
	seq 1 2000 | qctl enqueue -q "$Q.dlq"
	# --dry-run went on through every message, then said 'would replay 2000'
	run -0 --separate-stderr bash -c 'qctl replay-dlq --dry-run --to "$1" "$1.dlq" | head -n 1 >/dev/null; echo "${PIPESTATUS[0]}"' _ "$Q"
	assert_output 74
	assert_equal "$stderr" ""
	# moving: it stops within a window; each message moved or still there
	run -0 --separate-stderr bash -c 'qctl replay-dlq --json --window 100 --to "$1" "$1.dlq" | head -c 1 >/dev/null; echo "${PIPESTATUS[0]}"' _ "$Q"
	assert_output 74
	assert_equal "$stderr" ""
	wait_for 10 eval '[ "$(depth "$Q" "$Q.dlq")" = 2000 ]'
	moved=$(depth "$Q")
	((moved > 0 && moved < 2000))
}

@test "replay-dlq: an empty DLQ exits 1; a missing one exits 1 naming it" {
	qctl declare -q "$Q.dlq"
	run -1 --separate-stderr qctl replay-dlq "$Q.dlq"
	assert_equal "$stderr" "qctl: replay-dlq: '$Q.dlq' is empty"
	run -1 --separate-stderr qctl replay-dlq "$Q.nope"
	# the error alone: no "replayed 0" summary of a run that never began
	assert_equal "$stderr" "qctl: replay-dlq: queue '$Q.nope' does not exist (create it with: qctl declare $Q.nope)"
}

@test "replay-dlq: usage errors (64), unreachable broker (69), wrong password (77)" {
	run -64 qctl replay-dlq
	run -64 --separate-stderr qctl replay-dlq --filter nonsense "$Q.dlq"
	[[ "$stderr" == *"--filter: bad filter 'nonsense'"* ]]
	run -64 --separate-stderr qctl replay-dlq --filter 'body:(' "$Q.dlq"
	[[ "$stderr" == *"bad regular expression"* ]]
	run -64 --separate-stderr qctl replay-dlq --to "$Q.dlq" "$Q.dlq"
	run -64 qctl replay-dlq --rate 0 "$Q.dlq"
	run -69 qctl replay-dlq --amqp amqp://guest:guest@127.0.0.1:1/ "$Q.dlq"
	run -77 --separate-stderr qctl replay-dlq --amqp "$(bad_password_url)" "$Q.dlq"
	[[ "$stderr" != *wrong-s3cret* ]]
}

@test "replay-dlq: many messages left behind in a small window: all looked at once, none lost" {
	qctl declare -q "$Q"
	qctl declare -q "$Q.dlq"
	for i in $(seq 1 30); do
		if ((i % 2)); then echo "{\"body\":\"$i\",\"headers\":{\"x-original-queue\":\"$Q.gone\"}}"
		else echo "{\"body\":\"$i\",\"headers\":{\"x-original-queue\":\"$Q\"}}"; fi
	done | qctl enqueue -q --jsonl "$Q.dlq"
	run -75 --separate-stderr qctl replay-dlq --window 8 "$Q.dlq"
	[[ "$stderr" == *"replayed 15 to their original queues (0 skipped, 15 failed)"* ]]
	[ "$(take_bodies "$Q" | tr '\n' ' ')" = "2 4 6 8 10 12 14 16 18 20 22 24 26 28 30 " ]
	[ "$(take_bodies "$Q.dlq" | tr '\n' ' ')" = "1 3 5 7 9 11 13 15 17 19 21 23 25 27 29 " ]
}
