#!/usr/bin/env bats
# qctl on Redis list queues (issue 12 §2, --backend list): consume moves
# each message into a processing list of its own under a lease before the
# handler sees it, LREMs it once done, keeps retry counts and reasons in a
# side hash, never takes what a live consumer holds, and interoperates with
# apps that LPUSH / RPOPLPUSH + LREM (bench/peers/ioredis-list-*.js).
# Everything is counted with redis-cli, never with qctl.

bats_require_minimum_version 1.5.0
load test_helper

export CQ_QUEUE_BACKEND=list

per_test_setup() {
	# plain key names: the queue is the key $Q (one test checks --prefix)
	unset CQ_PREFIX
	META="{$Q}|cq:meta"
	DLQ="$Q.dlq"
	DLQ_META="{$Q.dlq}|cq:meta"
}

node_peer() {
	NODE_PATH="$TOP/bench/node_modules" node "$TOP/bench/peers/$1" "${@:2}"
}

# Every key of this test, sorted.
test_keys() { rcli --scan --pattern "*$Q*" | sort; }

# The processing lists of this test's consumers (the registry).
proc_lists() { rcli SMEMBERS "{$Q}|cq:consumers"; }

# File $1 has $2 lines.
has_lines() { [ "$(cat "$1" 2>/dev/null | wc -l)" = "$2" ]; }

# Start a consumer in the background that holds $1 messages in handlers
# that sleep; waits until all $1 run.  BGPID is its pid.
hold_in_handlers() {
	local n=$1
	shift
	qctl consume -j "$n" -e 'echo $$ >>"$TMP/handlers"; cat >>"$TMP/held"; echo >>"$TMP/held"; sleep 30' \
		"$@" "$Q" 2>"$TMP/holder.err" &
	BGPID=$!
	wait_for 10 has_lines "$TMP/handlers" "$n"
}

per_test_teardown() { kill_consumer_and_handlers; }

# ---- printing -------------------------------------------------------------------

@test "list: consume prints oldest first, acks with LREM, and leaves no key behind" {
	rcli LPUSH "$Q" one two three >/dev/null
	run -0 --separate-stderr qctl consume --until-empty "$Q"
	assert_output "$(printf 'one\ntwo\nthree')"
	[[ "$stderr" == "qctl: consume: consumed 3 messages in "*"s (3 acked, 0 retried, 0 dead-lettered)" ]]
	# acked: no queue, no processing list, no lease, no registry entry
	run -0 test_keys
	assert_output ""
}

@test "list: an empty or missing list exits 1 with --until-empty" {
	run -1 --separate-stderr qctl consume --until-empty "$Q"
	assert_equal "$stderr" "qctl: consume: queue '$Q' is empty"
}

@test "list: bodies stay raw bytes: binary, empty and NUL-holding, with -0 and --jsonl" {
	printf 'a\0b\xff\xfe' | rcli -x LPUSH "$Q" >/dev/null
	rcli LPUSH "$Q" "" "plain" >/dev/null
	qctl consume -q -0 --until-empty "$Q" >"$TMP/out"
	printf 'a\0b\xff\xfe\0\0plain\0' >"$TMP/want"
	cmp "$TMP/want" "$TMP/out"
	printf 'a\0b\xff' | rcli -x LPUSH "$Q" >/dev/null
	rcli LPUSH "$Q" "" >/dev/null
	run -0 --separate-stderr qctl consume -q --jsonl --until-empty "$Q"
	jq -e '.body_base64 == "YQBi/w==" and .queue == "'"$Q"'"' <<<"${lines[0]}"
	jq -e '.body == "" and .size == 0' <<<"${lines[1]}"
}

@test "list: a 50 MB body goes through whole" {
	head -c 50000000 /dev/urandom >"$TMP/big"
	rcli -x LPUSH "$Q" <"$TMP/big" >/dev/null
	rcli LPUSH "$Q" after >/dev/null
	qctl consume -q -0 --until-empty "$Q" >"$TMP/out"
	{ cat "$TMP/big"; printf '\0after\0'; } | cmp - "$TMP/out"
	run -0 rcli EXISTS "$Q"
	assert_output 0
}

@test "list: a reader that goes away: consume and peek exit 74 silently; what was not written is back in the queue, nothing held" {
	seq 1 20000 | qctl enqueue -q "$Q"
	run -0 --separate-stderr bash -c 'qctl peek -n 5000 "$1" | head -n 1 >/dev/null; echo "${PIPESTATUS[0]}"' _ "$Q"
	assert_output 74
	assert_equal "$stderr" ""
	assert_equal "$(rcli LLEN "$Q")" 20000
	run -0 --separate-stderr bash -c 'qctl consume "$1" | head -n 1 >/dev/null; echo "${PIPESTATUS[0]}"' _ "$Q"
	assert_output 74
	assert_equal "$stderr" ""
	n=$(rcli LLEN "$Q")
	((n > 0 && n < 20000))
	# acked only what went down the pipe: the rest is in the queue, in
	# order, and no processing list or lease is left
	assert_equal "$(rcli LINDEX "$Q" 0)" 20000
	assert_equal "$(rcli LINDEX "$Q" -1)" $((20000 - n + 1))
	run -0 proc_lists
	assert_output ""
}

@test "list: --count N takes N and gives back what it took beyond them" {
	rcli LPUSH "$Q" 1 2 3 4 5 >/dev/null
	run -0 --separate-stderr qctl consume --count 2 "$Q"
	assert_output "$(printf '1\n2')"
	# the rest is in the queue, oldest next, and no processing list is left
	run -0 rcli LRANGE "$Q" 0 -1
	assert_output "$(printf '5\n4\n3')"
	run -0 proc_lists
	assert_output ""
}

@test "list: a key of the wrong type exits 65 naming it" {
	rcli HSET "$Q" f v >/dev/null
	run -65 --separate-stderr qctl consume --until-empty "$Q"
	assert_equal "$stderr" "qctl: consume: queue '$Q' is a Redis hash, not a list"
	rcli DEL "$Q" >/dev/null
	rcli LPUSH "$Q" m >/dev/null
	rcli SET "$DLQ" x >/dev/null
	run -65 --separate-stderr qctl consume -e true --until-empty "$Q"
	assert_equal "$stderr" "qctl: consume: dead-letter list '$DLQ' is a Redis string, not a list"
	rcli SET "$Q:work" x >/dev/null
	run -65 --separate-stderr qctl consume --processing-list "$Q:work" --until-empty "$Q"
	assert_equal "$stderr" "qctl: consume: processing list '$Q:work' is a Redis string, not a list"
	# nothing was taken
	run -0 rcli LRANGE "$Q" 0 -1
	assert_output m
}

@test "list: keys checked together (one round trip) name the first wrong one, in the order they were checked one by one" {
	rcli SET "$Q" x >/dev/null
	rcli SET "$META" x >/dev/null
	rcli SET "{$Q}|cq:consumers" x >/dev/null
	run -65 --separate-stderr qctl consume --until-empty "$Q"
	assert_equal "$stderr" "qctl: consume: queue '$Q' is a Redis string, not a list"
	run -65 --separate-stderr qctl peek "$Q"
	assert_equal "$stderr" "qctl: peek: queue '$Q' is a Redis string, not a list"
	rcli DEL "$Q" >/dev/null
	run -65 --separate-stderr qctl consume --until-empty "$Q"
	assert_equal "$stderr" "qctl: consume: record hash '$META' is a Redis string, not a hash"
	rcli DEL "$META" "{$Q}|cq:consumers" >/dev/null
	rcli LPUSH "$Q" m >/dev/null
	rcli SET "$Q:work" x >/dev/null
	rcli SET "$DLQ" x >/dev/null
	rcli SET "$DLQ_META" x >/dev/null
	run -65 --separate-stderr qctl consume -e true --processing-list "$Q:work" --until-empty "$Q"
	assert_equal "$stderr" "qctl: consume: processing list '$Q:work' is a Redis string, not a list"
	rcli DEL "$Q:work" >/dev/null
	run -65 --separate-stderr qctl consume -e true --until-empty "$Q"
	assert_equal "$stderr" "qctl: consume: dead-letter list '$DLQ' is a Redis string, not a list"
	run -65 --separate-stderr qctl stats "$Q"
	assert_equal "$stderr" "qctl: stats: dead-letter list '$DLQ' is a Redis string, not a list"
	# nothing was taken
	run -0 rcli LRANGE "$Q" 0 -1
	assert_output m
}

@test "list: a key beside the queue of another type is named, exit 65, before anything is taken or removed" {
	rcli LPUSH "$Q" a b c >/dev/null
	rcli SET "$META" x >/dev/null
	# purge's script popped a message, then its HDEL was refused: 'a' gone
	run -65 --separate-stderr qctl purge --yes "$Q"
	assert_equal "$stderr" "qctl: purge: record hash '$META' is a Redis string, not a hash"
	run -65 --separate-stderr qctl consume --until-empty "$Q"
	assert_equal "$stderr" "qctl: consume: record hash '$META' is a Redis string, not a hash"
	run -65 --separate-stderr qctl peek "$Q"
	assert_equal "$stderr" "qctl: peek: record hash '$META' is a Redis string, not a hash"
	rcli DEL "$META" >/dev/null
	rcli SET "{$Q}|cq:consumers" x >/dev/null
	run -65 --separate-stderr qctl stats "$Q"
	assert_equal "$stderr" "qctl: stats: consumer registry '{$Q}|cq:consumers' is a Redis string, not a set"
	run -65 --separate-stderr qctl consume --until-empty "$Q"
	assert_equal "$stderr" "qctl: consume: consumer registry '{$Q}|cq:consumers' is a Redis string, not a set"
	rcli DEL "{$Q}|cq:consumers" >/dev/null
	rcli SET "$DLQ_META" x >/dev/null
	run -65 --separate-stderr qctl consume -e true --until-empty "$Q"
	assert_equal "$stderr" "qctl: consume: dead-letter list's record hash '$DLQ_META' is a Redis string, not a hash"
	# every message where it was, nothing held
	run -0 rcli LRANGE "$Q" 0 -1
	assert_output "$(printf 'c\nb\na')"
	run -0 rcli --scan --pattern "{$Q}|cq:processing*"
	assert_output ""
}

@test "list: --prefix applies to the queue and the keys beside it" {
	export CQ_PREFIX="p:$Q:"
	rcli LPUSH "p:$Q:$Q" x >/dev/null
	run -0 --separate-stderr qctl consume -e 'exit 65' --until-empty "$Q"
	run -0 rcli LRANGE "p:$Q:$Q.dlq" 0 -1
	assert_output x
	run -0 rcli HLEN "p:$Q:{p:$Q:$Q.dlq}|cq:meta"
	assert_output 1
}

@test "list: a message pushed while consume waits arrives at once, also with --dedupe sharing the connection" {
	(sleep 0.4; rcli LPUSH "$Q" late >/dev/null) &
	run -0 --separate-stderr qctl consume --dedupe --idle-timeout 1s "$Q"
	assert_output late
	[[ "$stderr" == *"(1 acked, 0 retried, 0 dead-lettered, 0 skipped)" ]]
	run -0 test_keys
	assert_output ""
}

# ---- handlers, retries, dead letters ------------------------------------------------

@test "list: a failing handler is retried with its count beside the list, then dead-lettered with the reason" {
	rcli LPUSH "$Q" job >/dev/null
	run -0 --separate-stderr qctl consume --max-retries 2 --until-empty \
		-e 'echo "try $CQ_RETRIES" >>"$TMP/tries"; echo "disk full" >&2; exit 3' "$Q"
	[[ "$stderr" == *"(0 acked, 2 retried, 1 dead-lettered)" ]]
	# an app's message has no id: the start of its body names it
	[[ "$stderr" == *"qctl: consume: message with no id ('job') failed (exit 3): retry 1 of 2"* ]]
	[[ "$stderr" == *"qctl: consume: message with no id ('job') dead-lettered to list '$DLQ': exit 3"* ]]
	assert_equal "$(cat "$TMP/tries")" "$(printf 'try 0\ntry 1\ntry 2')"
	# the body as it was, in Q.dlq; the record in the DLQ's side hash
	run -0 rcli LRANGE "$DLQ" 0 -1
	assert_output job
	run -0 rcli HGET "$DLQ_META" "$(printf job | sha1sum | cut -d' ' -f1)"
	jq -e --arg q "$Q" --arg h "$(hostname)" '.retries == 3 and .code == 3 and .reason == "exit 3"
		and .stderr == "disk full" and .origin == $q and .host == $h
		and (.time - now | fabs) < 60' <<<"$output"
	# the queue's own record went with it; no processing list is left
	run -0 rcli EXISTS "$Q" "$META"
	assert_output 0
	run -0 proc_lists
	assert_output ""
}

@test "list: a handler's stderr holding a NUL byte keeps the retry count readable" {
	rcli LPUSH "$Q" job >/dev/null
	timeout 20 qctl consume --max-retries 2 --until-empty \
		-e "printf 'bad\\0bytes' >&2; exit 3" "$Q" 2>"$TMP/err"
	grep -aq "(0 acked, 2 retried, 1 dead-lettered)" "$TMP/err"
	run -0 rcli HGET "$DLQ_META" "$(printf job | sha1sum | cut -d' ' -f1)"
	jq -e '.retries == 3 and .stderr == "bad\u0000bytes"' <<<"$output"
}

@test "list: a retried message that then succeeds is acked and its record cleaned" {
	rcli LPUSH "$Q" job >/dev/null
	run -0 --separate-stderr qctl consume --until-empty \
		-e '[ "$CQ_RETRIES" = 1 ] && exit 0; exit 7' "$Q"
	[[ "$stderr" == *"(1 acked, 1 retried, 0 dead-lettered)" ]]
	run -0 test_keys
	assert_output ""
}

@test "list: a retried message shows its count and exit code in --jsonl" {
	rcli LPUSH "$Q" job >/dev/null
	run -0 --separate-stderr qctl consume --count 1 -e 'exit 9' "$Q"
	run -0 --separate-stderr qctl consume -q --jsonl --count 1 "$Q"
	jq -e '.headers["x-cq-retries"] == 1 and .headers["x-cq-exit-code"] == 9
		and .redelivered == true and .body == "job"' <<<"$output"
	# printing acked it: the record is gone too
	run -0 test_keys
	assert_output ""
}

@test "list: poison codes dead-letter at once to --dlq" {
	rcli LPUSH "$Q" bad >/dev/null
	run -0 --separate-stderr qctl consume --dlq "$Q.poison" --until-empty -e 'exit 65' "$Q"
	[[ "$stderr" == *"dead-lettered to list '$Q.poison': poison (exit 65)"* ]]
	run -0 rcli LRANGE "$Q.poison" 0 -1
	assert_output bad
	run -0 rcli HGET "{$Q.poison}|cq:meta" "$(printf bad | sha1sum | cut -d' ' -f1)"
	jq -e '.reason == "poison (exit 65)" and .retries == 1' <<<"$output"
}

# ---- leases: never take from a live consumer ------------------------------------------------

@test "list: a second consumer never takes what a live one holds, and --recover refuses it" {
	rcli LPUSH "$Q" 1 2 3 4 5 >/dev/null
	hold_in_handlers 2
	run -0 proc_lists
	local proc=$output
	run -0 rcli LRANGE "$proc" 0 -1
	assert_output "$(printf '2\n1')"
	# the other consumer gets the rest only
	run -0 --separate-stderr qctl consume --until-empty "$Q"
	assert_output "$(printf '3\n4\n5')"
	# asked to recover the live one's list: refused, 75, naming its owner
	run -75 --separate-stderr qctl consume --recover "$proc" --until-empty "$Q"
	[[ "$stderr" == "qctl: consume: --recover: processing list '$proc' belongs to a live consumer ($(hostname) pid $BGPID; its lease ends in "*"s unless renewed)" ]]
	run -0 rcli LLEN "$proc"
	assert_output 2
}

@test "list: a consumer killed on this host is known gone: its messages come back at once, oldest first" {
	rcli LPUSH "$Q" 1 2 3 >/dev/null
	hold_in_handlers 2 --lease 60s
	kill -9 "$BGPID"
	wait "$BGPID" 2>/dev/null || true
	BGPID=
	run -0 --separate-stderr qctl consume --until-empty "$Q"
	assert_output "$(printf '1\n2\n3')"
	[[ "$stderr" == *"recovered 2 messages of a consumer that is gone (its process ended)"* ]]
	run -0 test_keys
	assert_output ""
}

@test "list: another host's consumer keeps its messages until its lease expires" {
	local proc="{$Q}|cq:processing:elsewhere:42:abc"
	rcli LPUSH "$Q" 3 >/dev/null
	rcli LPUSH "$proc" 2 1 >/dev/null
	rcli SADD "{$Q}|cq:consumers" "$proc" >/dev/null
	rcli SET "$proc|cq:lease" "elsewhere 42 abc boot:1" PX 1500 >/dev/null
	run -0 --separate-stderr qctl consume --until-empty "$Q"
	assert_output 3
	run -75 --separate-stderr qctl consume --recover "$proc" --until-empty "$Q"
	[[ "$stderr" == "qctl: consume: --recover: processing list '$proc' belongs to a live consumer (elsewhere pid 42; its lease ends in "*"s unless renewed)" ]]
	sleep 1.6
	run -0 --separate-stderr qctl consume --until-empty "$Q"
	assert_output "$(printf '2\n1')"
	[[ "$stderr" == *"recovered 2 messages of a consumer whose lease expired (processing list '$proc') into '$Q'"* ]]
	run -0 test_keys
	assert_output ""
}

@test "list: --recover takes back at once the list of a consumer known gone (this host, its pid dead)" {
	rcli LPUSH "$Q" 1 2 >/dev/null
	hold_in_handlers 1 --lease 60s
	run -0 proc_lists
	local proc=$output
	kill -9 "$BGPID"
	wait "$BGPID" 2>/dev/null || true
	BGPID=
	run -0 --separate-stderr qctl consume --recover "$proc" --until-empty "$Q"
	assert_output "$(printf '1\n2')"
	[[ "$stderr" == *"recovered 1 message of processing list '$proc' into '$Q'"* ]]
	run -0 test_keys
	assert_output ""
}

@test "list: SIGTERM lets the handler finish, acks it, and gives the lease back" {
	rcli LPUSH "$Q" 1 2 >/dev/null
	qctl consume -e 'echo $$ >"$TMP/handler.pid"; sleep 0.5; cat >>"$TMP/done"' "$Q" 2>"$TMP/err" &
	BGPID=$!
	wait_for 10 test -s "$TMP/handler.pid"
	kill -TERM "$BGPID"
	wait "$BGPID"
	BGPID=
	assert_equal "$(cat "$TMP/done")" 1
	run -0 rcli LRANGE "$Q" 0 -1
	assert_output 2
	# only the queue is left: no processing list, lease or registry entry
	run -0 test_keys
	assert_output "$Q"
}

# ---- apps' reliable queues ------------------------------------------------------------------

@test "list: interop: qctl consumes what an ioredis producer LPUSHed, in order" {
	printf 'm%d\n' $(seq 1 300) | node_peer ioredis-list-producer.js "$CQ_REDIS_URL" "$Q"
	qctl consume -q --until-empty "$Q" >"$TMP/out"
	printf 'm%d\n' $(seq 1 300) | cmp - "$TMP/out"
}

@test "list: interop: an ioredis reliable worker consumes what was pushed the way qctl leaves it" {
	rcli LPUSH "$Q" a b c >/dev/null
	# a retry puts the body back raw: the app's worker reads it as it was
	qctl consume --count 1 -e 'exit 4' "$Q" 2>/dev/null
	run -0 --separate-stderr node_peer ioredis-list-worker.js "$CQ_REDIS_URL" "$Q" "$Q:processing"
	assert_output "$(printf 'b\nc\na')"
}

@test "list: --processing-list takes over an app's reliable queue, and --recover brings back what its dead worker held" {
	rcli LPUSH "$Q" a b c d >/dev/null
	# the app's worker dies holding 'b' in its processing list
	FAIL_ON=b run -3 node_peer ioredis-list-worker.js "$CQ_REDIS_URL" "$Q" "$Q:processing"
	assert_output a
	run -0 rcli LRANGE "$Q:processing" 0 -1
	assert_output b
	run -0 --separate-stderr qctl consume --processing-list "$Q:processing" \
		--recover "$Q:processing" --until-empty "$Q"
	assert_output "$(printf 'b\nc\nd')"
	run -0 test_keys
	assert_output ""
}

@test "list: a named processing list has one live consumer at a time" {
	rcli LPUSH "$Q" 1 2 >/dev/null
	hold_in_handlers 1 --processing-list "$Q:work"
	run -75 --separate-stderr qctl consume --processing-list "$Q:work" --until-empty "$Q"
	[[ "$stderr" == "qctl: consume: processing list '$Q:work' belongs to a live consumer ($(hostname) pid $BGPID; its lease ends in "*"s unless renewed)" ]]
	run -0 rcli LRANGE "$Q" 0 -1
	assert_output 2
}

# ---- the other verbs ------------------------------------------------------------------------

@test "list: enqueue LPUSHes raw bodies (arguments, lines, -0), oldest consumed first" {
	run -0 --separate-stderr qctl enqueue "$Q" one two
	[[ "$stderr" == "qctl: enqueue: enqueued 2 messages in "*"s (0 failed)" || "$stderr" == "enqueued 2 messages in "* ]]
	printf 'three\nfour\n' | qctl enqueue -q "$Q"
	printf 'bin\0\xff\0' | qctl enqueue -q -0 "$Q"
	run -0 rcli LLEN "$Q"
	assert_output 6
	# the app's reliable worker reads what qctl pushed, as it was
	run -0 --separate-stderr node_peer ioredis-list-worker.js "$CQ_REDIS_URL" "$Q" "$Q:processing" 4
	assert_output "$(printf 'one\ntwo\nthree\nfour')"
	run -0 rcli --no-raw LRANGE "$Q" 0 -1
	assert_output "$(printf '1) "\\xff"\n2) "bin"')"
}

@test "list: enqueue refuses what a list cannot keep: an option is 64 before anything is sent, a record's id, priority or headers name its line" {
	local o
	for o in "-H a=1" "--message-id m1" "--priority 3" "--content-type text/plain" "--expiration 5s"; do
		# each was dropped without a word: only the body was pushed
		run -64 --separate-stderr qctl enqueue $o "$Q" m
		assert_equal "${stderr_lines[0]}" "qctl: enqueue: ${o%% *}: not supported by the list backend"
	done
	assert_equal "$(rcli EXISTS "$Q")" 0
	printf '%s\n' '{"body":"a","message_id":"i"}' '{"body":"b","headers":{"h":"1"}}' '{"body":"c"}' >"$TMP/in"
	run -75 --separate-stderr qctl enqueue --jsonl "$Q" <"$TMP/in"
	assert_equal "${stderr_lines[0]}" "qctl: enqueue: line 1: message_id: not kept by the list backend (a list holds the body only)"
	assert_equal "${stderr_lines[1]}" "qctl: enqueue: line 2: headers: not kept by the list backend (a list holds the body only)"
	run -0 rcli LRANGE "$Q" 0 -1
	assert_output c
}

@test "list: enqueue of 10000 lines is pipelined and every one lands" {
	seq 1 10000 | qctl enqueue -q "$Q"
	run -0 rcli LLEN "$Q"
	assert_output 10000
	run -0 rcli LINDEX "$Q" -1
	assert_output 1
}

@test "list: enqueue to a key of the wrong type exits 65 naming it, and writes nothing" {
	rcli SET "$Q" x >/dev/null
	run -65 --separate-stderr qctl enqueue "$Q" a
	assert_equal "$stderr" "qctl: enqueue: queue '$Q' is a Redis string, not a list"
	run -0 rcli GET "$Q"
	assert_output x
}

@test "list: enqueue names the lines not written when Redis refuses them, and exits 75" {
	priv_redis_full
	enqueue_to_full_redis LLEN "$Q"
}

@test "list: peek shows the oldest first without taking, with retry counts and reasons" {
	rcli LPUSH "$Q" a b c >/dev/null
	qctl consume --count 1 -e 'echo "bad input" >&2; exit 3' "$Q" 2>/dev/null
	run -0 --separate-stderr qctl peek "$Q"
	assert_line --index 0 "#1 id=- age=? size=1"
	assert_line --index 1 "   body: b"
	assert_line --index 4 "#3 id=- age=? size=1 redelivered"
	assert_line --index 5 "   retried: 1 failed attempt, exit code 3, host $(hostname)"
	assert_line --index 6 "   stderr: bad input"
	assert_line --index 7 "   body: a"
	assert_equal "$stderr" ""
	# nothing was taken
	run -0 rcli LRANGE "$Q" 0 -1
	assert_output "$(printf 'a\nc\nb')"
	run -0 --separate-stderr qctl peek -n 1 --json "$Q"
	jq -e '.body == "b" and .queue == "'"$Q"'"' <<<"$output"
	# a dead letter's story
	qctl consume --max-retries 0 --until-empty -e 'exit 4' "$Q" 2>/dev/null
	run -0 --separate-stderr qctl peek -n 1 "$DLQ"
	assert_line --index 1 --regexp "^   died: exit 4 \(count 1\), queue '$Q', [0-9]+s ago \[qctl\]$"
	run -1 --separate-stderr qctl peek "$Q"
	assert_equal "$stderr" "qctl: peek: queue '$Q' is empty"
}

@test "list: purge --yes removes the ready messages and their records, not what a consumer holds" {
	rcli LPUSH "$Q" a b c d >/dev/null
	qctl consume --count 1 -e 'exit 3' "$Q" 2>/dev/null
	hold_in_handlers 1
	run -0 --separate-stderr qctl purge --yes "$Q"
	assert_output "purged 3 messages from '$Q'"
	run -0 rcli EXISTS "$Q" "$META"
	assert_output 0
	# the one held is still in its consumer's processing list
	run -0 rcli LLEN "$(proc_lists)"
	assert_output 1
}

@test "list: purge under a running producer prints exactly what it deleted" {
	local n=5000 purged
	rcli -r "$n" LPUSH "$Q" m >/dev/null &
	BGPID=$!
	purge_while_producing "$Q"
	run -0 rcli EXISTS "$Q"
	assert_output 0
	assert_equal "$purged" "$n"
}

@test "list: stats gives ready, live consumers, dead letters and what consumers hold; declare checks the keys and refuses what a list has not" {
	rcli LPUSH "$Q" a b c >/dev/null
	rcli LPUSH "$DLQ" x >/dev/null
	hold_in_handlers 1
	run -0 --separate-stderr qctl stats "$Q"
	# unacked: what the consumers' processing lists hold
	assert_output "$(printf 'ready[%s]\t2\nconsumers[%s]\t1\ndlq[%s]\t1\nunacked[%s]\t1' "$Q" "$Q" "$Q" "$Q")"
	run -0 --separate-stderr qctl declare "$Q"
	run -64 --separate-stderr qctl declare --quorum "$Q"
	assert_equal "$stderr" "qctl: declare: --quorum: not supported by the list backend"
	rcli SET "$Q.other" x >/dev/null
	run -65 --separate-stderr qctl declare "$Q.other"
	assert_equal "$stderr" "qctl: declare: queue '$Q.other' is a Redis string, not a list"
}

@test "list: replay-dlq moves dead letters back in their order, bare, and cleans their records" {
	rcli LPUSH "$Q" a b c >/dev/null
	qctl consume --max-retries 1 --until-empty -e 'exit 3' "$Q" 2>/dev/null
	run -0 rcli LRANGE "$DLQ" 0 -1
	assert_output "$(printf 'c\nb\na')"
	run -0 rcli HLEN "$DLQ_META"
	assert_output 3
	run -0 --separate-stderr qctl replay-dlq "$DLQ"
	[[ "$stderr" == "qctl: replay-dlq: replayed 3 to '$Q' (0 skipped, 0 failed) in "* || "$stderr" == "replayed 3 to '$Q' (0 skipped, 0 failed) in "* ]]
	run -0 rcli LRANGE "$Q" 0 -1
	assert_output "$(printf 'c\nb\na')"
	# the records went with the dead letters; the copies start afresh
	run -0 rcli EXISTS "$DLQ" "$DLQ_META" "{$DLQ}|cq:consumers" "$META"
	assert_output 0
	run -0 --separate-stderr qctl consume -q --count 1 -e 'echo "$CQ_RETRIES" >"$TMP/seen"' "$Q"
	assert_equal "$(cat "$TMP/seen")" 0
}

@test "list: replay-dlq --dry-run, --count and --filter leave the rest where it was" {
	rcli LPUSH "$DLQ" m1 x2 m3 m4 >/dev/null
	run -0 --separate-stderr qctl replay-dlq --dry-run --to "$Q" "$DLQ"
	run -0 rcli LRANGE "$DLQ" 0 -1
	assert_output "$(printf 'm4\nm3\nx2\nm1')"
	# --count bounds the messages looked at (x2 is looked at, not moved)
	run -0 --separate-stderr qctl replay-dlq --to "$Q" --filter 'body:^m' --count 3 "$DLQ"
	run -0 rcli LRANGE "$Q" 0 -1
	assert_output "$(printf 'm3\nm1')"
	run -0 rcli LRANGE "$DLQ" 0 -1
	assert_output "$(printf 'm4\nx2')"
	run -0 rcli EXISTS "{$DLQ}|cq:consumers"
	assert_output 0
}

@test "list: replay-dlq --dry-run reads the dead letters where they are: the same lines in their order, the list and its records untouched, no key made" {
	rcli LPUSH "$Q" a b c d >/dev/null
	qctl consume --max-retries 1 --until-empty -e 'exit 3' "$Q" 2>/dev/null
	rcli LPUSH "$DLQ" raw >/dev/null
	before=$(rcli LRANGE "$DLQ" 0 -1; rcli HGETALL "$DLQ_META" | paste - - | sort)
	keys=$(test_keys)
	run -0 --separate-stderr qctl replay-dlq --dry-run --filter 'body:^(raw|b|c)$' "$DLQ"
	assert_output "$(printf "would move (no id) to '%s'\n" "$Q" "$Q" "$Q")"
	assert_equal "$stderr" "would replay 3 to '$Q' (2 skipped), nothing moved"
	# oldest first: a and d do not match
	run -0 --separate-stderr qctl replay-dlq --dry-run --json --filter 'body:^(raw|b|c)$' "$DLQ"
	skip='{"action":"skipped","message_id":null,"to":"'$Q'","reason":"does not match the filter"}'
	would='{"action":"would-move","message_id":null,"to":"'$Q'"}'
	assert_output "$(printf '%s\n' "$skip" "$would" "$would" "$skip" "$would")"
	assert_equal "$(rcli LRANGE "$DLQ" 0 -1; rcli HGETALL "$DLQ_META" | paste - - | sort)" "$before"
	assert_equal "$(test_keys)" "$keys"
}

@test "list: replay-dlq --dry-run takes nothing while it runs: the dead letters stay in the list for every reader (peek sees the oldest), no processing list" {
	seq 1 5000 | qctl enqueue -q "$DLQ"
	before=$(rcli LRANGE "$DLQ" 0 -1 | md5sum)
	# the reader stops reading after one line: the dry run waits for the
	# pipe mid-run (5,000 lines are more than it holds); the old dry run
	# had taken the first 1,000 into a processing list by then
	qctl replay-dlq --dry-run --to "$Q" "$DLQ" 2>"$TMP/err" | {
		read -r first
		echo "$first"
		rcli LLEN "$DLQ"
		rcli LINDEX "$DLQ" -1
		rcli --scan --pattern "{$DLQ}|cq:*"
		qctl peek --count 1 "$DLQ"	# another reader sees the oldest
		wc -l
	} >"$TMP/mid"
	assert_equal "$(cat "$TMP/mid")" "$(printf "would move (no id) to '%s'\n5000\n1\n#1 id=- age=? size=1\n   body: 1\n4999" "$Q")"
	assert_equal "$(cat "$TMP/err")" "would replay 5000 to '$Q' (0 skipped), nothing moved"
	assert_equal "$(rcli LRANGE "$DLQ" 0 -1 | md5sum)" "$before"
	assert_equal "$(test_keys)" "$DLQ"
}

@test "list: replay-dlq --dry-run skips none when a consumer takes the oldest meanwhile: each page goes on from the last one listed, where it is now" {
	seq 1 5000 | qctl enqueue -q "$DLQ"
	# the reader stops after one line: the dry run waits on the pipe
	# past its first page of 1,000; then the 1,000 oldest are taken
	qctl replay-dlq --dry-run --to "$Q" "$DLQ" 2>"$TMP/err" | {
		read -r _
		rcli RPOP "$DLQ" 1000 | wc -l >"$TMP/taken"
		wc -l
	} >"$TMP/rest"
	assert_equal "$(cat "$TMP/taken")" 1000
	# each of the 5,000 listed once (it read by position: 1,000 unread
	# ones were passed over, 'would replay 4000')
	assert_equal "$(cat "$TMP/err")" "would replay 5000 to '$Q' (0 skipped), nothing moved"
	assert_equal "$(cat "$TMP/rest")" 4999
	assert_equal "$(rcli LLEN "$DLQ")" 4000
}

@test "list: replay-dlq --filter leaves what does not match in the dead-letter list, in its order, over many batches" {
	seq 1 3000 | qctl enqueue -q "$DLQ"
	run -0 --separate-stderr qctl replay-dlq --to "$Q" --filter 'body:[02468]$' "$DLQ"
	[[ "$stderr" == "replayed 1500 to '$Q' (1500 skipped, 0 failed) in "* ]]
	assert_equal "$(rcli LRANGE "$DLQ" 0 -1)" "$(seq 2999 -2 1)"
	assert_equal "$(rcli LRANGE "$Q" 0 -1)" "$(seq 3000 -2 2)"
	assert_equal "$(test_keys)" "$(printf '%s\n' "$Q" "$DLQ" | sort)"
}

@test "list: replay-dlq --dry-run into a reader that goes away stops there: 74 without a word, every dead letter in place" {
	seq 1 20000 | qctl enqueue -q "$DLQ"
	# it went on through all 20,000 (15 s), then said 'would replay 20000'
	run -0 --separate-stderr bash -c 'qctl replay-dlq --dry-run --to "$1" "$2" | head -n 1 >/dev/null; echo "${PIPESTATUS[0]}"' _ "$Q" "$DLQ"
	assert_output 74
	assert_equal "$stderr" ""
	assert_equal "$(rcli LLEN "$DLQ")" 20000
	assert_equal "$(rcli LINDEX "$DLQ" -1)" 1
	run -0 rcli --scan --pattern "{$DLQ}|cq:processing*"
	assert_output ""
}

@test "list: replay-dlq moves every dead letter when they hold more bytes than one take brings" {
	# one take stops after 4 MB of bodies: that is not an empty list
	for i in 1 2 3 4 5 6 7 8; do
		{ printf '%s' "$i"; head -c 1000000 /dev/zero | tr '\0' x; } |
			rcli -x LPUSH "$DLQ" >/dev/null
	done
	run -0 --separate-stderr qctl replay-dlq --to "$Q" "$DLQ"
	[[ "$stderr" == *"replayed 8 to '$Q' (0 skipped, 0 failed) in "* ]]
	run -0 rcli LLEN "$Q"
	assert_output 8
	run -0 rcli EXISTS "$DLQ"
	assert_output 0
}

@test "list: a dead-letter list turned into another type while the handler ran leaves the message in the queue" {
	rcli LPUSH "$Q" m1 >/dev/null
	run --separate-stderr qctl consume --pass-env --until-empty \
		-e "redis-cli -u \"\$CQ_REDIS_URL\" SET '$DLQ' x >/dev/null; exit 65" "$Q"
	[ "$status" -ne 0 ]
	[[ "$stderr" == *"dead-letter list '$DLQ' is a Redis string, not a list"* ]]
	# the move is all or nothing: nothing left the processing list
	run -0 rcli LRANGE "$Q" 0 -1
	assert_output m1
	run -0 rcli GET "$DLQ"
	assert_output x
}

@test "list: --recover or --processing-list naming the queue itself is a usage error" {
	# --recover QUEUE moved the queue into itself, 1000 at a time, for
	# ever (SIGTERM unheard); --processing-list QUEUE handed each message
	# again and again
	seq 1 1000 | qctl enqueue -q "$Q"
	run -64 --separate-stderr timeout -s KILL 30 qctl consume --recover "$Q" --count 1 "$Q"
	assert_equal "$stderr" "qctl: consume: --recover: '$Q' is the queue itself"
	run -64 --separate-stderr timeout -s KILL 30 qctl consume --processing-list "$Q" --until-empty "$Q"
	assert_equal "$stderr" "qctl: consume: --processing-list: '$Q' is the queue itself"
	run -0 rcli LLEN "$Q"
	assert_output 1000
	run -0 rcli LINDEX "$Q" -1
	assert_output 1
}

@test "list: --dlq naming the queue itself is a usage error" {
	# each dead letter went back into the queue, to fail again for ever
	rcli LPUSH "$Q" m >/dev/null
	run -64 --separate-stderr timeout -s KILL 20 qctl consume --dlq "$Q" -e 'exit 65' --until-empty "$Q"
	assert_equal "$stderr" "qctl: consume: --dlq: '$Q' is the queue itself"
	run -0 rcli LRANGE "$Q" 0 -1
	assert_output m
}
