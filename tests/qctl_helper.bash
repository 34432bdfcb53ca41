# tests/qctl_helper.bash - loaded after test_helper by the qctl suites of
# declare, enqueue, peek, replay-dlq and purge.
#
# Messages are checked with other clients than qctl wherever it matters:
# amqp-tools (amqp-get, amqp-delete-queue), the management HTTP API (which
# can also reject messages into a dead-letter exchange, as any client's
# basic.reject would), and rabbitmqctl for exact counts.

# Delete the test's queues and exchanges ($Q and the names derived from it).
per_test_teardown() {
	local q
	for q in "$Q" "$Q.dlq" "$Q.other" "$Q.other.dlq" "$Q.target" "$Q.custom-dlq" \
		"$HQ" "$HQ.dlq"; do
		amqp-delete-queue -u "$CQ_AMQP_URL" -q "$q" >/dev/null 2>&1 || true
	done
	for q in "$Q.dlx" "$Q.other.dlx" "$Q.x" "$HQ.dlx"; do
		api "exchanges/%2f/$(jq -rn --arg s "$q" '$s | @uri')" -X DELETE >/dev/null 2>&1 || true
	done
}

# The management HTTP API: api PATH [curl options...]
api() {
	local path=$1
	shift
	curl -sf -H 'content-type: application/json' "$CQ_API_URL/api/$path" "$@"
}

# Take up to N messages from queue $1 through the API, as a JSON array.
# $3 is the ackmode: ack_requeue_false (take), ack_requeue_true (look),
# reject_requeue_false (reject: dead-letters through the queue's DLX).
api_get() {
	api "queues/%2f/$1/get" -X POST \
		-d "{\"count\":${2:-1000},\"ackmode\":\"${3:-ack_requeue_false}\",\"encoding\":\"base64\",\"truncate\":200000000}"
}

# Reject N messages of queue $1 (a consumer saying "no" with requeue=false).
reject() {
	api_get "$1" "${2:-1000}" reject_requeue_false >/dev/null
}

# Ready messages in queue $1, exactly (rabbitmqctl asks the queue itself).
ready() {
	rctl list_queues -q name messages_ready |
		awk -F'\t' -v q="$1" '$1 == q { print $2; found = 1 } END { if (!found) print "missing" }'
}

# Take every message of queue $1 with amqp-get, one body per line.
take_all() {
	local body
	while body=$(amqp-get -u "$CQ_AMQP_URL" -q "$1" 2>/dev/null); do
		printf '%s\n' "$body"
	done
}

# Decoded bodies of the messages taken from queue $1 through the API, one
# per line (for bodies without newlines).
take_bodies() {
	api_get "$1" "${2:-100000}" | jq -r '.[].payload | @base64d'
}

# A URL to the sandbox broker with a wrong password.
bad_password_url() {
	local rest=${CQ_AMQP_URL#amqp://*@}
	echo "amqp://guest:wrong-s3cret@$rest"
}
