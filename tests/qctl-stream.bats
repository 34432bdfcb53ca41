#!/usr/bin/env bats
# qctl on Redis Streams (issue 12 §3): consume through a consumer group
# (XREADGROUP, XACK after success, XAUTOCLAIM of a dead consumer's entries,
# delivery counts deciding retries, dead letters to NAME.dlq), interop
# with a Node.js ioredis app both ways, bad input.  Counted with redis-cli.

bats_require_minimum_version 1.5.0
load test_helper

per_test_setup() {
	export CQ_QUEUE_BACKEND=stream
	K="$P$Q"	# the stream's key (the context's prefix applies)
}

peer() { node "$TOP/bench/peers/ioredis-stream.js" "$@"; }

group() { rcli XGROUP CREATE "$1" "${2:-qctl}" 0 MKSTREAM >/dev/null; }

# One field of the group's XINFO GROUPS record.
group_field() {
	rcli XINFO GROUPS "$K" | awk -v g="${2:-qctl}" -v f="$1" '
		prev == "name" { cur = $0 } { if (cur == g && prev == f) print; prev = $0 }'
}

pending() { rcli XPENDING "$K" "${1:-qctl}" | head -n1; }
pending_is() { [ "$(pending)" = "$1" ]; }

# ---- consuming ---------------------------------------------------------------------

@test "stream: consume prints what an ioredis app XADDed, oldest first, and acks it" {
	group "$K"
	peer produce "$CQ_REDIS_URL" "$K" 5 trace t1
	run -0 --separate-stderr qctl consume --until-empty "$Q"
	assert_output "$(printf 'msg-%s\n' 1 2 3 4 5)"
	[[ "$stderr" == "qctl: consume: consumed 5 messages in "*"s (5 acked, 0 retried, 0 dead-lettered)" ]]
	assert_equal "$(pending)" 0
	assert_equal "$(group_field entries-read)" 5
	assert_equal "$(group_field lag)" 0
	# a clean end holding nothing leaves the group: no stale consumer
	assert_equal "$(group_field consumers)" 0
}

@test "stream: the body is field 'body', else the only field, else all fields as JSON; --jsonl shows every field" {
	group "$K"
	rcli XADD "$K" '*' trace abc body b1 >/dev/null
	rcli XADD "$K" '*' data only >/dev/null
	rcli XADD "$K" '*' a 1 b 2 >/dev/null
	run -0 --separate-stderr qctl consume --until-empty "$Q"
	assert_output "$(printf 'b1\nonly\n{"a":"1","b":"2"}')"
	rcli XADD "$K" '*' trace abc body b1 >/dev/null
	id=$(rcli XADD "$K" '*' a 1 b 2)
	run -0 --separate-stderr qctl consume --until-empty --jsonl "$Q"
	assert_equal "$(sed -n 1p <<<"$output" | jq -c '[.body, .headers]')" '["b1",{"trace":"abc","x-delivery-count":1}]'
	assert_equal "$(sed -n 2p <<<"$output" | jq -c '[.message_id, .queue, .body, .headers]')" \
		"[\"$id\",\"$Q\",\"{\\\"a\\\":\\\"1\\\",\\\"b\\\":\\\"2\\\"}\",{\"a\":\"1\",\"b\":\"2\",\"x-delivery-count\":1}]"
}

@test "stream: binary, empty and 50 MB bodies come through byte for byte" {
	group "$K"
	printf 'a\0b\xff\xfe\n' >"$TMP/bin"
	rcli -x XADD "$K" '*' body <"$TMP/bin" >/dev/null
	rcli XADD "$K" '*' body '' >/dev/null
	qctl consume --until-empty -0 "$Q" >"$TMP/out"
	printf 'a\0b\xff\xfe\n\0\0' | cmp - "$TMP/out"
	rcli -x XADD "$K" '*' body <"$TMP/bin" >/dev/null
	run -0 --separate-stderr qctl consume --until-empty --jsonl "$Q"
	assert_equal "$(jq -r .body_base64 <<<"$output" | base64 -d | od -An -tx1 | tr -d ' \n')" "610062fffe0a"
	head -c 50000000 /dev/urandom >"$TMP/big"
	rcli -x XADD "$K" '*' body <"$TMP/big" >/dev/null
	qctl consume --until-empty --exec "cmp - '$TMP/big' && touch '$TMP/same'" "$Q"
	[ -f "$TMP/same" ]
	assert_equal "$(pending)" 0
	rcli UNLINK "$K" >/dev/null	# acked entries stay: 50 MB less for the suites after
}

@test "stream: a reader that goes away: consume and peek exit 74 silently; what was not written is released to the next consumer" {
	group "$K"
	seq 1 20000 | qctl enqueue -q "$Q"
	run -0 --separate-stderr bash -c 'qctl peek -n 5000 "$1" | head -n 1 >/dev/null; echo "${PIPESTATUS[0]}"' _ "$Q"
	assert_output 74
	assert_equal "$stderr" ""
	assert_equal "$(pending)" 0
	run -0 --separate-stderr bash -c 'qctl consume "$1" | head -n 1 >/dev/null; echo "${PIPESTATUS[0]}"' _ "$Q"
	assert_output 74
	assert_equal "$stderr" ""
	# what it read and did not write stays pending, released: the next
	# consumer takes it at once with the rest, each once, none lost
	held=$(pending)
	left=$((held + $(group_field lag)))
	((held > 0 && left < 20000))
	qctl consume -q --until-empty "$Q" >"$TMP/rest"
	assert_equal "$(pending)" 0
	assert_equal "$(group_field lag)" 0
	sort -n "$TMP/rest" | cmp - <(seq $((20000 - left + 1)) 20000)
}

@test "stream: --exec acks after success; a failure is retried by delivery count, then dead-lettered with its reason" {
	group "$K"
	rcli XADD "$K" '*' body ok1 >/dev/null
	bad=$(rcli XADD "$K" '*' body bad extra e1)
	rcli XADD "$K" '*' body ok2 >/dev/null
	run -0 --separate-stderr qctl consume --until-empty --max-retries 2 --exec '
		b=$(cat); echo "$b $CQ_RETRIES $CQ_DELIVERY_COUNT $CQ_HEADER_EXTRA" >>"$TMP/seen"
		[ "$b" != bad ] || { echo "broke on $b" >&2; exit 3; }' "$Q"
	[[ "$stderr" == *"message '$bad' failed (exit 3): retry 1 of 2 (broker delivery count 1)"* ]]
	[[ "$stderr" == *"message '$bad' dead-lettered to stream '$Q.dlq': exit 3"* ]]
	[[ "$stderr" == *"(2 acked, 2 retried, 1 dead-lettered)" ]]
	assert_equal "$(grep -c '^bad' "$TMP/seen")" 3
	assert_equal "$(grep '^bad' "$TMP/seen" | tr '\n' '|')" "bad 0 1 e1|bad 1 2 e1|bad 2 3 e1|"
	# the original is acked and deleted; the dead letter keeps every field
	assert_equal "$(pending)" 0
	assert_equal "$(rcli XRANGE "$K" "$bad" "$bad")" ""
	run -0 rcli XRANGE "$K.dlq" - +
	dl=$(sed 1d <<<"$output" | paste -sd'|')
	[[ "$dl" == "body|bad|extra|e1|x-cq-death-reason|exit 3|x-cq-exit-code|3|x-cq-stderr|broke on bad|x-cq-retries|3|x-cq-original-queue|$Q|x-cq-original-id|$bad|x-cq-died-at|"*"|x-cq-host|$(hostname)" ]]
}

@test "stream: a poison code dead-letters at once to --dlq" {
	group "$K"
	rcli XADD "$K" '*' body p >/dev/null
	run -0 --separate-stderr qctl consume --until-empty --dlq "$Q.dead" --exec 'exit 65' "$Q"
	[[ "$stderr" == *"dead-lettered to stream '$Q.dead': poison (exit 65)"* ]]
	assert_equal "$(rcli XLEN "$K.dead")" 1
	assert_equal "$(rcli XLEN "$K")" 0
}

@test "stream: a dead consumer's entries are claimed after --visibility-timeout, not before" {
	group "$K"
	peer produce "$CQ_REDIS_URL" "$K" 3
	# "dead" read two and never acked them
	rcli XREADGROUP GROUP qctl dead COUNT 2 STREAMS "$K" '>' >/dev/null
	run -0 --separate-stderr qctl consume --visibility-timeout 1h --idle-timeout 1s "$Q"
	assert_output "msg-3"
	assert_equal "$(pending)" 2
	sleep 1
	run -0 --separate-stderr qctl consume --visibility-timeout 500ms --idle-timeout 1s --jsonl "$Q"
	assert_equal "$(jq -r '"\(.body) \(.headers."x-delivery-count") \(.redelivered)"' <<<"$output" | paste -sd'|')" \
		"msg-1 2 true|msg-2 2 true"
	assert_equal "$(pending)" 0
	# the dead one, robbed of all it held, has left the group
	assert_equal "$(group_field consumers)" 0
}

@test "stream: --visibility-timeout 0 is a usage error: nothing read, no consumer joined, no timeout recorded" {
	local v
	group "$K"
	rcli XADD "$K" '*' body m >/dev/null
	for v in 0 0s 0ms; do
		run -64 --separate-stderr qctl consume --visibility-timeout "$v" --until-empty "$Q"
		assert_output ""
		assert_equal "$stderr" "qctl: consume: --visibility-timeout must be positive
Try 'qctl consume --help'."
	done
	assert_equal "$(group_field last-delivered-id)" 0-0
	assert_equal "$(group_field consumers)" 0
	run -0 rcli EXISTS "$P{$K}|cq:vis:qctl"
	assert_output 0
	# --help says what to give instead
	run -0 qctl consume --help
	assert_output --partial "(default 5m; more"
}

@test "stream: a live consumer keeps entries its handler holds past the visibility timeout" {
	group "$K"
	rcli XADD "$K" '*' body slow >/dev/null
	qctl consume --visibility-timeout 600ms --count 1 --exec 'sleep 2.5; cat >"$TMP/slow"' "$Q" 2>"$TMP/a.err" &
	BGPID=$!
	wait_for 5 pending_is 1
	# another consumer, looking for idle entries all the while
	run -1 --separate-stderr qctl consume --visibility-timeout 600ms --idle-timeout 2s --exec 'cat >>"$TMP/stolen"' "$Q"
	wait "$BGPID"
	BGPID=
	[ ! -e "$TMP/stolen" ]
	assert_equal "$(cat "$TMP/slow")" slow
	assert_equal "$(pending)" 0
}

@test "stream: a consumer with a shorter --visibility-timeout never takes what a live one with a longer timeout holds" {
	local vis="$P{$K}|cq:vis:qctl"
	group "$K"
	rcli XADD "$K" '*' body slow >/dev/null
	# renews every 2 s (a third of its timeout): its entry sits idle up
	# to 2 s between renewals, far past the other's 600 ms
	qctl consume --consumer long --visibility-timeout 6s --count 1 \
		--exec 'sleep 2.5; cat >"$TMP/slow"' "$Q" 2>"$TMP/a.err" &
	BGPID=$!
	wait_for 5 pending_is 1
	# each records its timeout; claims wait for the longest recorded
	assert_equal "$(rcli HGET "$vis" long)" 6000
	run -1 --separate-stderr qctl consume --consumer short --visibility-timeout 600ms \
		--idle-timeout 2s --exec 'cat >>"$TMP/stolen"' "$Q"
	wait "$BGPID"
	BGPID=
	cat "$TMP/a.err"
	[ ! -e "$TMP/stolen" ]
	assert_equal "$(cat "$TMP/slow")" slow
	assert_equal "$(pending)" 0
	# both left cleanly: no record stays
	run -0 rcli EXISTS "$vis"
	assert_output 0
}

@test "stream: --dedupe works on the stream's own Redis connection" {
	group "$K"
	peer produce "$CQ_REDIS_URL" "$K" 3
	run -0 --separate-stderr qctl consume --until-empty --dedupe --exec 'cat >>"$TMP/got"; echo >>"$TMP/got"' "$Q"
	assert_equal "$(cat "$TMP/got" | paste -sd' ')" "msg-1 msg-2 msg-3"
	assert_equal "$(pending)" 0
	assert_equal "$(rcli --scan --pattern "${P}qctl:done:*" | wc -l)" 3
}

@test "stream: a consumer reads its own pending entries first when it comes back under its name" {
	group "$K"
	peer produce "$CQ_REDIS_URL" "$K" 3
	rcli XREADGROUP GROUP qctl w1 COUNT 1 STREAMS "$K" '>' >/dev/null
	run -0 --separate-stderr qctl consume --consumer w1 --visibility-timeout 1h --until-empty --jsonl "$Q"
	assert_equal "$(jq -r '"\(.body) \(.headers."x-delivery-count")"' <<<"$output" | paste -sd'|')" \
		"msg-1 2|msg-2 1|msg-3 1"
	assert_equal "$(pending)" 0
}

# ---- interop -------------------------------------------------------------------------

@test "stream: an ioredis group consumer reads what qctl leaves to its own group" {
	group "$K"
	group "$K" app
	peer produce "$CQ_REDIS_URL" "$K" 4
	qctl consume --until-empty "$Q" >/dev/null 2>&1
	run -0 --separate-stderr peer consume "$CQ_REDIS_URL" "$K" app 4
	assert_output "$(printf 'msg-%s\n' 1 2 3 4)"
	assert_equal "$(pending app)" 0
}

@test "stream: an ioredis group consumer reads what qctl enqueue XADDed, headers as fields" {
	qctl declare -q "$Q"
	group "$K" app
	printf 'one\ntwo\n' | qctl enqueue -q -H trace=t9 "$Q"
	run -0 --separate-stderr peer consume "$CQ_REDIS_URL" "$K" app 2
	assert_output "$(printf 'one\ntwo')"
	assert_equal "$(rcli XRANGE "$K" - + COUNT 1 | sed 1d | paste -sd' ')" "body one trace t9"
	run -1 --separate-stderr qctl enqueue "$Q.none" x
	assert_equal "$stderr" "qctl: enqueue: queue '$Q.none' does not exist (create it with: qctl declare --backend stream $Q.none)"
}

# ---- bad input -----------------------------------------------------------------------

@test "stream: enqueue refuses what an entry cannot keep: a header named as the body field, an id, a priority; the lines after are written" {
	group "$K"
	printf '%s\n' '{"body":"x","headers":{"body":"y"}}' '{"body":"ok","headers":{"a":"1"}}' >"$TMP/in"
	# XADD took 'body x body y': other readers saw 'y' as the body
	run -75 --separate-stderr qctl enqueue --jsonl "$Q" <"$TMP/in"
	assert_equal "${stderr_lines[0]}" "qctl: enqueue: line 1: header 'body' is the name of the stream's body field"
	[[ "${stderr_lines[-1]}" == "enqueued 1 message in "*"(1 failed, 1 malformed)" ]]
	run -75 --separate-stderr qctl enqueue -H body=z "$Q" m
	assert_equal "${stderr_lines[0]}" "qctl: enqueue: argument 1: header 'body' is the name of the stream's body field"
	# what an entry has no place for: an option is 64 up front, a record's
	# own is its line's error (each was dropped without a word)
	run -64 --separate-stderr qctl enqueue --priority 3 "$Q" m
	assert_equal "${stderr_lines[0]}" "qctl: enqueue: --priority: not supported by the stream backend"
	run -64 --separate-stderr qctl enqueue --message-id m1 "$Q" m
	assert_equal "${stderr_lines[0]}" "qctl: enqueue: --message-id: not supported by the stream backend"
	run -75 --separate-stderr qctl enqueue --jsonl "$Q" <<<'{"body":"x","expiration":"5s"}'
	assert_equal "${stderr_lines[0]}" "qctl: enqueue: line 1: expiration: not kept by the stream backend (an entry holds the body and headers only)"
	assert_equal "$(rcli XLEN "$K")" 1
	assert_equal "$(rcli XRANGE "$K" - + | tail -n 4 | tr '\n' ' ')" "body ok a 1 "
}

@test "stream: a stream without the group, a missing stream, a key of another type" {
	rcli XADD "$K" '*' body x >/dev/null
	run -1 --separate-stderr qctl consume --until-empty "$Q"
	assert_equal "$stderr" "qctl: consume: stream '$Q' has no consumer group 'qctl' (create it with: qctl declare --backend stream $Q)"
	run -1 --separate-stderr qctl consume --group 'my group' "$Q"
	assert_equal "$stderr" "qctl: consume: stream '$Q' has no consumer group 'my group' (create it with: qctl declare --backend stream --group 'my group' $Q)"
	run -1 --separate-stderr qctl consume --until-empty "$Q.none"
	assert_equal "$stderr" "qctl: consume: stream '$Q.none' does not exist (create it with: qctl declare --backend stream $Q.none)"
	rcli RPUSH "$K.list" a >/dev/null
	for verb in "consume --until-empty" "peek" "stats" "purge --yes" "declare"; do
		run -65 --separate-stderr qctl $verb "$Q.list"
		assert_equal "$stderr" "qctl: ${verb%% *}: key '$Q.list' holds a list, not a stream"
	done
	assert_equal "$(rcli LLEN "$K.list")" 1
}

@test "stream: the dead-letter stream being a key of another type leaves the entry pending" {
	group "$K"
	rcli XADD "$K" '*' body d >/dev/null
	rcli SET "$K.dlq" x >/dev/null
	run -75 --separate-stderr qctl consume --until-empty --exec 'exit 65' "$Q"
	[[ "$stderr" == *"cannot dead-letter a message: "*"WRONGTYPE"*"(it stays in '$Q')"* ]]
	assert_equal "$(pending)" 1
	assert_equal "$(rcli XLEN "$K")" 1
}

# ---- the other verbs -------------------------------------------------------------------

@test "stream: declare creates the stream and its group from the first entry, idempotent" {
	rcli XADD "$K" '*' body early >/dev/null
	run -0 --separate-stderr qctl declare "$Q"
	assert_equal "$stderr" "declared '$Q' (1 message, 0 consumers)"
	run -0 --separate-stderr qctl declare --dlq "$Q"
	assert_equal "$stderr" "declared '$Q' (1 message, 0 consumers), dead letters to '$Q.dlq'"
	run -0 --separate-stderr qctl declare --group other --json "$Q.new"
	assert_equal "$output" "{\"queue\":\"$Q.new\",\"messages\":0,\"consumers\":0}"
	assert_equal "$(rcli XINFO GROUPS "$K" | awk 'prev == "name" { print } { prev = $0 }')" qctl
	assert_equal "$(rcli TYPE "$K.dlq")" stream
	assert_equal "$(rcli XINFO GROUPS "$K.new" | awk 'prev == "name" { print } { prev = $0 }')" other
	# what was there before the group is delivered
	run -0 --separate-stderr qctl consume --until-empty "$Q"
	assert_output early
	run -64 --separate-stderr qctl declare --quorum "$Q"
	assert_equal "$stderr" "qctl: declare: --quorum: not supported by the stream backend"
}

@test "stream: enqueue --exchange is a usage error that names the verb once" {
	qctl declare -q "$Q"
	run -64 --separate-stderr qctl enqueue --exchange x "$Q" m
	assert_equal "$stderr" "qctl: enqueue: --exchange: not supported by the stream backend"
	assert_equal "$(rcli XLEN "$K")" 0
}

@test "stream: stats shows length, ready (the group's lag), pending, consumers, dead letters and the oldest pending idle time" {
	qctl declare -q --dlq "$Q"
	peer produce "$CQ_REDIS_URL" "$K" 5
	rcli XREADGROUP GROUP qctl w COUNT 2 STREAMS "$K" '>' >/dev/null
	rcli XADD "$K.dlq" '*' body dead >/dev/null
	sleep 1
	run -0 --separate-stderr qctl stats --json "$Q"
	assert_equal "$(jq -c '.queues[0] | [.found, .ready, .unacked, .consumers, .length, .dlq, .dlq_queue]' <<<"$output")" \
		"[true,3,2,1,5,1,\"$Q.dlq\"]"
	[ "$(jq '.queues[0].pending_idle_s >= 1' <<<"$output")" = true ]
	run -1 --separate-stderr qctl stats "$Q.none"
	assert_equal "$stderr" "qctl: stats: no queue '$Q.none'"
}

@test "stream: peek shows the ready entries and takes nothing; on a dead-letter stream, the reason" {
	qctl declare -q "$Q"
	peer produce "$CQ_REDIS_URL" "$K" 3 trace t
	rcli XREADGROUP GROUP qctl w COUNT 1 STREAMS "$K" '>' >/dev/null
	run -0 --separate-stderr qctl peek --json "$Q"
	assert_equal "$(jq -r '"\(.body) \(.headers.trace)"' <<<"$output" | paste -sd'|')" "msg-2 t|msg-3 t"
	assert_equal "$stderr" ""
	assert_equal "$(pending)" 1
	assert_equal "$(group_field entries-read)" 1
	qctl consume -q --until-empty --max-retries 0 --exec 'echo "it broke" >&2; exit 4' "$Q" 2>/dev/null
	run -0 --separate-stderr qctl peek "$Q.dlq"
	[[ "$output" == *"died: exit 4"*"queue '$Q'"*"retries 1, exit code 4"*"stderr: it broke"*"body: msg-2"* ]]
}

@test "stream: purge --yes removes the entries not yet delivered, and keeps the pending ones" {
	qctl declare -q "$Q"
	peer produce "$CQ_REDIS_URL" "$K" 2500
	rcli XREADGROUP GROUP qctl w COUNT 3 STREAMS "$K" '>' >/dev/null
	run -0 --separate-stderr qctl purge --yes "$Q"
	assert_output "purged 2497 messages from '$Q'"
	assert_equal "$(rcli XLEN "$K")" 3
	assert_equal "$(pending)" 3
	# Redis's lag still counts the purged entries: ready does not, and
	# --until-empty ends
	run -0 --separate-stderr qctl stats --json "$Q"
	assert_equal "$(jq -c '.queues[0] | [.ready, .unacked, .length]' <<<"$output")" "[0,3,3]"
	run -1 --separate-stderr timeout 10 qctl consume --until-empty --visibility-timeout 1h "$Q"
	assert_equal "$stderr" "qctl: consume: queue '$Q' is empty"
	run -1 --separate-stderr qctl purge --yes --group none "$Q"
	[[ "$stderr" == *"has no consumer group 'none'"* ]]
}

@test "stream: purge under a running producer prints exactly what it deleted" {
	local n=5000 purged
	qctl declare -q "$Q"
	rcli -r "$n" XADD "$K" '*' body m >/dev/null &
	BGPID=$!
	purge_while_producing "$Q"
	assert_equal "$(rcli XLEN "$K")" 0
	assert_equal "$purged" "$n"
}

@test "stream: enqueue --maxlen trims the stream and warns of the entries a group had not read" {
	qctl declare -q "$Q"
	group "$K" app
	qctl enqueue -q "$Q" a b
	qctl consume -q --count 2 "$Q" >/dev/null
	run -0 --separate-stderr qctl enqueue --maxlen 3 "$Q" c d e f
	assert_equal "$(rcli XLEN "$K")" 3
	assert_equal "$(rcli XRANGE "$K" - + | awk 'p == "body" { print } { p = $0 }' | paste -sd' ')" "d e f"
	[[ "$stderr" == *"qctl: enqueue: warning: MAXLEN 3 trimmed 1 entry of stream '$Q' that group 'qctl' had not read"* ]]
	[[ "$stderr" == *"qctl: enqueue: warning: MAXLEN 3 trimmed 3 entries of stream '$Q' that group 'app' had not read"* ]]
	# nothing unread trimmed: no warning
	qctl consume -q --count 3 "$Q" >/dev/null
	run -0 --separate-stderr qctl enqueue --maxlen 3 --group app "$Q" g
	[[ "$stderr" == *"group 'app' had not read"* ]]
	[[ "$stderr" != *"group 'qctl'"* ]]
	run -64 --separate-stderr qctl enqueue --backend amqp --maxlen 3 "$Q" x
	assert_equal "${stderr%%$'\n'*}" "qctl: enqueue: --maxlen is for the stream backend (--backend stream)"
}

@test "stream: replay-dlq moves dead letters back with their fields, the body to the field it came from" {
	qctl declare -q "$Q"
	rcli XADD "$K" '*' body b1 trace t1 >/dev/null
	rcli XADD "$K" '*' data only >/dev/null
	rcli XADD "$K" '*' a 1 b 2 >/dev/null
	qctl consume -q --until-empty --exec 'exit 65' "$Q" 2>/dev/null
	assert_equal "$(rcli XLEN "$K.dlq")" 3
	run -0 --separate-stderr qctl replay-dlq --dry-run "$Q.dlq"
	assert_equal "$(rcli XLEN "$K.dlq")" 3
	run -0 --separate-stderr qctl replay-dlq --filter 'body:only' "$Q.dlq"
	[[ "$stderr" == *"replayed 1 to '$Q'"* ]]
	run -0 --separate-stderr qctl replay-dlq "$Q.dlq"
	[[ "$stderr" == *"replayed 2 to '$Q'"* ]]
	assert_equal "$(rcli XLEN "$K.dlq")" 0
	assert_equal "$(rcli XLEN "$K")" 3
	# the apps' own fields as they were (and qctl's beside them)
	run -0 rcli XRANGE "$K" - +
	[[ "$(paste -sd' ' <<<"$output")" == *" data only x-cq-death-reason "*" body b1 trace t1 x-cq-death-reason "*" a 1 b 2 x-cq-death-reason "* ]]
	[[ "$output" != *"x-cq-body-field"* ]]
	run -0 --separate-stderr qctl consume --until-empty "$Q"
	assert_output "$(printf 'only\nb1\n{"a":"1","b":"2"}')"
}

@test "stream: enqueue --maxlen whose closing look at the groups times out exits 75 and frees what it read" {
	qctl declare -q "$Q"
	mkfifo "$TMP/in"
	qctl enqueue --maxlen 5 --timeout 1s "$Q" <"$TMP/in" 2>"$TMP/err" &
	local pid=$! status=0
	exec 7>"$TMP/in"
	echo a >&7
	xlen_is() { [ "$(rcli XLEN "$K")" = "$1" ]; }
	wait_for 10 xlen_is 1
	# reads go on, scripts wait: the groups are listed, their unread
	# entries are not counted (ASan: what was listed must be freed)
	rcli CLIENT PAUSE 10000 WRITE >/dev/null
	exec 7>&-
	wait "$pid" || status=$?
	rcli CLIENT UNPAUSE >/dev/null
	cat "$TMP/err"
	assert_equal "$status" 75
	grep -q "timed out" "$TMP/err"
}

@test "stream: enqueue names the lines Redis refuses, and why, and exits 75" {
	# the reason is Redis's, as for a list, not a bare "refused by Redis"
	priv_redis_full
	pcli XGROUP CREATE "$K" qctl 0 MKSTREAM >/dev/null
	enqueue_to_full_redis XLEN "$K"
}

@test "stream: replay-dlq to a stream that does not exist leaves the dead letters, creates nothing and exits 75" {
	qctl declare -q "$Q"
	qctl enqueue -q "$Q" a b
	qctl consume -q --until-empty --max-retries 0 -e 'exit 65' "$Q" 2>/dev/null
	assert_equal "$(rcli XLEN "$K.dlq")" 2
	run -75 --separate-stderr qctl replay-dlq --to "$Q.gone" "$Q.dlq"
	[[ "$stderr" == *"replayed 0 to '$Q.gone' (0 skipped, 2 failed)"* ]]
	assert_equal "$(rcli XLEN "$K.dlq")" 2
	assert_equal "$(rcli EXISTS "$K.gone")" 0
	# its original stream deleted: the same
	rcli DEL "$K" >/dev/null
	run -75 --separate-stderr qctl replay-dlq "$Q.dlq"
	assert_equal "$(rcli XLEN "$K.dlq")" 2
	assert_equal "$(rcli EXISTS "$K")" 0
}

@test "stream: --dlq naming the queue itself is a usage error" {
	qctl declare -q "$Q"
	qctl enqueue -q "$Q" m
	run -64 --separate-stderr timeout -s KILL 20 qctl consume --dlq "$Q" -e 'exit 65' --until-empty "$Q"
	assert_equal "$stderr" "qctl: consume: --dlq: '$Q' is the queue itself"
	assert_equal "$(rcli XLEN "$K")" 1
	assert_equal "$(pending)" 0
}
