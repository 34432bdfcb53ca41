#!/usr/bin/env bats
# cqstat --check: monitoring-plugin status line and exit codes
# (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).

load test_helper
load cqstat_helper

per_test_setup() {
	priv_redis_start
	export CQ_REDIS_URL=$PRIV_URL
	API=$CQ_API_URL
	unset CQ_API_URL
	# 3 hits and 1 miss: hit_rate 0.75
	cachectl set --ttl 60 a 1
	cachectl get a >/dev/null
	cachectl get a >/dev/null
	cachectl get a >/dev/null
	cachectl get -q nope || true
}

QUEUE_SUITE=1

@test "OK: exit 0 and one status line" {
	run --separate-stderr -0 cqstat --check 'hit_rate<0.5:warn'
	assert_output 'CQ OK - hit_rate=0.75'
	assert_equal "$stderr" ""
}

@test "WARNING: exit 1, the broken threshold shown" {
	run -1 cqstat --check 'hit_rate<0.8:warn' --check 'keys>100:crit'
	assert_output 'CQ WARNING - hit_rate=0.75 (<0.8) keys=1'
}

@test "CRITICAL: exit 2; it outranks a warning" {
	run -2 cqstat --check 'hit_rate<0.8:warn' --check 'keys_no_ttl>=0:crit'
	assert_output 'CQ CRITICAL - hit_rate=0.75 (<0.8) keys_no_ttl=0 (>=0)'
	run -2 cqstat --check 'hit_rate<80%'
	assert_output 'CQ CRITICAL - hit_rate=0.75 (<0.8)'
}

@test "queue checks: ready and dlq of real queues, the worst queue decides" {
	qctl declare -q --dlq "$Q"
	seq 5 | qctl enqueue -q "$Q"
	run -0 cqstat -Q "$Q" --check 'dlq>0:crit' --check 'ready>10:warn'
	assert_output 'CQ OK - dlq=0 ready=5'
	echo x | qctl enqueue -q "$Q.dlq"
	echo y | qctl enqueue -q "$Q.dlq"
	run -2 cqstat -Q "$Q" --check 'dlq>0:crit' --check 'ready>4:warn'
	assert_output 'CQ CRITICAL - dlq=2 (>0) ready=5 (>4)'
	# two queues: each named, a label selects one
	run -1 cqstat -Q "$Q" -Q "$Q.dlq" --check 'ready>3:warn'
	assert_output "CQ WARNING - ready[$Q]=5 (>3) ready[$Q.dlq]=2"
	run -0 cqstat -Q "$Q" -Q "$Q.dlq" --check "ready[$Q.dlq]>3:warn"
	assert_output "CQ OK - ready[$Q.dlq]=2"
}

@test "queue-only checks do not need Redis" {
	qctl declare -q "$Q"
	run -0 cqstat --redis "$DOWN_REDIS" -Q "$Q" --check 'ready>10'
	assert_output 'CQ OK - ready=0'
}

@test "UNKNOWN: exit 3 when the server is unreachable, with the reason" {
	run -3 cqstat --redis "$DOWN_REDIS" --check 'hit_rate<0.8:warn'
	assert_output 'CQ UNKNOWN - hit_rate unknown: cannot connect to Redis at 127.0.0.1:1: Connection refused'
	qctl declare -q "$Q"
	run -3 cqstat --amqp "$DOWN_AMQP" -Q "$Q" --check 'ready>10'
	assert_output --regexp '^CQ UNKNOWN - ready unknown: cannot connect to RabbitMQ at 127\.0\.0\.1:1: '
}

@test "UNKNOWN: a metric with no value (no lookups yet, no DLQ, no such queue)" {
	priv_redis_stop
	priv_redis_start
	export CQ_REDIS_URL=$PRIV_URL
	run -3 cqstat --check 'hit_rate<0.8'
	assert_output 'CQ UNKNOWN - hit_rate unknown'
	qctl declare -q "$Q"
	run -3 cqstat -Q "$Q" --check 'dlq>0'
	assert_output 'CQ UNKNOWN - dlq unknown'
	run -3 cqstat -Q "$Q.nosuch" --check 'ready>0'
	assert_output 'CQ UNKNOWN - ready unknown'
	run -3 cqstat -Q "$Q" --check 'ready[other]>0'
	assert_output 'CQ UNKNOWN - ready[other] unknown: no such queue'
}

@test "UNKNOWN: a bad expression or any usage error under --check exits 3, not 64" {
	run --separate-stderr -3 cqstat --check 'hit_rate<<0.8'
	assert_output "CQ UNKNOWN - bad --check 'hit_rate<<0.8': missing number after the comparison"
	[[ $stderr == "cqstat: --check 'hit_rate<<0.8': missing number after the comparison" ]]
	run --separate-stderr -3 cqstat --check 'nosuch>1'
	assert_output "CQ UNKNOWN - bad --check 'nosuch>1': unknown metric 'nosuch'"
	run --separate-stderr -3 cqstat --check 'hit_rate<0.8:urgent'
	assert_output "CQ UNKNOWN - bad --check 'hit_rate<0.8:urgent': bad level 'urgent' (want warn or crit)"
}

@test "UNKNOWN: every usage error under --check prints its one status line on stdout" {
	run --separate-stderr -3 cqstat --check 'hit_rate<0.8' --bogus
	assert_output "CQ UNKNOWN - unknown option '--bogus'"
	[[ $stderr == "cqstat: unknown option '--bogus'"* ]]
	run --separate-stderr -3 cqstat --check 'hit_rate<0.8' 1 2
	assert_output "CQ UNKNOWN - --check measures over one INTERVAL: no COUNT"
	run --separate-stderr -3 cqstat --check 'hit_rate<0.8' 0
	assert_output "CQ UNKNOWN - bad INTERVAL '0' (want e.g. 1, 500ms, 1m)"
	run --separate-stderr -3 cqstat --check
	assert_output "CQ UNKNOWN - --check needs an argument"
	run --separate-stderr -3 cqstat --json --check 'hit_rate<0.8'
	assert_output "CQ UNKNOWN - --json and --check exclude each other"
	[[ $stderr == "cqstat: --json and --check exclude each other"* ]]
	run --separate-stderr -3 cqstat --check 'hit_rate<0.8' --json
	assert_output "CQ UNKNOWN - --check and --json exclude each other"
	run --separate-stderr -3 cqstat --check 'hit_rate<0.8' -Q ''
	assert_output "CQ UNKNOWN - --queue: empty queue name"
	CQ_TIMEOUT=x run --separate-stderr -3 cqstat --check 'hit_rate<0.8'
	assert_output "CQ UNKNOWN - CQ_TIMEOUT: bad duration 'x'"
	# an abbreviation is --check too (getopt takes it), wherever it is
	run --separate-stderr -3 cqstat --bogus --chec 'hit_rate<0.8'
	assert_output "CQ UNKNOWN - unknown option '--bogus'"
}

@test "--check is found by its name, not a prefix: --checkfoo is a usage error, 64" {
	run --separate-stderr -64 cqstat --checkfoo
	[ -z "$output" ]
	[[ $stderr == "cqstat: unknown option '--checkfoo'"* ]]
	# a queue named --check is not a check either
	run --separate-stderr -64 cqstat -Q --check 0
	[ -z "$output" ]
	[[ $stderr == "cqstat: bad INTERVAL '0'"* ]]
}

@test "up: 1 or 0 for each server read; up[amqp] connects even with no queue" {
	run -0 cqstat --check 'up<1'
	assert_output 'CQ OK - up=1'
	run -0 cqstat --check 'up[redis]<1'
	assert_output 'CQ OK - up[redis]=1'
	run -0 cqstat --check 'up[amqp]<1:crit'
	assert_output 'CQ OK - up[amqp]=1'
	run --separate-stderr -2 cqstat --amqp "$DOWN_AMQP" --check 'up[amqp]<1:crit'
	assert_output 'CQ CRITICAL - up[amqp]=0 (<1)'
	# each server read has its up, the one down first
	qctl declare -q "$Q"
	run -2 cqstat --amqp "$DOWN_AMQP" -Q "$Q" --check 'up<1' --check 'hit_rate<0.1'
	assert_output 'CQ CRITICAL - up[amqp]=0 (<1) up[redis]=1 hit_rate=0.75'
	run -0 cqstat --redis "$DOWN_REDIS" --check 'up[amqp]<1'
	assert_output 'CQ OK - up[amqp]=1'
	# the management API, logged in to
	run -0 cqstat --api "$API" --check 'up[api]<1'
	assert_output 'CQ OK - up[api]=1'
	run -2 cqstat --api "http://127.0.0.1:1" --check 'up[api]<1'
	assert_output 'CQ CRITICAL - up[api]=0 (<1)'
	# a server not asked for has no up
	run -3 cqstat --check 'up[api]<1'
	assert_output 'CQ UNKNOWN - up[api] unknown: no such server'
}

@test "--check with INTERVAL judges the figures of that interval" {
	# since start the rate is 0.75; in the interval only hits are made
	cqstat --check 'hit_rate<0.9:warn' 2 >"$TMP/out" &
	pid=$!
	sleep 0.5
	for i in 1 2 3 4; do cachectl get a >/dev/null; done
	wait "$pid" && rc=0 || rc=$?
	assert_equal "$rc" 0
	assert_equal "$(cat "$TMP/out")" 'CQ OK - hit_rate=1'
	run -1 cqstat --check 'hit_rate<0.9:warn'
	assert_output 'CQ WARNING - hit_rate=0.875 (<0.9)'
}
