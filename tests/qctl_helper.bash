# tests/qctl_helper.bash - loaded after test_helper by the qctl suites of
# declare, enqueue, peek, replay-dlq and purge.
#
# Messages are checked with other clients than qctl wherever it matters:
# amqp-tools (amqp-get, amqp-delete-queue), the management HTTP API (which
# can also reject messages into a dead-letter exchange, as any client's
# basic.reject would), and rabbitmqctl for exact counts.

# The test's queues and exchanges are dropped in teardown.
QUEUE_SUITE=1

# Take up to N messages from queue $1 through the API, as a JSON array.
# $3 is the ackmode: ack_requeue_false (take), ack_requeue_true (look),
# reject_requeue_false (reject: dead-letters through the queue's DLX).
api_get() {
	api "queues/%2f/$(uri "$1")/get" -X POST \
		-d "{\"count\":${2:-1000},\"ackmode\":\"${3:-ack_requeue_false}\",\"encoding\":\"base64\",\"truncate\":200000000}"
}

# Reject N messages of queue $1 (a consumer saying "no" with requeue=false).
reject() {
	api_get "$1" "${2:-1000}" reject_requeue_false >/dev/null
}

# A URL to the sandbox broker with a wrong password.
bad_password_url() {
	local rest=${CQ_AMQP_URL#amqp://*@}
	echo "amqp://guest:wrong-s3cret@$rest"
}
