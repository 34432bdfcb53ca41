#!/usr/bin/env bats
# qctl enqueue (issue 4): arguments or stdin, persistent, mandatory,
# publisher-confirmed; exit 0 only when every message is confirmed, else
# name exactly the input lines that were not.

bats_require_minimum_version 1.5.0
load test_helper
load qctl_helper

per_test_setup() {
	qctl declare -q "$Q"
}

@test "enqueue: arguments become messages, in order, with a summary" {
	run -0 --separate-stderr qctl enqueue "$Q" one "two words" three
	[ -z "$output" ]
	[[ "$stderr" =~ ^"enqueued 3 messages in "[0-9.]+"s (0 failed)"$ ]]
	run -0 take_all "$Q"
	assert_output "$(printf 'one\ntwo words\nthree')"
}

@test "enqueue: stdin lines, blank lines skipped, -q silent" {
	run -0 --separate-stderr qctl enqueue -q "$Q" < <(printf 'a\n\nb\nc')
	[ -z "$stderr" ]
	run -0 take_all "$Q"
	assert_output "$(printf 'a\nb\nc')"
}

@test "enqueue: blank lines are counted in the summary" {
	run -0 --separate-stderr qctl enqueue "$Q" < <(printf 'a\n\nb\n\n')
	[[ "$stderr" =~ ^"enqueued 2 messages in "[0-9.]+"s (0 failed, 2 blank)"$ ]]
	[ "$(ready "$Q")" -eq 2 ]
}

@test "enqueue: CRLF lines are refused (exit 65, each line named); a JSONL line's CR is blank space" {
	run -65 --separate-stderr qctl enqueue "$Q" < <(printf 'a\r\nb\nc\r\n')
	assert_equal "${stderr_lines[0]}" "qctl: enqueue: line 1: line ends in CR (a CRLF file?): convert it with dos2unix or tr -d '\r' first"
	[[ "${stderr_lines[1]}" == "qctl: enqueue: line 3: line ends in CR "* ]]
	[[ "${stderr_lines[2]}" =~ ^"enqueued 1 message in "[0-9.]+"s (0 failed, 2 malformed)"$ ]]
	[ "$(ready "$Q")" -eq 1 ]
	run -0 qctl enqueue -q --jsonl "$Q" < <(printf '{"body":"x"}\r\n')
	run -0 take_all "$Q"
	assert_output "$(printf 'b\nx')"
}

@test "enqueue: out of memory for a line exits 70 (was 74, 'cannot read standard input')" {
	run -70 --separate-stderr low_memory 150 "{ head -c 200000000 /dev/zero | tr '\0' x; printf '\n'; } | qctl enqueue --max-size 300M '$Q'"
	assert_equal "${stderr_lines[-1]}" "qctl: enqueue: out of memory"	# ASan may warn first
	[ "$(ready "$Q")" -eq 0 ]
}

@test "enqueue: persistent by default, --transient not; each message a fresh id and a timestamp" {
	qctl enqueue -q "$Q" x y
	qctl enqueue -q --transient "$Q" z
	run -0 api_get "$Q" 10
	[ "$(jq -r '[.[].properties.delivery_mode] | join(",")' <<<"$output")" = 2,2,1 ]
	[ "$(jq -r '[.[].properties.message_id] | unique | length' <<<"$output")" = 3 ]
	[[ "$(jq -r '.[0].properties.message_id' <<<"$output")" =~ ^[0-9A-Za-z]{17}$ ]]
	now=$(date +%s)
	ts=$(jq -r '.[0].properties.timestamp' <<<"$output")
	[ $((now - ts)) -lt 60 ]
}

@test "enqueue: --no-message-id sends none (a JSONL record may still name one)" {
	printf '%s\n' '{"body":"a"}' '{"body":"b","message_id":"id-b"}' |
		qctl enqueue -q --no-message-id --jsonl "$Q"
	run -0 api_get "$Q" 10
	[ "$(jq -c '[.[].properties.message_id]' <<<"$output")" = '[null,"id-b"]' ]
	# with no ids, a returned message cannot be told apart from the others
	# waiting for their confirm: they are all reported (a duplicate, never a loss)
	api "exchanges/%2f/$Q.x" -X PUT -d '{"type":"direct","durable":false}'
	run -75 --separate-stderr qctl enqueue --no-message-id --exchange "$Q.x" "$Q" x
	[[ "$stderr" == *"argument 1: not confirmed: unroutable"* ]]
}

@test "enqueue: -H, --priority, --message-id, --content-type, --expiration set properties" {
	qctl declare -q "$Q.other" --max-priority 9
	run -0 qctl enqueue -q "$Q.other" -H tenant=acme -H 'note=a=b' --priority 7 \
		--message-id m-1 --content-type application/json --expiration 1h '{"a":1}'
	run -0 api_get "$Q.other"
	[ "$(jq -r '.[0].properties.headers.tenant' <<<"$output")" = acme ]
	[ "$(jq -r '.[0].properties.headers.note' <<<"$output")" = a=b ]
	[ "$(jq -r '.[0].properties.priority' <<<"$output")" = 7 ]
	[ "$(jq -r '.[0].properties.message_id' <<<"$output")" = m-1 ]
	[ "$(jq -r '.[0].properties.content_type' <<<"$output")" = application/json ]
	[ "$(jq -r '.[0].properties.expiration' <<<"$output")" = 3600000 ]
}

@test "enqueue: -0 reads NUL-separated records, binary-safe (newlines, high bytes)" {
	printf 'line1\nline2\0\001\377\r\n\0last' > "$TMP/in"
	run -0 qctl enqueue -q -0 "$Q" < "$TMP/in"
	amqp-get -u "$CQ_AMQP_URL" -q "$Q" > "$TMP/m1"
	amqp-get -u "$CQ_AMQP_URL" -q "$Q" > "$TMP/m2"
	amqp-get -u "$CQ_AMQP_URL" -q "$Q" > "$TMP/m3"
	cmp "$TMP/m1" <(printf 'line1\nline2')
	cmp "$TMP/m2" <(printf '\001\377\r\n')
	cmp "$TMP/m3" <(printf 'last')
}

@test "enqueue: --jsonl records carry body, body_base64 (NUL bytes), headers and properties" {
	qctl declare -q "$Q.other" --max-priority 9
	cat > "$TMP/in" <<'EOF'
{"body":"hello","headers":{"k":"v","n":3,"ok":true},"message_id":"id-1","priority":5,"content_type":"text/plain","expiration":"30s"}
{"body_base64":"AAECAP8=","message-id":"id-2"}
{"body":"tab\there"}
EOF
	run -0 qctl enqueue -q --jsonl "$Q.other" < "$TMP/in"
	run -0 api_get "$Q.other"
	[ "$(jq -r '.[0].payload | @base64d' <<<"$output")" = hello ]
	[ "$(jq -c '.[0].properties.headers' <<<"$output")" = '{"k":"v","n":3,"ok":true}' ]
	[ "$(jq -r '.[0].properties.message_id' <<<"$output")" = id-1 ]
	[ "$(jq -r '.[0].properties.priority' <<<"$output")" = 5 ]
	[ "$(jq -r '.[0].properties.content_type' <<<"$output")" = text/plain ]
	[ "$(jq -r '.[0].properties.expiration' <<<"$output")" = 30000 ]
	[ "$(jq -r '.[1].payload' <<<"$output")" = AAECAP8= ]
	[ "$(jq -r '.[1].properties.message_id' <<<"$output")" = id-2 ]
	[ "$(jq -r '.[2].payload | @base64d' <<<"$output")" = "$(printf 'tab\there')" ]
}

@test "enqueue --jsonl: header booleans and numbers keep their AMQP types; peek and consume --jsonl give them back" {
	qctl declare -q "$Q"
	printf '%s\n' '{"body":"a","headers":{"t":true,"f":false,"i":42,"neg":-7,"big":9007199254740993,"x":1.5,"two":2.0,"e":1e3,"s":"true"}}' |
		qctl enqueue -q --jsonl "$Q"
	# the broker's view through the management API (its JSON, sorted by
	# name, writes floats as 2.0 and 1.0e3 and integers without a point)
	run -0 api_get "$Q" 1 ack_requeue_true
	[ "$(grep -o '"headers":{[^}]*}' <<<"$output")" = '"headers":{"big":9007199254740993,"e":1.0e3,"f":false,"i":42,"neg":-7,"s":"true","t":true,"two":2.0,"x":1.5}' ]
	# peek --json and consume --jsonl: the same JSON types, ints vs floats kept
	local want='"headers":{"t":true,"f":false,"i":42,"neg":-7,"big":9007199254740993,"x":1.5,"two":2.0,"e":1000.0,"s":"true"}'
	run -0 --separate-stderr qctl peek --json "$Q"
	[ "$(grep -o '"headers":{[^}]*}' <<<"$output")" = "$want" ]
	run -0 --separate-stderr qctl consume --jsonl --count 1 "$Q"
	[ "$(grep -o '"headers":{[^}]*}' <<<"$output")" = "$want" ]
	[ "$(ready "$Q")" = 0 ]
}

@test "enqueue: malformed JSONL lines exit 65 naming each line; the good lines are sent" {
	cat > "$TMP/in" <<'EOF'
{"body":"ok1"}
{"body":
{"body":"x","priority":999}
["not an object"]
{"body":"ok2","headers":{"k":{"nested":1}}}
{"headers":{}}
{"body":"ok3"}
{"body":"a","body":"b"}
{"body":"ok4"} x
EOF
	run -65 --separate-stderr qctl enqueue --jsonl "$Q" < "$TMP/in"
	[[ "$stderr" == *"qctl: enqueue: line 2: bad JSON at column 8: unexpected token near end of file"* ]]
	[[ "$stderr" == *"qctl: enqueue: line 3: priority: want an integer 0-255"* ]]
	# the words of warm --jsonl for the same faults (cachectl-warm.bats)
	[[ "$stderr" == *"qctl: enqueue: line 4: not a JSON object: '[\"not an object\"]'"* ]]
	[[ "$stderr" == *"qctl: enqueue: line 5: header 'k': want a string, number or boolean"* ]]
	[[ "$stderr" == *"qctl: enqueue: line 6: no \"body\" or \"body_base64\""* ]]
	[[ "$stderr" == *"qctl: enqueue: line 8: bad JSON at column 18: duplicate object key near '\"body\"'"* ]]
	[[ "$stderr" == *"qctl: enqueue: line 9: text after the JSON object at column 16: 'x'"* ]]
	[[ "$stderr" == *"enqueued 2 messages in "*"(0 failed, 7 malformed)"* ]]
	run -0 take_all "$Q"
	assert_output "$(printf 'ok1\nok3')"
}

@test "enqueue: a missing queue is named up front (exit 1), nothing is published" {
	run -1 --separate-stderr qctl enqueue "$Q.nope" x
	assert_equal "$stderr" "qctl: enqueue: queue '$Q.nope' does not exist (create it with: qctl declare $Q.nope)"
	run -1 --separate-stderr qctl enqueue --exchange "$Q.x" "$Q" x
	assert_equal "$stderr" "qctl: enqueue: exchange '$Q.x' does not exist"
}

@test "enqueue: the missing-queue hint quotes the name for the shell, so it can be pasted" {
	local name="$Q it's \$HOME" cmd
	run -1 --separate-stderr qctl enqueue "$name" x
	assert_equal "$stderr" "qctl: enqueue: queue '$name' does not exist (create it with: qctl declare '$Q it'\\''s \$HOME')"
	cmd=${stderr#*create it with: }
	cmd=${cmd%)}
	run -0 bash -c "$cmd"
	run -0 api "queues/%2f/$(uri "$name")"
	[ "$(jq -r .name <<<"$output")" = "$name" ]
}

@test "enqueue: unroutable messages exit 75 and name exactly the lines not confirmed" {
	api "exchanges/%2f/$Q.x" -X PUT -d '{"type":"direct","durable":false}'
	api "bindings/%2f/e/$Q.x/q/$Q" -X POST -d '{"routing_key":"a"}'
	cat > "$TMP/in" <<'EOF'
{"body":"1","routing_key":"a"}
{"body":"2","routing_key":"b"}
{"body":"3","routing_key":"b"}
{"body":"4","routing_key":"a"}
{"body":"5","routing_key":"b"}
EOF
	run -75 --separate-stderr qctl enqueue --json --jsonl --exchange "$Q.x" "$Q" < "$TMP/in"
	[[ "$stderr" == *"qctl: enqueue: lines 2-3: not confirmed: unroutable (no queue bound)"* ]]
	[[ "$stderr" == *"qctl: enqueue: line 5: not confirmed: unroutable (no queue bound)"* ]]
	[[ "$stderr" != *"line 1:"* && "$stderr" != *"line 4:"* ]]
	[[ "$stderr" == *"enqueued 2 messages in "*"(3 failed)"* ]]
	[ "$(jq -c '.line' <<<"$output" | tr '\n' ' ')" = "2 3 5 " ]
	[ "$(jq -r '.error' <<<"$output" | sort -u)" = "unroutable (no queue bound)" ]
	run -0 take_all "$Q"
	assert_output "$(printf '1\n4')"
}

@test "enqueue: malformed lines and an unroutable one exit 75, not 65 (the worst wins, as in warm)" {
	api "exchanges/%2f/$Q.x" -X PUT -d '{"type":"direct","durable":false}'
	api "bindings/%2f/e/$Q.x/q/$Q" -X POST -d '{"routing_key":"a"}'
	cat > "$TMP/in" <<'EOF'
{"body":"1","routing_key":"a"}
{"body":
{"body":"3","routing_key":"b"}
{"body":"4","routing_key":"a"}
EOF
	run -75 --separate-stderr qctl enqueue --jsonl --exchange "$Q.x" "$Q" < "$TMP/in"
	[[ "$stderr" == *"qctl: enqueue: line 2: bad JSON"* ]]
	[[ "$stderr" == *"qctl: enqueue: line 3: not confirmed: unroutable (no queue bound)"* ]]
	[[ "$stderr" == *"(1 failed, 1 malformed)"* ]]
	[ "$(ready "$Q")" = 2 ]
}

@test "enqueue: an exchange with no binding at all fails every message (arguments named)" {
	api "exchanges/%2f/$Q.x" -X PUT -d '{"type":"fanout","durable":false}'
	run -75 --separate-stderr qctl enqueue --exchange "$Q.x" "$Q" a b c
	[[ "$stderr" == *"arguments 1-3: not confirmed: unroutable (no queue bound)"* ]]
}

@test "enqueue: a 10 MiB message round-trips; one over --max-size is a bad line (65)" {
	head -c $((10 << 20)) /dev/urandom | base64 -w0 > "$TMP/big"
	echo >> "$TMP/big"
	run -0 qctl enqueue -q "$Q" < "$TMP/big"
	amqp-get -u "$CQ_AMQP_URL" -q "$Q" > "$TMP/got"
	cmp "$TMP/got" <(head -c -1 "$TMP/big")
	{ echo small; head -c 2000 /dev/zero | tr '\0' x; echo; echo after; } > "$TMP/in"
	run -65 --separate-stderr qctl enqueue --max-size 1k "$Q" < "$TMP/in"
	[[ "$stderr" == *"line 2: longer than --max-size (1024 bytes)"* ]]
	run -0 take_all "$Q"
	assert_output "$(printf 'small\nafter')"
}

@test "enqueue: many lines through a small window are all confirmed, in order" {
	seq 1 5000 > "$TMP/in"
	run -0 --separate-stderr qctl enqueue --window 7 "$Q" < "$TMP/in"
	[[ "$stderr" == "enqueued 5000 messages in "* ]]
	[ "$(ready "$Q")" = 5000 ]
	take_bodies "$Q" > "$TMP/out"
	cmp "$TMP/in" "$TMP/out"
}

@test "enqueue: usage errors exit 64" {
	run -64 --separate-stderr qctl enqueue
	[[ "$stderr" == *"missing QUEUE"* ]]
	run -64 --separate-stderr qctl enqueue -H novalue "$Q" x
	[[ "$stderr" == *"-H: want key=value, got 'novalue'"* ]]
	run -64 --separate-stderr qctl enqueue --priority 256 "$Q" x
	run -64 --separate-stderr qctl enqueue --window 0 "$Q" x
	run -64 --separate-stderr qctl enqueue --routing-key k "$Q" x
	[[ "$stderr" == *"--routing-key goes with --exchange"* ]]
	run -64 --separate-stderr qctl enqueue --jsonl "$Q" x
	run -64 --separate-stderr qctl enqueue --expiration soon "$Q" x
	run -64 --separate-stderr qctl enqueue --message-id m --no-message-id "$Q" x
	[[ "$stderr" == *"--message-id and --no-message-id exclude each other"* ]]
}

@test "enqueue: an unreachable broker exits 69" {
	run -69 --separate-stderr qctl enqueue --amqp amqp://guest:guest@127.0.0.1:1/ "$Q" x
	[[ "$stderr" == "qctl: enqueue: cannot connect to RabbitMQ at 127.0.0.1:1"* ]]
}

@test "enqueue: a wrong password exits 77 without showing it" {
	run -77 --separate-stderr qctl enqueue --amqp "$(bad_password_url)" "$Q" x
	[[ "$stderr" == "qctl: enqueue: login to RabbitMQ at "*" as 'guest': ACCESS_REFUSED"* ]]
	[[ "$stderr$output" != *wrong-s3cret* ]]
}

@test "enqueue: --json with a closed stdout still exits with the publish result" {
	api "exchanges/%2f/$Q.x" -X PUT -d '{"type":"fanout","durable":false}'
	run -0 --separate-stderr bash -c "seq 1 3000 | qctl enqueue -q --json --exchange '$Q.x' '$Q' | head -c1 >/dev/null; echo \${PIPESTATUS[1]}"
	assert_output 75
	[[ "$stderr" == *"lines 1-3000: not confirmed: unroutable"* ]]
}

@test "enqueue: out-of-order confirms (returns among routed messages) in a small window" {
	api "exchanges/%2f/$Q.x" -X PUT -d '{"type":"direct","durable":false}'
	api "bindings/%2f/e/$Q.x/q/$Q" -X POST -d '{"routing_key":"a"}'
	for i in $(seq 1 300); do
		if ((i % 3)); then echo "{\"body\":\"$i\",\"routing_key\":\"a\"}"
		else echo "{\"body\":\"$i\",\"routing_key\":\"b\"}"; fi
	done > "$TMP/in"
	run -75 --separate-stderr qctl enqueue --json --jsonl --window 4 --exchange "$Q.x" "$Q" < "$TMP/in"
	[[ "$stderr" == *"enqueued 200 messages in "*"(100 failed)"* ]]
	[ "$(jq -r .line <<<"$output" | tr '\n' ' ')" = "$(seq 3 3 300 | tr '\n' ' ')" ]
	[ "$(take_bodies "$Q" | tr '\n' ' ')" = "$(seq 1 300 | awk '$1 % 3' | tr '\n' ' ')" ]
}

# The management API's name of the AMQP connection of process $1 (found by
# its local port); fails until the API lists it.
connection_of() {
	local port name
	port=$(ss -Htnp state established | awk -v p="pid=$1," 'index($0, p) { n = split($3, a, ":"); print a[n]; exit }')
	[ -n "$port" ] || return 1
	name=$(api connections | jq -r --argjson p "$port" '.[] | select(.peer_port == $p) | .name')
	[ -n "$name" ] && echo "$name"
}

# Close, through the management API, the AMQP connection of process $1.
close_connection_of() {
	local name
	name=$(connection_of "$1") || return 1
	api "connections/$(uri "$name")" -X DELETE
}

# The heartbeat (seconds) the connection of process $1 agreed on.
heartbeat_of() {
	local name
	name=$(connection_of "$1") || return 1
	api "connections/$(uri "$name")" | jq -r .timeout
}

has_ready() { [ "$(ready "$1")" = "$2" ]; }

@test "enqueue: a slow producer keeps the connection: heartbeats go out while input is awaited" {
	# with 1s heartbeats, RabbitMQ drops a client silent for ~2s
	run -0 --separate-stderr bash -c "{ echo a; sleep 4; echo b; } | qctl enqueue --heartbeat 1s '$Q'"
	[[ "$stderr" == "enqueued 2 messages in "*"(0 failed)" ]]
	[ "$(take_bodies "$Q" | tr '\n' ' ')" = "a b " ]
}

@test "enqueue: the connection closed while input is awaited: exit 75 at once, confirmed lines counted, the rest named unsent" {
	mkfifo "$TMP/in"
	qctl enqueue "$Q" < "$TMP/in" > "$TMP/out" 2> "$TMP/err" &
	pid=$!
	exec 4> "$TMP/in"
	printf 'a\nb\n' >&4
	wait_for 20 has_ready "$Q" 2
	wait_for 20 close_connection_of "$pid"
	# no more input comes: qctl must notice the close by itself
	wait_for 20 eval '! kill -0 '"$pid"' 2>/dev/null' || { exec 4>&-; false; }
	status=0
	wait "$pid" || status=$?
	exec 4>&-
	[ "$status" = 75 ] || { echo "status $status"; cat "$TMP/err"; false; }
	grep -q "^qctl: enqueue: lines from 3 on: not sent$" "$TMP/err"
	grep -q "^enqueued 2 messages in .*(0 failed)$" "$TMP/err"
	[ "$(take_bodies "$Q" | tr '\n' ' ')" = "a b " ]
}

@test "enqueue: ?heartbeat=N in the URL sets the heartbeat; a URL option cq does not know is a usage error" {
	mkfifo "$TMP/in"
	qctl enqueue "$Q" --amqp "$CQ_AMQP_URL?heartbeat=7" < "$TMP/in" 2> "$TMP/err" &
	pid=$!
	exec 4> "$TMP/in"
	echo a >&4
	wait_for 20 has_ready "$Q" 1
	wait_for 20 heartbeat_of "$pid" >/dev/null
	hb=$(heartbeat_of "$pid")
	exec 4>&-
	wait "$pid"
	[ "$hb" = 7 ] || { echo "heartbeat $hb"; false; }
	run -64 --separate-stderr qctl enqueue "$Q" b --amqp "$CQ_AMQP_URL?channel_max=5"
	assert_equal "$stderr" "qctl: enqueue: bad AMQP URL '${CQ_AMQP_URL/:guest@/:***@}?channel_max=5': unsupported URL option 'channel_max' (cq takes heartbeat and connection_timeout; TLS files come from --cacert, --cert and --key)"
}
