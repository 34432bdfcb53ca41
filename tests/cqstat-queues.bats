#!/usr/bin/env bats
# cqstat -q / --api / --match: queue figures from real queue traffic.

load test_helper
load cqstat_helper

# The API only where a test asks for it: CQ_API_URL from the sandbox
# would turn it on everywhere.
per_test_setup() {
	API=$CQ_API_URL
	unset CQ_API_URL
}

per_test_teardown() {
	[ -n "${BGPID:-}" ] && kill "$BGPID" 2>/dev/null && wait "$BGPID" 2>/dev/null
	qctl purge --yes "$Q" >/dev/null 2>&1 || true
	drop_queues "$Q" "$Q.dlq"
	return 0
}

# Run cqstat --json with ARGS until jq EXPR holds (the management API
# refreshes its figures every 500 ms in the sandbox), at most ~10 s.
poll() {
	local expr=$1 i
	shift
	for i in $(seq 40); do
		out=$(cqstat --json "$@") && [ "$(jq -r "$expr" <<<"$out")" = true ] && return 0
		sleep 0.25
	done
	echo "never true: $expr; last: $out" >&2
	return 1
}

@test "5 messages enqueued give ready=5; a DLQ holding 2 gives dlq=2" {
	qctl declare -q --dlq "$Q"
	seq 5 | qctl enqueue -q "$Q"
	run -0 cqstat --no-cache -q "$Q" --json
	assert_equal "$(jq -c '.queues[0] | [.queue, .found, .ready, .consumers, .dlq, .dlq_queue]' <<<"$output")" \
		"[\"$Q\",true,5,0,0,\"$Q.dlq\"]"
	# two messages dead-lettered by the broker through the queue's DLX
	run -0 qctl consume -q "$Q" --exec 'exit 65' --count 2
	run -0 cqstat --no-cache -q "$Q" --json
	assert_equal "$(jq -c '.queues[0] | [.ready, .dlq]' <<<"$output")" '[3,2]'
	run -0 cqstat --no-cache -q "$Q"
	assert_line -n 1 --regexp '^ +ready +unack +cons +in/s +out/s +dlq$'
	assert_line -n 2 --regexp '^ +3 +- +0 +- +- +2$'
}

@test "a queue with no dead-letter queue has an unknown dlq, not 0" {
	qctl declare -q "$Q"
	run -0 cqstat --no-cache -q "$Q" --json
	assert_equal "$(jq -c '.queues[0] | [.dlq, .dlq_queue]' <<<"$output")" '[null,null]'
}

@test "a queue that does not exist shows none and exits 1; the others still print" {
	qctl declare -q "$Q"
	echo x | qctl enqueue -q "$Q"
	run --separate-stderr -1 cqstat --no-cache -q "$Q" -q "$Q.nosuch"
	assert_line -n 2 --regexp '^ +1 +- +0 +- +- +- +none +- +- +- +- +-$'
	[[ $stderr == "cqstat: no queue '$Q.nosuch'" ]]
	run --separate-stderr -1 cqstat --no-cache -q "$Q.nosuch" --json
	assert_equal "$(jq -c '.queues[0] | [.found, .ready]' <<<"$output")" '[false,null]'
}

@test "--api adds unacked messages and rates; ready+unacked covers every message" {
	qctl declare -q --dlq "$Q"
	seq 5 | qctl enqueue -q "$Q"
	# a consumer holding its messages unacked while its handler sleeps
	qctl consume -q "$Q" --exec 'sleep 20' --prefetch 1 >/dev/null 2>&1 &
	BGPID=$!
	poll '.queues[0].unacked == 1 and .queues[0].ready == 4 and .queues[0].consumers == 1' \
		--no-cache -q "$Q" --api "$API"
	assert_equal "$(jq -r '.api.up' <<<"$out")" true
	# a passive declare alone knows nothing of unacked messages
	run -0 cqstat --no-cache -q "$Q" --json
	assert_equal "$(jq -c '.queues[0] | [.ready, .unacked]' <<<"$output")" '[4,null]'
}

@test "--api: the publish rate follows the traffic" {
	qctl declare -q "$Q"
	# publish for a while from one connection: the API's rates cover its
	# last few seconds, and a channel shorter than a stats interval may
	# never report its publishes
	(for i in $(seq 100); do seq 20; sleep 0.1; done) | qctl enqueue -q "$Q" &
	BGPID=$!
	poll '.queues[0].publish_rate > 10 and .queues[0].deliver_rate == 0' \
		--no-cache -q "$Q" --api "$API"
	run -0 cqstat --no-cache -q "$Q" --api "$API"
	assert_line -n 2 --regexp '^ +[0-9.]+k? +0 +0 +[0-9.]+k? +0 +- *$'
}

@test "--api finds a dead-letter queue by the queue's x-dead-letter arguments" {
	qctl declare -q --dlq="$Q.graveyard" "$Q"
	echo x | qctl enqueue -q "$Q.graveyard"
	echo y | qctl enqueue -q "$Q.graveyard"
	run -0 cqstat --no-cache -q "$Q" --api "$API" --json
	assert_equal "$(jq -c '.queues[0] | [.dlq_queue, .dlq]' <<<"$output")" "[\"$Q.graveyard\",2]"
	# without the API only the QUEUE.dlq convention is known
	run -0 cqstat --no-cache -q "$Q" --json
	assert_equal "$(jq -c '.queues[0].dlq' <<<"$output")" null
	drop_queues "$Q.graveyard"
}

@test "--match shows every queue whose name matches the glob" {
	qctl declare -q "$Q.a"
	qctl declare -q "$Q.b"
	qctl declare -q "${Q}x"
	seq 3 | qctl enqueue -q "$Q.b"
	poll "[.queues[].queue] == [\"$Q.a\", \"$Q.b\"]" --no-cache --api "$API" --match "$Q.*"
	assert_equal "$(jq -c '[.queues[].ready]' <<<"$out")" '[0,3]'
	run -0 cqstat --no-cache --api "$API" --match "$Q.*"
	assert_line -n 0 --regexp " $Q\.a .* $Q\.b "
	run -0 cqstat --no-cache --api "$API" --match "nothing.matches.$Q.*" --json
	assert_equal "$(jq -c .queues <<<"$output")" '[]'
	drop_queues "$Q.a" "$Q.b" "${Q}x"
}

@test "the password in the --api URL is never printed" {
	qctl declare -q "$Q"
	port=${API##*:}
	run --separate-stderr -0 cqstat --no-cache -q "$Q" --api "http://guest:Pw7secretQ@127.0.0.1:$port" --json
	[[ $stderr == "cqstat: api down: management API at http://guest:***@127.0.0.1:$port refused the login (HTTP 401)" ]]
	refute_output --partial Pw7secretQ
	assert_equal "$(jq -r .api.up <<<"$output")" false
	# nor from CQ_API_URL, nor when the server is unreachable
	CQ_API_URL="http://guest:Pw7secretQ@127.0.0.1:1" run --separate-stderr -0 cqstat --no-cache -q "$Q" --json
	[[ $stderr == *"management API at http://guest:***@127.0.0.1:1: "*"onnect"* ]]
	[[ $stderr != *Pw7secretQ* && $output != *Pw7secretQ* ]]
	CQ_API_URL="http://guest:Pw7secretQ@127.0.0.1:1" run -3 cqstat --no-cache -q "$Q" --check 'unacked>1'
	assert_output --regexp '^CQ UNKNOWN - unacked unknown: management API at http://guest:\*\*\*@127\.0\.0\.1:1: '
	refute_output --partial Pw7secretQ
}

@test "--api without credentials takes the AMQP URL's user and password" {
	qctl declare -q "$Q"
	port=${API##*:}
	run -0 cqstat --no-cache -q "$Q" --api "http://127.0.0.1:$port" --json
	assert_equal "$(jq -r '.api.up' <<<"$output")" true
	run --separate-stderr -0 cqstat --no-cache -q "$Q" --api "ftp://127.0.0.1:$port" --json
	assert_equal "$(jq -r '.api.error' <<<"$output")" \
		"bad management API URL 'ftp://127.0.0.1:$port' (want http[s]://[user:pass@]host:port)"
}

@test "RabbitMQ down: the queue columns say down, the cache figures still print" {
	qctl declare -q "$Q"
	run --separate-stderr -0 cqstat -q "$Q" --amqp "$DOWN_AMQP"
	assert_line -n 2 --regexp '^ +[0-9.-]+ .* down +- +- +- +- +-$'
	[[ $stderr == "cqstat: amqp down: cannot connect to RabbitMQ at 127.0.0.1:1: "* ]]
	# with the API up, ready and consumers still come from it
	poll '.amqp.up == false and .api.up == true and .queues[0].ready == 0' \
		--no-cache -q "$Q" --amqp "$DOWN_AMQP" --api "$API"
	# nothing at all could be read: 69
	run --separate-stderr -69 cqstat --redis "$DOWN_REDIS" -q "$Q" --amqp "$DOWN_AMQP"
}

@test "--prom with queues: labelled lines, escaped, strictly formatted" {
	qctl declare -q --dlq "$Q"
	seq 4 | qctl enqueue -q "$Q"
	run -0 cqstat --no-cache -q "$Q" --api "$API" --prom
	sample='^cq_[a-z_]+(\{[a-z_]+="([^"\\]|\\["\\n])*"\})? -?[0-9]+(\.[0-9]+)?(e[-+][0-9]+)?$'
	for l in "${lines[@]}"; do
		[[ $l =~ ^#\ (HELP|TYPE)\ cq_ || $l =~ $sample ]] || fail "bad line: $l"
	done
	assert_line "cq_queue_ready_messages{queue=\"$Q\"} 4"
	assert_line "cq_queue_dead_letter_messages{queue=\"$Q\"} 0"
	assert_line 'cq_up{server="amqp"} 1'
	assert_line 'cq_up{server="api"} 1'
}
