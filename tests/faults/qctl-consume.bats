#!/usr/bin/env bats
# Faults under `qctl consume` (issue 4): the broker stops, or freezes, while
# a consumer waits or a handler runs.  A dead broker is noticed (exit 75),
# and nothing unacked is lost.  A private sandbox: these tests stop, freeze
# and restart its RabbitMQ node.

bats_require_minimum_version 1.5.0
load fault_helper

QUEUE_SUITE=1

per_test_teardown() {
	[ -n "${FROZEN:-}" ] && kill -CONT "$FROZEN" 2>/dev/null
	sb_heal
}

# The pid of the private node's Erlang VM.
beam_pid() {
	"$SANDBOX" --dir "$SB" status 2>/dev/null |
		sed -n 's/^rabbitmq: *running (pid \([0-9]*\)).*/\1/p'
}

@test "consume: the broker stopping under an idle consumer exits 75" {
	qctl declare -q "$Q"
	qctl consume "$Q" >"$TMP/out" 2>"$TMP/err" &
	local pid=$!
	sleep 1
	sb stop-rabbit
	local rc=0
	wait "$pid" || rc=$?
	cat "$TMP/err"
	assert_equal "$rc" 75
	grep -q "^qctl: consume: " "$TMP/err"
}

@test "consume: a frozen broker is noticed through missed heartbeats (75)" {
	qctl declare -q "$Q"
	qctl consume --heartbeat 1s "$Q" >"$TMP/out" 2>"$TMP/err" &
	local pid=$!
	sleep 1
	FROZEN=$(beam_pid)
	[ -n "$FROZEN" ]
	kill -STOP "$FROZEN"
	# two missed heartbeats: about 2s; give it 20
	wait_for 20 sh -c "! kill -0 $pid 2>/dev/null"
	kill -CONT "$FROZEN"
	FROZEN=
	local rc=0
	wait "$pid" || rc=$?
	cat "$TMP/err"
	assert_equal "$rc" 75
	grep -q "^qctl: consume: connection lost: RabbitMQ at .*heartbeat" "$TMP/err"
}

@test "consume --exec: the broker stopping mid-handler loses nothing (75, message back)" {
	qctl declare -q "$Q"
	qctl enqueue -q "$Q" precious
	# the handler outlives the broker's shutdown; qctl waits for it
	qctl consume -e 'echo $$ >"$TMP/handler.pid"; sleep 8; cat >/dev/null' "$Q" \
		>"$TMP/out" 2>"$TMP/err" &
	local pid=$!
	wait_for 20 test -s "$TMP/handler.pid"
	sb stop-rabbit
	local rc=0
	wait "$pid" || rc=$?
	cat "$TMP/err"
	assert_equal "$rc" 75
	grep -q "^qctl: consume: RabbitMQ at .*CONNECTION_FORCED" "$TMP/err"
	grep -q "message '.*' handled but not acked: the connection is gone" "$TMP/err"
	sb start-rabbit
	run -0 take_all "$Q"
	assert_output precious
}
