#!/usr/bin/env bats
# cqstat -Q / --api / --match: queue figures from real queue traffic.

load test_helper
load cqstat_helper

# The API only where a test asks for it: CQ_API_URL from the sandbox
# would turn it on everywhere.
per_test_setup() {
	API=$CQ_API_URL
	unset CQ_API_URL
	UNTRACK=	# a field of cq:track to delete in teardown
}

QUEUE_SUITE=1

per_test_teardown() {
	[ -z "${UNTRACK:-}" ] || rcli hdel cq:track "$UNTRACK" >/dev/null
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
	run -0 cqstat --no-cache -Q "$Q" --json
	assert_equal "$(jq -c '.queues[0] | [.queue, .found, .ready, .consumers, .dlq, .dlq_queue]' <<<"$output")" \
		"[\"$Q\",true,5,0,0,\"$Q.dlq\"]"
	# two messages dead-lettered by the broker through the queue's DLX
	run -0 qctl consume -q "$Q" --exec 'exit 65' --count 2
	run -0 cqstat --no-cache -Q "$Q" --json
	assert_equal "$(jq -c '.queues[0] | [.ready, .dlq]' <<<"$output")" '[3,2]'
	run -0 cqstat --no-cache -Q "$Q"
	assert_line -n 1 --regexp '^ +ready +unack +cons +in/s +out/s +dlq$'
	assert_line -n 2 --regexp '^ +3 +- +0 +- +- +2$'
}

@test "a queue with no dead-letter queue has an unknown dlq, not 0" {
	qctl declare -q "$Q"
	run -0 cqstat --no-cache -Q "$Q" --json
	assert_equal "$(jq -c '.queues[0] | [.dlq, .dlq_queue]' <<<"$output")" '[null,null]'
}

@test "a queue that does not exist shows none and exits 1; the others still print" {
	qctl declare -q "$Q"
	echo x | qctl enqueue -q "$Q"
	run --separate-stderr -1 cqstat --no-cache -Q "$Q" -Q "$Q.nosuch"
	assert_line -n 2 --regexp '^ +1 +- +0 +- +- +- +none +- +- +- +- +-$'
	[[ $stderr == "cqstat: no queue '$Q.nosuch'" ]]
	run --separate-stderr -1 cqstat --no-cache -Q "$Q.nosuch" --json
	assert_equal "$(jq -c '.queues[0] | [.found, .ready]' <<<"$output")" '[false,null]'
}

@test "--api adds unacked messages and rates; ready+unacked covers every message" {
	qctl declare -q --dlq "$Q"
	seq 5 | qctl enqueue -q "$Q"
	# a consumer holding its messages unacked while its handler waits
	qctl consume -q "$Q" --exec "$HOLD" --prefetch 1 >/dev/null 2>&1 &
	BGPID=$!
	poll '.queues[0].unacked == 1 and .queues[0].ready == 4 and .queues[0].consumers == 1' \
		--no-cache -Q "$Q" --api "$API"
	assert_equal "$(jq -r '.api.up' <<<"$out")" true
	# a passive declare alone knows nothing of unacked messages
	run -0 cqstat --no-cache -Q "$Q" --json
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
		--no-cache -Q "$Q" --api "$API"
	run -0 cqstat --no-cache -Q "$Q" --api "$API"
	assert_line -n 2 --regexp '^ +[0-9.]+k? +0 +0 +[0-9.]+k? +0 +- *$'
}

@test "--api finds a dead-letter queue by the queue's x-dead-letter arguments" {
	qctl declare -q --dlq="$Q.graveyard" "$Q"
	echo x | qctl enqueue -q "$Q.graveyard"
	echo y | qctl enqueue -q "$Q.graveyard"
	run -0 cqstat --no-cache -Q "$Q" --api "$API" --json
	assert_equal "$(jq -c '.queues[0] | [.dlq_queue, .dlq]' <<<"$output")" "[\"$Q.graveyard\",2]"
	# without the API only the QUEUE.dlq convention is known
	run -0 cqstat --no-cache -Q "$Q" --json
	assert_equal "$(jq -c '.queues[0].dlq' <<<"$output")" null
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
	drop_queues "${Q}x"	# not a name teardown knows as this test's
}

@test "the password in the --api URL is never printed" {
	qctl declare -q "$Q"
	port=${API##*:}
	run --separate-stderr -0 cqstat --no-cache -Q "$Q" --api "http://guest:Pw7secretQ@127.0.0.1:$port" --json
	[[ $stderr == "cqstat: api down: management API at http://guest:***@127.0.0.1:$port refused the login (HTTP 401)" ]]
	refute_output --partial Pw7secretQ
	assert_equal "$(jq -r .api.up <<<"$output")" false
	# nor from CQ_API_URL, nor when the server is unreachable
	CQ_API_URL="http://guest:Pw7secretQ@127.0.0.1:1" run --separate-stderr -0 cqstat --no-cache -Q "$Q" --json
	[[ $stderr == *"management API at http://guest:***@127.0.0.1:1: "*"onnect"* ]]
	[[ $stderr != *Pw7secretQ* && $output != *Pw7secretQ* ]]
	CQ_API_URL="http://guest:Pw7secretQ@127.0.0.1:1" run -3 cqstat --no-cache -Q "$Q" --check 'unacked>1'
	assert_output --regexp '^CQ UNKNOWN - unacked unknown: management API at http://guest:\*\*\*@127\.0\.0\.1:1: '
	refute_output --partial Pw7secretQ
}

@test "--api without credentials takes the AMQP URL's user and password" {
	qctl declare -q "$Q"
	port=${API##*:}
	run -0 cqstat --no-cache -Q "$Q" --api "http://127.0.0.1:$port" --json
	assert_equal "$(jq -r '.api.up' <<<"$output")" true
	run --separate-stderr -0 cqstat --no-cache -Q "$Q" --api "ftp://127.0.0.1:$port" --json
	assert_equal "$(jq -r '.api.error' <<<"$output")" \
		"bad management API URL 'ftp://127.0.0.1:$port' (want http[s]://[user:pass@]host:port)"
}

@test "RabbitMQ down: the queue columns say down, the cache figures still print" {
	qctl declare -q "$Q"
	run --separate-stderr -0 cqstat -Q "$Q" --amqp "$DOWN_AMQP"
	assert_line -n 2 --regexp '^ +[0-9.-]+ .* down +- +- +- +- +-$'
	[[ $stderr == "cqstat: amqp down: cannot connect to RabbitMQ at 127.0.0.1:1: "* ]]
	# --json: whether the queue exists is unknown (null), not false
	run --separate-stderr -0 cqstat --json -Q "$Q" --amqp "$DOWN_AMQP"
	assert_equal "$(jq -c '[.amqp.up, .queues[0].found, .queues[0].ready]' <<<"$output")" '[false,null,null]'
	# with the API up, ready and consumers still come from it
	poll '.amqp.up == false and .api.up == true and .queues[0].ready == 0' \
		--no-cache -Q "$Q" --amqp "$DOWN_AMQP" --api "$API"
	# nothing at all could be read: 69
	run --separate-stderr -69 cqstat --redis "$DOWN_REDIS" -Q "$Q" --amqp "$DOWN_AMQP"
}

@test "--prom with queues: labelled lines, escaped, strictly formatted, valid UTF-8" {
	# a queue name with a quote, a backslash and a multi-byte character
	# (the broker drops newlines and refuses bytes that are not UTF-8),
	# and a tracked prefix with a newline and a byte that is not UTF-8
	wq=$(printf '%s.we"ird\\q\xc3\xa9' "$Q")
	wp=$(printf '%swe"ird\\\np\xff\xc3\xa9:' "$P")
	UNTRACK=misses:$wp
	amqp-declare-queue -u "$CQ_AMQP_URL" -q "$wq" >/dev/null
	seq 4 | qctl enqueue -q "$wq"
	CQ_PREFIX=$wp cachectl get --track -q nope || true
	run -0 cqstat -Q "$wq" --api "$API" --track --prom
	iconv -f UTF-8 -t UTF-8 <<<"$output" >/dev/null || fail "not UTF-8: $output"
	sample='^cq_[a-z_]+(\{[a-z_]+="([^"\\]|\\["\\n])*"\})? -?[0-9]+(\.[0-9]+)?(e[-+][0-9]+)?$'
	for l in "${lines[@]}"; do
		[[ $l =~ ^#\ (HELP|TYPE)\ cq_ || $l =~ $sample ]] || fail "bad line: $l"
	done
	eq="$Q.we\\\"ird\\\\qé"
	assert_line "cq_queue_ready_messages{queue=\"$eq\"} 4"
	assert_line "cq_prefix_misses_total{prefix=\"${P}we\\\"ird\\\\\\np\\\\xFFé:\"} 1"
	assert_line 'cq_up{server="redis"} 1'
	assert_line 'cq_up{server="amqp"} 1'
	assert_line 'cq_up{server="api"} 1'
}

@test "--match with the API down: shown as down, exit 69; AMQP, asked nothing, is not reported" {
	run --separate-stderr -69 cqstat --no-cache --match 'x*' --api "http://127.0.0.1:1"
	assert_equal "$output" ' - api -
   match
    down'
	[[ $stderr == "cqstat: api down: management API at http://127.0.0.1:1: "*"onnect"* ]]
	run --separate-stderr -69 cqstat --no-cache --match 'x*' --api "http://127.0.0.1:1" --json
	assert_equal "$(jq -c '[.api.up, .amqp, .queues]' <<<"$output")" '[false,null,[]]'
	run --separate-stderr -69 cqstat --no-cache --match 'x*' --api "http://127.0.0.1:1" --prom
	assert_output $'# HELP cq_up 1 when the server could be read for this sample, else 0\n# TYPE cq_up gauge\ncq_up{server="api"} 0'
	# the API up, nothing matched, AMQP down but never contacted: not up
	run --separate-stderr -0 cqstat --no-cache --match "nothing.$Q.*" --api "$API" --amqp "$DOWN_AMQP" --prom
	assert_line 'cq_up{server="api"} 1'
	refute_output --partial 'server="amqp"'
	run --separate-stderr -0 cqstat --no-cache --match "nothing.$Q.*" --api "$API" --amqp "$DOWN_AMQP" --json
	assert_equal "$(jq -c '[.api.up, .amqp, .queues]' <<<"$output")" '[true,null,[]]'
	run --separate-stderr -0 cqstat --no-cache --match "nothing.$Q.*" --api "$API" --amqp "$DOWN_AMQP"
	assert_line -n 2 --regexp '^ +0$'
}

@test "RabbitMQ down, the API up: a missing queue shows none, is named, and exits 1" {
	qctl declare -q "$Q"
	run --separate-stderr -1 cqstat --no-cache -Q "$Q" -Q "$Q.nosuch" --amqp "$DOWN_AMQP" --api "$API"
	assert_line -n 2 --regexp '^ +[0-9-]+ +[0-9-]+ +[0-9-]+ +[0-9.-]+ +[0-9.-]+ +- +none +- +- +- +- +-$'
	[[ $stderr == *"cqstat: no queue '$Q.nosuch'"* ]]
	[[ $stderr == "cqstat: amqp down: cannot connect to RabbitMQ at 127.0.0.1:1: "* ]]
	run --separate-stderr -1 cqstat --no-cache -Q "$Q.nosuch" --amqp "$DOWN_AMQP" --api "$API" --json
	assert_equal "$(jq -c '[.amqp.up, .api.up, .queues[0].found]' <<<"$output")" '[false,true,false]'
	# neither could tell: down, not missing
	run --separate-stderr -69 cqstat --no-cache -Q "$Q.nosuch" --amqp "$DOWN_AMQP" --api "http://127.0.0.1:1"
	refute_output --partial none
	run --separate-stderr -69 cqstat --no-cache -Q "$Q.nosuch" --amqp "$DOWN_AMQP" --api "http://127.0.0.1:1" --json
	assert_equal "$(jq -c '[.amqp.up, .api.up, .queues[0].found]' <<<"$output")" '[false,false,null]'
}

@test "long queue names are cut in the middle, keeping the end; the header stays as wide as its columns" {
	long=$Q.a-queue-name-too-long-for-its-columns
	qctl declare -q --dlq "$long"
	run --separate-stderr -0 cqstat --no-cache -Q "$long" -Q "$long.dlq"
	assert_equal "${#lines[0]}" "${#lines[1]}"
	assert_equal "${#lines[2]}" "${#lines[1]}"
	assert_line -n 0 --regexp "^ -+ ${Q:0:10}[^ ]*\.\.\.[^ ]*-its-columns -+ -+ ${Q:0:10}[^ ]*\.\.\.[^ ]*-columns\.dlq -+\$"
	# each group is exactly over its six columns (42 characters)
	for g in "${lines[0]:0:42}" "${lines[0]:42}"; do
		[[ $g =~ ^\ -+\ [^\ ]+\ -+$ ]] || fail "group: '$g'"
	done
}

@test "--nodes: the single node running, no alarm; without --api a usage error" {
	run -0 --separate-stderr cqstat --no-cache --nodes --api "$API" --json
	[ "$(jq -c '.cluster | [.nodes_running, .nodes_down, .alarms, .partitions, (.nodes | length), .nodes[0].running]' <<<"$output")" = "[1,0,0,0,1,1]" ]
	run -0 --separate-stderr cqstat --no-cache --nodes --api "$API" --prom
	[[ "$output" == *"cq_cluster_alarms 0"* ]]
	[[ "$output" == *'cq_node_memory_alarm{node="'*'"} 0'* ]]
	run -64 --separate-stderr cqstat --no-cache --nodes
	[ "${stderr%%$'\n'*}" = "cqstat: --nodes needs --api URL (or CQ_API_URL)" ]
}
