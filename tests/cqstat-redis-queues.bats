#!/usr/bin/env bats
# cqstat -Q list:NAME / stream:NAME[@GROUP] / amqp:NAME (issue 12 §4):
# Redis queues beside RabbitMQ's in the table, --json, --prom and
# --check, through the queue drivers' stats.  Counted with redis-cli and
# the broker, never with qctl.

bats_require_minimum_version 1.5.0
load test_helper

per_test_setup() {
	unset CQ_API_URL CQ_QUEUE_BACKEND
	K="$P$Q"	# the stream's key (the prefix applies)
}

xlen() { rcli XLEN "$1"; }

@test "cqstat: a stream queue beside an AMQP queue in the table, --json and --prom" {
	qctl declare -q "$Q"
	qctl enqueue -q "$Q" a
	qctl declare --backend stream -q "$Q"
	qctl enqueue --backend stream -q "$Q" x y z
	[ "$(xlen "$K")" = 3 ]
	[ "$(ready "$Q")" = 1 ]
	run -0 --separate-stderr cqstat --no-cache -Q "stream:$Q" -Q "$Q"
	# RabbitMQ's queues first, then Redis's (long names are shortened)
	[[ "${lines[0]}" == *"- cqtest."*"- stream:cqtest."* ]]
	read -ra row <<<"${lines[2]}"
	assert_equal "${row[0]} ${row[6]} ${row[7]}" "1 3 0"
	run -0 --separate-stderr cqstat --no-cache --json -Q "stream:$Q" -Q "$Q"
	assert_equal "$(jq -c '[.queues[] | [.queue, .backend, .found, .ready, .consumers]]' <<<"$output")" \
		"[[\"$Q\",\"amqp\",true,1,0],[\"stream:$Q\",\"stream\",true,3,0]]"
	assert_equal "$(jq -c '.queues[1] | [.unacked, .length]' <<<"$output")" "[0,3]"
	run -0 --separate-stderr cqstat --no-cache --prom -Q "stream:$Q" -Q "$Q"
	assert_line "cq_queue_ready_messages{queue=\"stream:$Q\"} 3"
	assert_line "cq_queue_ready_messages{queue=\"$Q\"} 1"
	assert_line "cq_queue_stream_length{queue=\"stream:$Q\"} 3"
}

@test "cqstat: stream:NAME@GROUP reads that group: its lag is ready, its pending unacked; a group not there is that queue's error" {
	qctl declare --backend stream -q "$Q"
	qctl enqueue --backend stream -q "$Q" 1 2 3 4
	rcli XGROUP CREATE "$K" g1 0 >/dev/null
	rcli XREADGROUP GROUP g1 w COUNT 3 STREAMS "$K" '>' >/dev/null
	run -0 --separate-stderr cqstat --no-cache --json -Q "stream:$Q@g1" -Q "stream:$Q"
	assert_equal "$(jq -c '[.queues[] | [.queue, .ready, .unacked, .consumers]]' <<<"$output")" \
		"[[\"stream:$Q@g1\",1,3,1],[\"stream:$Q\",4,0,0]]"
	# a group that is not there (a typo) has no figures: it read as the
	# whole stream ready, no consumers, exit 0
	run -1 --separate-stderr cqstat --no-cache -Q "stream:$Q@g2" -Q "stream:$Q@g1"
	assert_equal "$stderr" "cqstat: stream:$Q@g2: stream '$Q' has no consumer group 'g2' (create it with: qctl declare --backend stream --group g2 $Q)"
	run -3 --separate-stderr cqstat --no-cache -Q "stream:$Q@g2" --check 'ready>100:crit'
	[[ "$output" == "CQ UNKNOWN - ready unknown: stream '$Q' has no consumer group 'g2'"* ]]
	run -1 --separate-stderr qctl stats --backend stream --group g2 "$Q"
	[[ "$stderr" == "qctl: stats: stream '$Q' has no consumer group 'g2' "* ]]
}

@test "cqstat: --check 'dlq>0:crit' is CRITICAL for a stream's dead letters as for an AMQP queue's" {
	qctl declare --dlq -q "$Q"
	qctl declare --backend stream --dlq -q "$Q"
	run -0 cqstat --no-cache -Q "stream:$Q" -Q "$Q" --check 'dlq>0:crit'
	assert_output "CQ OK - dlq[$Q]=0 dlq[stream:$Q]=0"
	qctl enqueue --backend stream -q "$Q" bad
	run -0 --separate-stderr qctl consume --backend stream -q --until-empty --exec 'exit 65' "$Q"
	[ "$(xlen "$K.dlq")" = 1 ]
	run -2 cqstat --no-cache -Q "stream:$Q" -Q "$Q" --check 'dlq>0:crit'
	assert_output "CQ CRITICAL - dlq[stream:$Q]=1 (>0) dlq[$Q]=0"
	qctl enqueue -q "$Q" bad
	run -0 --separate-stderr qctl consume -q --until-empty --exec 'exit 65' "$Q"
	run -2 cqstat --no-cache -Q "stream:$Q" -Q "$Q" --check "dlq[$Q]>0:crit"
	assert_output "CQ CRITICAL - dlq[$Q]=1 (>0)"
}

@test "cqstat: Redis down makes a stream or list queue's figures unknown (down, not none), naming Redis; the AMQP queue stays known" {
	qctl declare -q "$Q"
	run -3 --separate-stderr cqstat --no-cache --redis redis://127.0.0.1:1/0 \
		-Q "stream:$Q" -Q "$Q" --check 'ready>5'
	[[ "$output" == "CQ UNKNOWN - ready[stream:$Q] unknown: "*"127.0.0.1:1"*" ready[$Q]=0" ]]
	run -0 --separate-stderr cqstat --no-cache --redis redis://127.0.0.1:1/0 -Q "stream:$Q" -Q "list:$Q" -Q "$Q"
	[[ "$stderr" == "cqstat: redis down: "* ]]
	[[ "$stderr" != *"no queue"* ]]
	# the table says down for the Redis queues (not none: no such queue)
	[[ "${lines[2]}" == *" down "*" down "* && "${lines[2]}" != *none* ]]
	# --json: found is unknown (null) for them, not false; known for the AMQP one
	run -0 --separate-stderr cqstat --no-cache --json --redis redis://127.0.0.1:1/0 -Q "stream:$Q" -Q "list:$Q" -Q "$Q"
	assert_equal "$(jq -c '[.redis.up, [.queues[] | [.queue, .found]]]' <<<"$output")" \
		"[false,[[\"$Q\",true],[\"stream:$Q\",null],[\"list:$Q\",null]]]"
}

@test "cqstat: a missing stream is 'no queue', exit 1; amqp:NAME is RabbitMQ's queue of that name" {
	run -1 --separate-stderr cqstat --no-cache -Q "stream:$Q"
	assert_equal "$stderr" "cqstat: no queue 'stream:$Q'"
	qctl declare -q "list:$Q"
	qctl enqueue -q "list:$Q" m m
	run -0 --separate-stderr cqstat --no-cache --json -Q "amqp:list:$Q"
	assert_equal "$(jq -c '.queues[0] | [.queue, .backend, .ready]' <<<"$output")" "[\"list:$Q\",\"amqp\",2]"
	rctl delete_queue "list:$Q" >/dev/null
}

@test "cqstat: bad Redis queue names are usage errors (64)" {
	run -64 --separate-stderr cqstat -Q "stream:"
	assert_equal "${stderr%%$'\n'*}" "cqstat: --queue: 'stream:': empty stream name"
	run -64 --separate-stderr cqstat -Q "stream:$Q@"
	assert_equal "${stderr%%$'\n'*}" "cqstat: --queue: 'stream:$Q@': empty group name after '@'"
	run -64 --separate-stderr cqstat -Q "stream:@g"
	assert_equal "${stderr%%$'\n'*}" "cqstat: --queue: 'stream:@g': empty stream name"
}

@test "cqstat: list, stream and AMQP queues side by side; --check 'dlq>0:crit' catches a list's dead letter" {
	qctl declare --dlq -q "$Q"
	qctl declare --backend stream --dlq -q "$Q"
	qctl declare --backend list --dlq -q "$Q.l"
	qctl enqueue --backend list -q "$Q.l" good bad
	[ "$(rcli LLEN "$K.l")" = 2 ]
	run -0 --separate-stderr cqstat --no-cache --json -Q "list:$Q.l" -Q "stream:$Q" -Q "$Q"
	assert_equal "$(jq -c '[.queues[] | [.queue, .backend, .ready]]' <<<"$output")" \
		"[[\"$Q\",\"amqp\",0],[\"list:$Q.l\",\"list\",2],[\"stream:$Q\",\"stream\",0]]"
	run -0 cqstat --no-cache -Q "list:$Q.l" -Q "stream:$Q" -Q "$Q" --check 'dlq>0:crit'
	assert_output "CQ OK - dlq[$Q]=0 dlq[list:$Q.l]=0 dlq[stream:$Q]=0"
	run -0 --separate-stderr qctl consume --backend list -q --until-empty \
		--exec 'read -r b; [ "$b" = good ] || exit 65' "$Q.l"
	[ "$(rcli LLEN "$K.l.dlq")" = 1 ]
	run -2 cqstat --no-cache -Q "list:$Q.l" -Q "stream:$Q" -Q "$Q" --check 'dlq>0:crit'
	assert_output "CQ CRITICAL - dlq[list:$Q.l]=1 (>0) dlq[$Q]=0 dlq[stream:$Q]=0"
}

@test "cqstat: a key of another type is that queue's error (exit 1, named), not Redis down: the cache and other queues stay" {
	rcli SET "$K" x >/dev/null
	rcli LPUSH "$K.l" a b >/dev/null
	run -1 --separate-stderr cqstat -Q "list:$Q" -Q "list:$Q.l"
	assert_equal "$stderr" "cqstat: list:$Q: queue '$K' is a Redis string, not a list"
	[[ "${lines[2]}" != *down* ]]
	run -1 --separate-stderr cqstat --no-cache --json -Q "list:$Q" -Q "list:$Q.l"
	assert_equal "$(jq -c '[.redis.up, [.queues[] | [.queue, .found, .ready]]]' <<<"$output")" \
		"[true,[[\"list:$Q\",false,null],[\"list:$Q.l\",true,2]]]"
	run -3 cqstat --no-cache -Q "list:$Q" -Q "list:$Q.l" --check 'ready>5'
	assert_output "CQ UNKNOWN - ready[list:$Q] unknown: queue '$K' is a Redis string, not a list ready[list:$Q.l]=2"
}
