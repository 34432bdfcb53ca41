#!/usr/bin/env bats
# qctl stats: ready messages, consumers and dead letters of queues.

load test_helper
load cqstat_helper

QUEUE_SUITE=1

@test "5 messages enqueued: ready=5; 2 dead-lettered by the broker: dlq=2" {
	qctl declare -q --dlq "$Q"
	seq 5 | qctl enqueue -q "$Q"
	run --separate-stderr -0 qctl stats "$Q"
	assert_output "$(printf 'ready[%s]\t5\nconsumers[%s]\t0\ndlq[%s]\t0' "$Q" "$Q" "$Q")"
	run -0 qctl consume -q "$Q" --exec 'exit 65' --count 2
	run -0 qctl stats --json "$Q"
	assert_equal "$(jq -c '.queues[0] | [.queue, .ready, .consumers, .dlq, .dlq_queue]' <<<"$output")" \
		"[\"$Q\",3,0,2,\"$Q.dlq\"]"
}

@test "consumers are counted; unacked messages are not (a passive declare)" {
	qctl declare -q "$Q"
	seq 3 | qctl enqueue -q "$Q"
	qctl consume -q "$Q" --exec "$HOLD" --prefetch 1 >/dev/null 2>&1 &
	BGPID=$!
	for i in $(seq 40); do
		out=$(qctl stats --json "$Q")
		[ "$(jq -c '.queues[0] | [.ready, .consumers]' <<<"$out")" = '[2,1]' ] && break
		sleep 0.25
	done
	assert_equal "$(jq -c '.queues[0] | [.ready, .consumers]' <<<"$out")" '[2,1]'
	assert_equal "$(jq -c '.queues[0] | has("unacked")' <<<"$out")" false
}

@test "several queues; one with no DLQ shows dlq as -" {
	qctl declare -q --dlq "$Q"
	qctl declare -q "$Q.b"
	echo x | qctl enqueue -q "$Q.b"
	run -0 qctl stats "$Q" "$Q.b"
	assert_line "$(printf 'ready[%s.b]\t1' "$Q")"
	assert_line "$(printf 'dlq[%s.b]\t-' "$Q")"
	assert_line "$(printf 'dlq[%s]\t0' "$Q")"
}

@test "a queue that does not exist: exit 1, the others still shown" {
	qctl declare -q "$Q"
	run --separate-stderr -1 qctl stats "$Q.nosuch" "$Q" "$Q.nosuch2"
	assert_line "$(printf 'ready[%s]\t0' "$Q")"
	assert_line "$(printf 'ready[%s.nosuch]\t-' "$Q")"
	assert_equal "$stderr" "qctl: stats: no queue '$Q.nosuch'
qctl: stats: no queue '$Q.nosuch2'"
	run --separate-stderr -1 qctl stats --json "$Q.nosuch"
	assert_equal "$(jq -c '.queues[0].found' <<<"$output")" false
}

@test "RabbitMQ (or Redis, for a list or stream) unreachable: exit 69, no JSON; a refused login: exit 77" {
	run --separate-stderr -69 qctl stats --amqp "$DOWN_AMQP" "$Q"
	[[ $stderr == "qctl: stats: cannot connect to RabbitMQ at 127.0.0.1:1: "* ]]
	# --json prints no object that could say found false: the server is down
	run --separate-stderr -69 qctl stats --json --amqp "$DOWN_AMQP" "$Q"
	assert_output ''
	for b in list stream; do
		run --separate-stderr -69 qctl stats --json --backend $b --redis "$DOWN_REDIS" "$Q"
		assert_output ''
		[[ $stderr == "qctl: stats: cannot connect to Redis at 127.0.0.1:1: "* ]]
	done
	url=${CQ_AMQP_URL/guest:guest@/guest:Nope4pw@}
	run --separate-stderr -77 qctl stats --amqp "$url" "$Q"
	[[ $stderr != *Nope4pw* ]]
}

@test "usage errors: no QUEUE, a name over 255 bytes, a bad option" {
	run --separate-stderr -64 qctl stats
	assert_equal "${stderr%%$'\n'*}" "qctl: stats: missing QUEUE"
	run --separate-stderr -64 qctl stats "$(printf 'q%.0s' $(seq 300))"
	[[ $stderr == *"queue name longer than 255 bytes"* ]]
	run --separate-stderr -64 qctl stats --bogus "$Q"
	run -0 qctl stats --help
	assert_line -n 0 'usage: qctl stats [OPTIONS] QUEUE...'
}

@test "qctl does not load libcurl" {
	run -0 ldd "$(command -v qctl)"
	refute_output --partial libcurl
}
