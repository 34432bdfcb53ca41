#!/usr/bin/env bats
# Bad input and bad output for every program (issue 7): huge values, 1 MB
# lines, invalid UTF-8, NUL bytes, empty input, a full disk (/dev/full)
# and a closed stdout.  Binary data comes back byte for byte; output that
# cannot be written is exit 74 with a clear message (a closed pipe: 74,
# silently), and a message that could not be printed is not acked.

bats_require_minimum_version 1.5.0
load test_helper

QUEUE_SUITE=1

declare_q() { qctl declare -q "$1"; }

# Every byte value, twice, with NULs and invalid UTF-8 among them.
all_bytes() {
	local i
	for i in 0 1; do
		printf "$(printf '\\%03o' $(seq 0 255))"
	done
}

@test "/dev/full as stdout: exit 74 and 'cannot write output' from every program" {
	cachectl set k v --ttl 1m
	declare_q "$Q"
	qctl enqueue -q "$Q" m1 m2
	local cmd
	while IFS= read -r cmd; do
		run --separate-stderr bash -c "$cmd >/dev/full"
		[ "$status" -eq 74 ] || { echo "$cmd: exit $status"; false; }
		local prog=${cmd%% *} rest=${cmd#* } verb
		verb=${rest%% *}
		[ "$prog" = cqstat ] && want="cqstat: cannot write output: No space left on device" ||
			want="$prog: $verb: cannot write output: No space left on device"
		[[ "$stderr" == *"$want"* ]] || { echo "$cmd: $stderr"; false; }
	done <<EOF2
cachectl get k
cachectl get --json k
cachectl stats
cachectl fetch f --ttl 1m -- echo computed
cachectl invalidate --dry-run --pattern '*'
qctl peek $Q
qctl consume $Q --count 1
qctl stats $Q
qctl declare $Q --json
cqstat -Q $Q
cqstat --json
EOF2
	# the consumed message was not printed, so it was not acked
	[ "$(ready "$Q")" -eq 2 ]
	# in --check mode a monitoring plugin that cannot write is UNKNOWN (3)
	run -3 --separate-stderr bash -c "cqstat --check 'hit_rate<0' >/dev/full"
	assert_equal "$stderr" "cqstat: cannot write output: No space left on device"
}

@test "a closed stdout: exit 74 'Bad file descriptor', and nothing goes down a server socket" {
	cachectl set k v --ttl 1m
	declare_q "$Q"
	qctl enqueue -q "$Q" m1
	# (bash -c: bats' run would give the command a pipe)
	run -74 --separate-stderr bash -c 'cachectl get k >&-'
	assert_equal "$stderr" "cachectl: get: cannot write output: Bad file descriptor"
	run -74 --separate-stderr bash -c 'qctl consume "$1" --count 1 >&-' _ "$Q"
	[[ "$stderr" == *"qctl: consume: cannot write output: Bad file descriptor"* ]]
	[ "$(ready "$Q")" -eq 1 ]
	run -74 --separate-stderr bash -c 'cqstat >&-'
	assert_equal "$stderr" "cqstat: cannot write output: Bad file descriptor"
	run -74 --separate-stderr bash -c 'cachectl stats >&-'
	assert_equal "$stderr" "cachectl: stats: cannot write output: Bad file descriptor"
	# stderr closed too: still the right exit code
	run -74 bash -c 'cachectl get k >&- 2>&-'
	# a closed stdin is an error, not empty input (nor a socket); an
	# empty stdin is an empty value (issue 13)
	run -74 --separate-stderr bash -c 'cachectl set e --ttl 1m <&-'
	assert_equal "$stderr" "cachectl: set: cannot read standard input: Bad file descriptor"
	run -0 rcli exists "${P}e"
	assert_output 0
	run -74 --separate-stderr bash -c 'cachectl warm -q --ttl 1m <&-'
	assert_equal "${stderr_lines[0]}" "cachectl: warm: cannot read the input: Bad file descriptor"
	run -0 bash -c 'cachectl set e --ttl 1m </dev/null'
	run -0 cachectl get e
	assert_output ''
	run -0 cachectl get k
	assert_output v
}

@test "a closed pipe: exit 74 without a message; consume acks only what it wrote" {
	head -c 1000000 /dev/urandom >"$TMP/big"
	cachectl set big --ttl 1m - <"$TMP/big"
	run -0 --separate-stderr bash -c 'cachectl get big | head -c 1 >/dev/null; echo "${PIPESTATUS[0]}" >&2'
	assert_equal "$stderr" 74
	declare_q "$Q"
	seq 1 20000 | qctl enqueue -q "$Q"
	run -0 --separate-stderr bash -c 'qctl consume -q "$1" --count 20000 | head -n 1 >/dev/null; echo "${PIPESTATUS[0]}" >&2' _ "$Q"
	assert_equal "$stderr" 74
	# what could not be written came back
	[ "$(ready "$Q")" -gt 0 ]
}

@test "empty input: set stores an empty value; warm and enqueue do nothing and say so" {
	run -0 cachectl set e --ttl 1m </dev/null
	run -0 cachectl get --json e
	assert_output '{"key":"e","value":""}'
	run -0 --separate-stderr cachectl warm --ttl 1m </dev/null
	[[ "$stderr" == "warmed 0 keys in "*" (0 skipped, 0 failed)" ]]
	run -0 cachectl warm --jsonl --ttl 1m </dev/null
	run -0 cachectl warm -0 --ttl 1m </dev/null
	declare_q "$Q"
	run -0 --separate-stderr qctl enqueue "$Q" </dev/null
	[[ "$stderr" == "enqueued 0 messages in "*" (0 failed)" ]]
	run -0 qctl enqueue --jsonl "$Q" </dev/null
	run -0 qctl enqueue -0 "$Q" </dev/null
	[ "$(ready "$Q")" -eq 0 ]
	# an empty message is still a message when given as an argument
	run -0 qctl enqueue -q "$Q" ''
	[ "$(ready "$Q")" -eq 1 ]
}

@test "NUL bytes and invalid UTF-8 come back byte for byte; --json uses base64" {
	all_bytes >"$TMP/bin"
	[ "$(wc -c <"$TMP/bin")" -eq 512 ]
	cachectl set b --ttl 1m - <"$TMP/bin"
	cachectl get -n b >"$TMP/out"
	cmp "$TMP/bin" "$TMP/out"
	cachectl get --json b | jq -r .value_base64 | base64 -d >"$TMP/out"
	cmp "$TMP/bin" "$TMP/out"
	# warm -0: a key with a newline and a binary value
	{ printf 'line\nkey\0'; printf '\xff\xfe\x01tab\there'; printf '\0'; } >"$TMP/pairs"
	run -0 cachectl warm -q -0 --ttl 1m "$TMP/pairs"
	cachectl get -n $'line\nkey' >"$TMP/out"
	printf '\xff\xfe\x01tab\there' | cmp - "$TMP/out"
	# a TSV line with invalid UTF-8
	printf 'u8\t\xc3\x28\xa0\xa1\n' | cachectl warm -q --ttl 1m
	cachectl get -n u8 >"$TMP/out"
	printf '\xc3\x28\xa0\xa1' | cmp - "$TMP/out"
	# qctl: -0 records hold newlines and any byte but NUL
	declare_q "$Q"
	{ printf 'a\nmulti-line\xff\0'; printf '\x01\x02\xc3\x28\0'; } >"$TMP/recs"
	run -0 qctl enqueue -q -0 "$Q" <"$TMP/recs"
	qctl consume -q -0 "$Q" --count 2 >"$TMP/out"
	cmp "$TMP/recs" "$TMP/out"
	# a body with NULs (base64 in JSONL) comes back in --jsonl as base64
	printf '{"body_base64":"%s"}\n' "$(base64 -w0 <"$TMP/bin")" | qctl enqueue -q --jsonl "$Q"
	qctl consume -q --jsonl "$Q" --count 1 | jq -r .body_base64 | base64 -d >"$TMP/out"
	cmp "$TMP/bin" "$TMP/out"
}

@test "huge values: 32 MB through cachectl set/get, 16 MB through enqueue/consume; --max-size refuses more" {
	head -c $((32 << 20)) /dev/urandom >"$TMP/v"
	run -0 cachectl set huge --ttl 1m - <"$TMP/v"
	cachectl get -n huge >"$TMP/out"
	cmp "$TMP/v" "$TMP/out"
	run -65 --separate-stderr cachectl set huge2 --ttl 1m --max-size 16M - <"$TMP/v"
	assert_equal "$stderr" "cachectl: set: value larger than --max-size (16777216 bytes)"
	run -1 cachectl get huge2
	declare_q "$Q"
	head -c $((16 << 20)) /dev/urandom | tr -d '\n' >"$TMP/m"
	{ cat "$TMP/m"; echo; } | qctl enqueue -q "$Q"
	qctl consume -q "$Q" --count 1 >"$TMP/out"
	{ cat "$TMP/m"; echo; } | cmp - "$TMP/out"
	run -65 --separate-stderr qctl enqueue "$Q" --max-size 1M <"$TMP/m"
	[[ "$stderr" == *"qctl: enqueue: line 1: longer than --max-size (1048576 bytes)"* ]]
	[ "$(ready "$Q")" -eq 0 ]
}

@test "1 MB lines: warm TSV and JSONL, enqueue lines; all stored exactly" {
	local i
	for i in 1 2 3; do
		printf 'big%d\t' "$i"
		head -c $((1 << 20)) /dev/urandom | base64 -w0 | head -c $((1 << 20))
		echo
	done >"$TMP/tsv"
	run -0 cachectl warm -q --ttl 1m "$TMP/tsv"
	for i in 1 2 3; do
		sed -n "${i}p" "$TMP/tsv" | cut -f2 >"$TMP/want"
		{ cachectl get -n "big$i"; echo; } | cmp - "$TMP/want"
	done
	awk -F'\t' '{ printf "{\"key\":\"j%s\",\"value\":\"%s\"}\n", $1, $2 }' "$TMP/tsv" >"$TMP/jsonl"
	run -0 cachectl warm -q --jsonl --ttl 1m "$TMP/jsonl"
	{ cachectl get -n jbig2; echo; } | cmp - <(sed -n 2p "$TMP/tsv" | cut -f2)
	declare_q "$Q"
	cut -f2 "$TMP/tsv" >"$TMP/lines"
	run -0 qctl enqueue -q "$Q" <"$TMP/lines"
	qctl consume -q "$Q" --count 3 >"$TMP/out"
	cmp "$TMP/lines" "$TMP/out"
}

@test "queue names the broker refuses (over 255 bytes, not UTF-8, empty): 64 before the wire, one message, every verb and cqstat" {
	local long bad name verb kind why w v dead=amqp://guest:guest@127.0.0.1:1/%2f
	long=$(printf 'q%.0s' $(seq 256))
	bad=$(printf '%s\377x' "$Q")
	for name in "$long" "$bad" ""; do
		# a dead broker: the name is refused before any connection
		for verb in "enqueue NAME x" "peek NAME" "replay-dlq NAME" "purge NAME --yes" \
			"consume NAME --count 1" "declare NAME" "stats NAME" \
			"replay-dlq --to NAME $Q.dlq" "consume --dlq NAME $Q" \
			"declare --dlq=NAME $Q" "enqueue --exchange NAME $Q x"; do
			case $verb in
			*--dlq*) kind="dead-letter queue" ;;
			*--exchange*) kind=exchange ;;
			*) kind=queue ;;
			esac
			case $name in
			"$long") why="$kind name longer than 255 bytes: '${long:0:60}...'" ;;
			"$bad") why="$kind name not valid UTF-8: '$Q\\xFFx'" ;;
			*)	# --dlq= and --exchange '' mean QUEUE.dlq and the default exchange
				[[ $verb == *--dlq=* || $verb == *--exchange* ]] && continue
				why="empty $kind name" ;;
			esac
			local args=()
			for w in $verb; do args+=("${w/NAME/$name}"); done
			run -64 --separate-stderr qctl "${args[@]}" --amqp "$dead"
			v=${verb%% *}
			assert_equal "${stderr_lines[0]}" "qctl: $v: $why"
			assert_equal "${stderr_lines[1]}" "Try 'qctl $v --help'."
			[ "${#stderr_lines[@]}" -eq 2 ]
		done
		case $name in
		"$long") why="queue name longer than 255 bytes: '${long:0:60}...'" ;;
		"$bad") why="queue name not valid UTF-8: '$Q\\xFFx'" ;;
		*) why="empty queue name" ;;
		esac
		run -64 --separate-stderr cqstat -Q "$name" --amqp "$dead"
		assert_equal "${stderr_lines[0]}" "cqstat: --queue: $why"
		[[ "$stderr" != *"amqp down"* ]]
	done
	# the broker is never asked: no such queue appeared
	run -0 rctl list_queues -q name
	refute_output --partial "$Q"
}
