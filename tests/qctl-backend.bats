#!/usr/bin/env bats
# qctl --backend and CQ_QUEUE_BACKEND (issue 12): every verb picks its
# queue backend; amqp is the default; a backend not in this build, or an
# unknown one, is a usage error before anything is connected.

bats_require_minimum_version 1.5.0
load test_helper
load qctl_helper

VERBS="enqueue consume peek replay-dlq declare purge stats"

# The arguments that make VERB do something real on queue $Q.
verb_args() {
	case $1 in
	enqueue) echo "$Q" hello ;;
	purge) echo --yes "$Q" ;;
	consume) echo --count 1 "$Q" ;;
	*) echo "$Q" ;;
	esac
}

@test "backend: every verb takes --backend amqp, and CQ_QUEUE_BACKEND=amqp, as the default" {
	run -0 qctl declare --backend amqp -q "$Q"
	CQ_QUEUE_BACKEND=amqp run -0 qctl enqueue -q "$Q" one two
	run -0 qctl enqueue --backend=amqp -q "$Q" three
	[ "$(ready "$Q")" = 3 ]
	run -0 --separate-stderr qctl peek --backend amqp -q "$Q"
	CQ_QUEUE_BACKEND=amqp run -0 qctl stats "$Q"
	assert_line "ready[$Q]	3"
	run -0 --separate-stderr qctl consume --backend amqp --count 1 "$Q"
	assert_output one
	qctl declare -q "$Q.d"
	qctl enqueue -q "$Q.d" four
	run -0 qctl replay-dlq --backend amqp -q --to "$Q" "$Q.d"
	[ "$(ready "$Q.d")" = 0 ]
	run -0 --separate-stderr qctl purge --backend amqp --yes "$Q"
	assert_output "purged 3 messages from '$Q'"
	[ "$(ready "$Q")" = 0 ]
}

@test "backend: an unknown backend exits 64 naming it and the known ones, before connecting" {
	for verb in $VERBS; do
		run -64 --separate-stderr qctl "$verb" --backend kafka \
			--amqp amqp://guest:guest@127.0.0.1:1/ $(verb_args "$verb")
		assert_equal "$stderr" "$(printf "qctl: %s: --backend: unknown queue backend 'kafka' (want amqp, list or stream)\nTry 'qctl %s --help'." "$verb" "$verb")"
		CQ_QUEUE_BACKEND=rabbit run -64 --separate-stderr qctl "$verb" \
			--amqp amqp://guest:guest@127.0.0.1:1/ $(verb_args "$verb")
		assert_equal "${stderr%%$'\n'*}" "qctl: $verb: CQ_QUEUE_BACKEND: unknown queue backend 'rabbit' (want amqp, list or stream)"
	done
	[ "$(ready "$Q")" = missing ]
}

@test "backend: --backend wins over CQ_QUEUE_BACKEND" {
	qctl declare -q "$Q"
	CQ_QUEUE_BACKEND=kafka run -0 qctl enqueue --backend amqp -q "$Q" x
	[ "$(ready "$Q")" = 1 ]
}

@test "backend: every verb's --help names --backend and CQ_QUEUE_BACKEND" {
	for verb in $VERBS; do
		run -0 qctl "$verb" --help
		assert_line --partial "--backend KIND"
		assert_line --partial "(CQ_QUEUE_BACKEND)"
	done
}

@test "backend: stats --json names the backend it read: redis for a list or a stream, amqp for RabbitMQ" {
	local b
	for b in list stream; do
		run -0 qctl declare --backend "$b" -q "$Q.$b"
		run -0 qctl enqueue --backend "$b" -q "$Q.$b" one
		run -0 --separate-stderr qctl stats --backend "$b" --json "$Q.$b"
		assert_equal "$(jq -c '[.amqp, .redis.up]' <<<"$output")" '[null,true]'
	done
	run -0 qctl declare --backend amqp -q "$Q"
	run -0 --separate-stderr qctl stats --backend amqp --json "$Q"
	assert_equal "$(jq -c '[.amqp.up, .redis]' <<<"$output")" '[true,null]'
}

@test "backend: list and stream: every verb exits 69 with Redis unreachable and 77 with a wrong password, naming the node, the password never shown" {
	local b verb hp
	hp=${CQ_REDIS_URL#redis://}
	hp=${hp%%/*}
	for b in list stream; do
		for verb in $VERBS; do
			run -69 --separate-stderr qctl "$verb" --backend "$b" \
				--redis "redis://u:Pw-$b-x@127.0.0.1:1/0" $(verb_args "$verb")
			assert_equal "$stderr" "qctl: $verb: cannot connect to Redis at 127.0.0.1:1: Connection refused"
			run -77 --separate-stderr qctl "$verb" --backend "$b" \
				--redis "redis://u:Pw-$b-x@$hp/0" $(verb_args "$verb")
			assert_equal "$stderr" "qctl: $verb: Redis at $hp refused the user name or password: wrong user name or password"
		done
	done
	run -0 rcli EXISTS "$Q"
	assert_output 0
}
