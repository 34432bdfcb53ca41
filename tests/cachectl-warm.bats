#!/usr/bin/env bats
# cachectl warm: TSV, -0 and JSONL input, TTL + jitter, --nx, --tag, --ns,
# --exec, --once, bad lines with line numbers, exit codes, constant memory.

bats_require_minimum_version 1.5.0
load test_helper

@test "warm and invalidate summaries say 1 key, 2 keys; --json keeps its fixed names" {
	run -0 --separate-stderr bash -c "printf 'a\tv\n' | cachectl warm --ttl 1m"
	[[ "$stderr" == "warmed 1 key in "*"(0 skipped, 0 failed)" ]]
	run -0 --separate-stderr bash -c "printf 'b\tv\nc\tv\n' | cachectl warm --ttl 1m"
	[[ "$stderr" == "warmed 2 keys in "* ]]
	run -0 --separate-stderr bash -c "printf 'd\tv\n' | cachectl warm --json --ttl 1m"
	[ "$(jq -c '{warmed, failed, records}' <<<"$output")" = '{"warmed":1,"failed":0,"records":1}' ]
	run -0 --separate-stderr cachectl invalidate a
	[[ "$stderr" == "invalidated 1 key in "* ]]
	run -0 --separate-stderr cachectl invalidate --pattern 'b*'
	[[ "$stderr" == "invalidated 1 key in "* ]]
	run -0 --separate-stderr cachectl invalidate --pattern '[cd]'
	[[ "$stderr" == "invalidated 2 keys in "* ]]
	[ "$(rcli exists "${P}b" "${P}c" "${P}d")" = 0 ]
}

@test "warm loads key<TAB>value lines and says how many" {
	printf 'a\t1\nb\ttwo words\nc\t\n' >"$TMP/in"
	run -0 --separate-stderr cachectl warm --ttl 1m "$TMP/in"
	[[ "$stderr" =~ ^warmed\ 3\ keys\ in\ [0-9]+\.[0-9]{2}s\ \(0\ skipped,\ 0\ failed\)$ ]]
	run -0 cachectl get a b
	[ "$output" = $'1\ntwo words' ]
	run -0 rcli strlen "${P}c"
	assert_output 0
}

@test "warm reads standard input with - or no FILE; the last line needs no newline" {
	printf 'a\t1\nb\t2' | cachectl warm -q --ttl 1m -
	printf 'c\t3\n' | cachectl warm -q --ttl 1m
	run -0 cachectl get a b c
	[ "$output" = $'1\n2\n3' ]
}

@test "warm gives every key the TTL plus jitter" {
	seq 1 30 | awk '{printf "j%d\tv\n", $1}' | cachectl warm -q --ttl 100s --jitter 50s
	read -r min max <<<"$(pttl_range j 30)"
	[ "$min" -gt 95000 ]
	[ "$max" -le 150000 ]
	[ $((max - min)) -gt 1000 ]
}

@test "warm requires a TTL unless CQ_DEFAULT_TTL or --no-ttl" {
	run -64 --separate-stderr cachectl warm </dev/null
	[[ "$stderr" == *"--ttl is required"* ]]
	printf 'a\t1\n' | CQ_DEFAULT_TTL=1m cachectl warm -q
	t=$(rcli pttl "${P}a")
	[ "$t" -gt 50000 ]
	printf 'b\t1\n' | cachectl warm -q --no-ttl
	run -0 rcli pttl "${P}b"
	assert_output -1
}

@test "warm reports bad lines with their numbers, skips them, exits 65" {
	printf 'good1\tv1\nmissing-tab\n\tempty-key\ngood2\tv2\n\n' >"$TMP/in"
	run -65 --separate-stderr cachectl warm --ttl 1m "$TMP/in"
	[ "${stderr_lines[0]}" = "cachectl: warm: line 2: missing TAB between key and value" ]
	[ "${stderr_lines[1]}" = "cachectl: warm: line 3: empty key" ]
	# line 5 is blank: skipped and counted, no error (issue 13)
	[[ "${stderr_lines[2]}" == "warmed 2 keys in "*"(2 skipped, 0 failed, 1 blank)" ]]
	run -0 cachectl get good1 good2
}

@test "warm skips blank lines and counts them; a trailing one is no error" {
	run -0 --separate-stderr bash -c "printf 'a\t1\n\nb\t2\n\n' | cachectl warm --ttl 1m"
	[[ "$stderr" == "warmed 2 keys in "*"(0 skipped, 0 failed, 2 blank)" ]]
	run -0 rcli get "${P}b"
	assert_output 2
	run -0 --separate-stderr bash -c "printf '\n{\"key\":\"j\",\"value\":\"v\"}\n\n' | cachectl warm --jsonl --json --ttl 1m"
	[[ "$output" =~ ^\{\"warmed\":1,\"skipped\":0,\"bad\":0,\"failed\":0,\"denied\":0,\"blank\":2,\"records\":3, ]]
	run -0 rcli get "${P}j"
	assert_output v
	# line numbers count the blank lines
	run -65 --separate-stderr bash -c "printf '\n\nbad\n' | cachectl warm -q --ttl 1m"
	assert_equal "$stderr" "cachectl: warm: line 3: missing TAB between key and value"
}

@test "warm refuses CRLF lines (exit 65, each line named); a JSONL line's CR is blank space" {
	run -65 --separate-stderr bash -c "printf 'a\t1\r\nb\t2\r\nc\t3\n' | cachectl warm --ttl 1m"
	assert_equal "${stderr_lines[0]}" "cachectl: warm: line 1: line ends in CR (a CRLF file?): convert it with dos2unix or tr -d '\r' first"
	[[ "${stderr_lines[1]}" == "cachectl: warm: line 2: line ends in CR "* ]]
	[[ "${stderr_lines[2]}" == "warmed 1 key in "*"(2 skipped, 0 failed)" ]]
	run -0 rcli exists "${P}a" "${P}b"
	assert_output 0
	run -0 rcli get "${P}c"
	assert_output 3
	run -0 bash -c "printf '{\"key\":\"j\",\"value\":\"v\"}\r\n' | cachectl warm -q --jsonl --ttl 1m"
	run -0 rcli strlen "${P}j"
	assert_output 1
}

@test "warm out of memory for a record exits 70 (not 65: no fault of the line)" {
	run -70 --separate-stderr low_memory 100 "{ printf 'big\t'; head -c 150000000 /dev/zero | tr '\0' x; printf '\n'; } | cachectl warm --ttl 1m --max-size 200M"
	# (ASan may warn first)
	[[ "$stderr" == *"cachectl: warm: out of memory"* ]]
	run -0 rcli exists "${P}big"
	assert_output 0
}

@test "warm -0 with an odd count of fields (a truncated stream) names the record and exits 65" {
	run -65 --separate-stderr bash -c "printf 'k1\0v1\0k2\0' | cachectl warm -0 --ttl 1m"
	assert_equal "${stderr_lines[0]}" "cachectl: warm: record 2: key without a value (odd number of NUL-separated fields)"
	run -0 rcli exists "${P}k2"
	assert_output 0
	run -0 rcli get "${P}k1"
	assert_output v1
	# an empty value is a value when its field is there
	run -0 bash -c "printf 'k3\0\0' | cachectl warm -q -0 --ttl 1m"
	run -0 rcli exists "${P}k3"
	assert_output 1
}

@test "warm -0 takes NUL-separated key/value pairs with any bytes" {
	printf 'k\n1\0v\tal\nue\0k2\0\377\001\0' | cachectl warm -q -0 --ttl 1m
	cachectl get -n $'k\n1' >"$TMP/got"
	printf 'v\tal\nue' >"$TMP/want"
	cmp "$TMP/got" "$TMP/want"
	cachectl get -n k2 >"$TMP/got"
	printf '\377\001' >"$TMP/want"
	cmp "$TMP/got" "$TMP/want"
}

@test "warm -0 with a key and no value reports the record and exits 65" {
	run -65 --separate-stderr bash -c "printf 'a\0\x31\0\0v\0lonely' | cachectl warm -0 --ttl 1m"
	[ "${stderr_lines[0]}" = "cachectl: warm: record 2: empty key" ]
	[[ "${stderr_lines[1]}" == "cachectl: warm: record 3: key without a value"* ]]
	run -0 cachectl get a
	assert_output 1
}

@test "warm --jsonl: value, ttl, tags, non-string values as JSON text" {
	cat >"$TMP/in" <<-'EOF'
	{"key":"a","value":"text","ttl":100}
	{"key":"b","value":{"n":[1,2]},"tags":["t1"]}
	{"key":"c","value":42,"ttl":"250s"}
	{"key_base64":"/w==","value_base64":"AAE="}
	EOF
	run -0 --separate-stderr cachectl warm --jsonl --ttl 1m "$TMP/in"
	[[ "$stderr" == "warmed 4 keys in "* ]]
	run -0 cachectl get a b c
	[ "$output" = $'text\n{"n":[1,2]}\n42' ]
	t=$(rcli pttl "${P}a")
	[ "$t" -gt 95000 ]
	[ "$t" -le 100000 ]
	t=$(rcli pttl "${P}c")
	[ "$t" -gt 245000 ]
	[ "$t" -le 250000 ]
	t=$(rcli pttl "${P}b")
	[ "$t" -gt 55000 ]
	[ "$t" -le 60000 ]
	run -0 rcli smembers "${P}cq:tag:t1"
	assert_output "${P}b"
	[ "$(rcli strlen "${P}$(printf '\377')")" = 2 ]
}

@test "warm --jsonl reports malformed records by line and keeps going" {
	cat >"$TMP/in" <<-'EOF'
	{"key":"a","value":"1"}
	{"key":"b","value":
	{"value":"no key"}
	{"key":"c","value":"3","ttl":-5}
	["not","an","object"]
	{"key":"d","value":"4","colour":"red"}
	{"key":"e","value":"5"}
	{"key":"f","key":"g","value":"6"}
	{"key":"h","value":"7"} x
	EOF
	run -65 --separate-stderr cachectl warm --jsonl --ttl 1m "$TMP/in"
	[ "${stderr_lines[0]}" = "cachectl: warm: line 2: bad JSON at column 19: unexpected token near end of file" ]
	[ "${stderr_lines[1]}" = 'cachectl: warm: line 3: missing "key"' ]
	[[ "${stderr_lines[2]}" == 'cachectl: warm: line 4: "ttl" must be a positive'* ]]
	# the words of enqueue --jsonl for the same faults (qctl-enqueue.bats)
	[ "${stderr_lines[3]}" = "cachectl: warm: line 5: not a JSON object: '[\"not\",\"an\",\"object\"]'" ]
	[ "${stderr_lines[4]}" = 'cachectl: warm: line 6: unknown field "colour"' ]
	[ "${stderr_lines[5]}" = "cachectl: warm: line 8: bad JSON at column 16: duplicate object key near '\"key\"'" ]
	[ "${stderr_lines[6]}" = "cachectl: warm: line 9: text after the JSON object at column 25: 'x'" ]
	run -0 cachectl get a e
	run -1 cachectl get h
}

@test "warm refuses values over --max-size and lines far longer, by line" {
	{
		printf 'a\t1\n'
		printf 'big\t%s\n' "$(head -c 100 /dev/zero | tr '\0' x)"
		printf 'huge\t'; head -c 300000 /dev/zero | tr '\0' y; printf '\n'
		printf 'b\t2\n'
	} >"$TMP/in"
	run -65 --separate-stderr cachectl warm --ttl 1m --max-size 50 "$TMP/in"
	[ "${stderr_lines[0]}" = "cachectl: warm: line 2: value larger than --max-size" ]
	[ "${stderr_lines[1]}" = "cachectl: warm: line 3: record longer than --max-size" ]
	run -0 cachectl get a b
	run -0 rcli exists "${P}big" "${P}huge"
	assert_output 0
}

@test "warm -0 skips a record far over --max-size whole, value included" {
	{ printf 'k\0'; head -c 300000 /dev/zero | tr '\0' v; printf '\0a\0b\0'; } >"$TMP/in"
	run -65 --separate-stderr cachectl warm -0 --ttl 1m --max-size 10 "$TMP/in"
	[ "${stderr_lines[0]}" = "cachectl: warm: record 1: record longer than --max-size" ]
	[[ "${stderr_lines[1]}" == "warmed 1 key in "*"(1 skipped, 0 failed)" ]]
	run -0 cachectl get a
	assert_output b
	run -1 cachectl get k
}

@test "warm --nx fills only missing keys" {
	rcli set "${P}a" old >/dev/null
	run -0 --separate-stderr bash -c "printf 'a\tnew\nb\tnew\n' | cachectl warm --nx --ttl 1m"
	[[ "$stderr" == "warmed 1 key in "*"(1 skipped, 0 failed)" ]]
	run -0 cachectl get a b
	[ "$output" = $'old\nnew' ]
}

@test "warm --tag and --ns apply to every key" {
	printf 'a\t1\nb\t2\n' | cachectl warm -q --ttl 1m --tag batch --ns cat
	run -0 cachectl get --ns cat a b
	[ "$output" = $'1\n2' ]
	run -0 rcli scard "${P}cq:tag:batch"
	assert_output 2
	cachectl invalidate -q --tag batch
	run -1 cachectl get --ns cat a
}

@test "warm --tag onto a tag key of another type: each line named with the tag, exit 65 as for set, not 75" {
	rcli rpush "${P}cq:tag:t" x >/dev/null
	run -65 --separate-stderr bash -c "printf 'a\t1\nb\t2\n' | cachectl warm --ttl 1m --tag ok --tag t"
	assert_equal "${stderr_lines[0]}" "cachectl: warm: line 1: a --tag's key holds something other than a set (the key was written, not recorded under that tag)"
	assert_equal "${stderr_lines[1]}" "cachectl: warm: line 2: a --tag's key holds something other than a set (the key was written, not recorded under that tag)"
	[[ "${stderr_lines[2]}" == "warmed 2 keys in "*"(0 skipped, 2 failed)" ]]
	assert_equal "$(rcli get "${P}b")" 2
	assert_equal "$(rcli scard "${P}cq:tag:ok")" 2
	# one tag (and --exec) names it; --json counts them apart
	printf 'c\n' >"$TMP/keys"
	run -65 --separate-stderr cachectl warm --ttl 1m --tag t --keys "$TMP/keys" --exec 'echo v'
	assert_equal "${stderr_lines[0]}" "cachectl: warm: line 1: key 'c': tag 't': its key holds something other than a set (the key was written, not recorded under the tag)"
	run -65 --separate-stderr bash -c "printf 'd\t1\n' | cachectl warm --json --ttl 1m --tag t"
	[ "$(jq -c '{failed, denied, wrong_type}' <<<"$output")" = '{"failed":1,"denied":0,"wrong_type":1}' ]
}

@test "warm --json prints the summary as JSON on stdout" {
	run -65 --separate-stderr bash -c "printf 'a\t1\nbad\n' | cachectl warm --json --ttl 1m"
	[[ "$output" =~ ^\{\"warmed\":1,\"skipped\":0,\"bad\":1,\"failed\":0,\"denied\":0,\"records\":2,\"seconds\":[0-9.]+\}$ ]]
	[ "$stderr" = "cachectl: warm: line 2: missing TAB between key and value" ]
}

@test "warm with a small window and --rate still writes everything" {
	seq 1 500 | awk '{printf "w%d\tv%d\n", $1, $1}' | cachectl warm -q --ttl 1m --window 7
	run -0 cachectl get w1 w250 w500
	[ "$output" = $'v1\nv250\nv500' ]
	seq 1 30 | awk '{printf "r%d\tv\n", $1}' | cachectl warm -q --ttl 1m --rate 300
	run -0 cachectl get r30
}

key_exists() { [ "$(rcli exists "$1")" = 1 ]; }

@test "warm from a slow pipe writes each line as it comes, not with the next batch or at EOF" {
	mkfifo "$TMP/in"
	cachectl warm -q --ttl 1m < "$TMP/in" 2> "$TMP/err" &
	pid=$!
	exec 4> "$TMP/in"
	printf 'slow1\tv1\n' >&4
	# the writer stays open: the line is written while warm waits for more
	wait_for 10 key_exists "${P}slow1" || { exec 4>&-; false; }
	printf 'slow2\tv2\n' >&4
	wait_for 10 key_exists "${P}slow2" || { exec 4>&-; false; }
	exec 4>&-
	wait "$pid"
	run -0 cachectl get slow1 slow2
	[ "$output" = $'v1\nv2' ]
}

@test "warm shows progress on a terminal" {
	seq 1 40 | awk '{printf "p%d\tv\n", $1}' >"$TMP/in"
	run -0 script -qec "cachectl warm --ttl 1m --rate 100 '$TMP/in'" /dev/null
	[[ "$output" == *"warming: "*" lines read, "*" keys warmed, "* ]]
	[[ "$output" == *"warmed 40 keys in "* ]]
}

@test "warm's progress line is the programs' one: prog: verb:, erased before an error" {
	{ seq 1 20 | awk '{printf "p%d\tv\n", $1}'; echo bad; seq 21 40 | awk '{printf "p%d\tv\n", $1}'; } >"$TMP/in"
	run -65 script -qec "cachectl warm --ttl 1m --rate 100 '$TMP/in'" /dev/null
	[[ "$output" == *$'\r''cachectl: warm: warming: '*" lines read, "*" keys warmed, "* ]]
	# the error starts on a fresh line: the progress line was erased first
	[[ "$output" == *$'\r\e[Kcachectl: warm: line 21: '* ]]
}

@test "warm of an empty input warms nothing and exits 0" {
	run -0 --separate-stderr cachectl warm --ttl 1m </dev/null
	[[ "$stderr" == "warmed 0 keys in "* ]]
}

@test "warm of a missing file exits 74" {
	run -74 --separate-stderr cachectl warm --ttl 1m "$TMP/nope"
	[[ "$stderr" == "cachectl: warm: cannot open '$TMP/nope': No such file or directory" ]]
}

@test "warm counts writes an ACL refuses as failed and exits 77" {
	ACL_USER="cq_warm_$$_$RANDOM"
	pw="Pw-$RANDOM$RANDOM"
	rcli ACL SETUSER "$ACL_USER" on ">$pw" "~${P}ok:*" '+@all' >/dev/null
	url="redis://$ACL_USER:$pw@$(hostport)/0"
	run -77 --separate-stderr bash -c "printf 'ok:1\tv\nno:2\tv\nok:3\tv\n' | cachectl warm --ttl 1m --redis '$url'"
	assert_equal "${stderr_lines[0]}" "cachectl: warm: line 2: write refused: permission denied: NOPERM this user has no permissions to access one of the keys used as arguments"
	[[ "${stderr_lines[1]}" == "warmed 2 keys in "*"(0 skipped, 1 failed)" ]]
	assert_equal "${#stderr_lines[@]}" 2
	[[ "$stderr" != *"$pw"* ]]
	assert_equal "$(rcli get "${P}ok:3")" v
	# a refusal wins over a bad line (65)
	run -77 --separate-stderr bash -c "printf 'ok:4\tv\nno tab\nno:5\tv\n' | cachectl warm --ttl 1m --redis '$url'"
	assert_equal "${stderr_lines[0]}" "cachectl: warm: line 2: missing TAB between key and value"
	[[ "${stderr_lines[1]}" == "cachectl: warm: line 3: write refused: permission denied: NOPERM"* ]]
	[[ "${stderr_lines[2]}" == "warmed 1 key in "*"(1 skipped, 1 failed)" ]]
}

@test "warm: a write refused for permission outranks one worth retrying (77 over 75)" {
	priv_redis_start --tcp
	redis-cli -p "$PRIV_PORT" ACL SETUSER lim on '>pw' "~${P}ok:*" '+@all' >/dev/null
	# full: every write the ACL lets through is refused for memory
	redis-cli -p "$PRIV_PORT" config set maxmemory 1 >/dev/null
	url="redis://lim:pw@127.0.0.1:$PRIV_PORT/0"
	run -75 --separate-stderr bash -c "printf 'ok:1\tv\n' | cachectl warm --ttl 1m --redis '$url'"
	assert_equal "${stderr_lines[0]}" "cachectl: warm: line 1: write refused: OOM command not allowed when used memory > 'maxmemory'."
	run -77 --separate-stderr bash -c "printf 'ok:1\tv\nno:2\tv\n' | cachectl warm --ttl 1m --redis '$url'"
	assert_equal "${stderr_lines[0]}" "cachectl: warm: line 1: write refused: OOM command not allowed when used memory > 'maxmemory'."
	[[ "${stderr_lines[1]}" == "cachectl: warm: line 2: write refused: permission denied: NOPERM"* ]]
	[[ "${stderr_lines[2]}" == "warmed 0 keys in "*"(0 skipped, 2 failed)" ]]
	# --json: the same code
	run -77 --separate-stderr bash -c "printf 'no:3\tv\n' | cachectl warm --json --ttl 1m --redis '$url'"
	[[ "$output" == '{"warmed":0,"skipped":0,"bad":0,"failed":1,"denied":1,'* ]]
	run -75 --separate-stderr bash -c "printf 'ok:3\tv\n' | cachectl warm --json --ttl 1m --redis '$url'"
	[[ "$output" == '{"warmed":0,"skipped":0,"bad":0,"failed":1,"denied":0,'* ]]
}

@test "warm --exec runs CMD for each missing key and caches its stdout" {
	printf 'k1\nk2\nk3\n' >"$TMP/keys"
	rcli set "${P}k2" present >/dev/null
	run -0 --separate-stderr cachectl warm --ttl 1m --keys "$TMP/keys" \
		--exec 'echo run >>"$TMP/runs"; printf "v-%s-%s" "$1" "$CQ_KEY"'
	[[ "$stderr" == "warmed 2 keys in "*"(1 skipped, 0 failed)" ]]
	run -0 cachectl get k1 k2 k3
	[ "$output" = $'v-k1-k1\npresent\nv-k3-k3' ]
	[ "$(wc -l <"$TMP/runs")" = 2 ]
	t=$(rcli pttl "${P}k1")
	[ "$t" -gt 50000 ]
}

@test "warm --exec never caches a failed command's output; exit 75" {
	printf 'good\nbad\n' >"$TMP/keys"
	run -75 --separate-stderr cachectl warm --ttl 1m --keys "$TMP/keys" \
		--exec 'echo "out-$1"; [ "$1" != bad ] || { echo boom >&2; exit 3; }'
	[ "${stderr_lines[0]}" = "boom" ]
	[ "${stderr_lines[1]}" = "cachectl: warm: line 2: key 'bad': command exited 3" ]
	[[ "${stderr_lines[2]}" == "warmed 1 key in "*"(0 skipped, 1 failed)" ]]
	run -0 cachectl get good
	assert_output out-good
	run -1 cachectl get bad
}

@test "warm --exec --jobs runs commands in parallel and warms every key" {
	seq 1 12 | sed 's/^/p/' >"$TMP/keys"
	run -0 --separate-stderr cachectl warm --ttl 1m --keys "$TMP/keys" --jobs 4 \
		--exec 'sleep 0.2; printf "v%s" "$1"'
	[[ "$stderr" == "warmed 12 keys in "* ]]
	run -0 cachectl get p1 p6 p12
	[ "$output" = $'vp1\nvp6\nvp12' ]
}

@test "warm --exec with -0 keys handles keys with newlines" {
	printf 'a\nb\0c d\0' >"$TMP/keys"
	run -0 cachectl warm -q -0 --ttl 1m --keys "$TMP/keys" --exec 'printf "[%s]" "$1"'
	run -0 cachectl get $'a\nb' 'c d'
	[ "$output" = $'[a\nb]\n[c d]' ]
}

@test "warm --once: a run that finds the lock held exits 0 with a notice" {
	rcli set "${P}cq:once:nightly" someone-else PX 60000 >/dev/null
	run -0 --separate-stderr bash -c "printf 'a\t1\n' | cachectl warm --once nightly --ttl 1m"
	[ "$stderr" = "cachectl: warm: another run holds --once 'nightly'; not warming" ]
	run -1 cachectl get a
	run -0 rcli get "${P}cq:once:nightly"
	assert_output someone-else
}

@test "warm --once: overlapping runs warm once; the lock goes at the end" {
	( { sleep 1; printf 'a\t1\n'; } | cachectl warm -q --once job --ttl 1m ) &
	first=$!
	for _ in $(seq 1 100); do
		[ "$(rcli exists "${P}cq:once:job")" = 1 ] && break
		sleep 0.02
	done
	run -0 --separate-stderr bash -c "printf 'b\t2\n' | cachectl warm --once job --ttl 1m"
	[[ "$stderr" == *"another run holds --once 'job'"* ]]
	wait "$first"
	run -0 cachectl get a
	run -1 cachectl get b
	run -0 rcli exists "${P}cq:once:job"
	assert_output 0
	t=$(rcli pttl "${P}a")
	[ "$t" -gt 0 ]
}

@test "warm from an unreachable server exits 69" {
	run -69 --separate-stderr bash -c "printf 'a\t1\n' | cachectl warm --ttl 1m --redis redis://127.0.0.1:1"
	[[ "$stderr" == *"cannot connect to Redis at 127.0.0.1:1"* ]]
}

@test "warm with a wrong password exits 77 and never prints it" {
	ACL_USER="cq_warm_$$_$RANDOM"
	rcli ACL SETUSER "$ACL_USER" on ">Right-$RANDOM" '~*' '+@all' >/dev/null
	run -77 --separate-stderr bash -c "printf 'a\t1\n' | cachectl warm --ttl 1m --redis 'redis://$ACL_USER:Wr0ngPassw0rd@$(hostport)/0'"
	[[ "$stderr" != *"Wr0ngPassw0rd"* ]]
}

@test "warm whose server dies mid-run exits 75 with the summary" {
	priv_redis_start --tcp
	run -75 --separate-stderr bash -c "{ printf 'a\t1\n'; sleep 0.5; kill \$(cat '$PRIV_PID'); sleep 0.5; printf 'b\t2\n'; } | cachectl warm --ttl 1m --redis '$PRIV_URL'"
	[[ "$stderr" == *"Redis at 127.0.0.1:$PRIV_PORT"* ]]
	# (line 1 is written while the input waits, unless the kill came first)
	[[ "$stderr" =~ warmed\ [01]\ keys?\ in\  ]] || { echo "$stderr"; false; }
}

@test "warm of 1,000,000 lines stays under 16 MiB of memory" {
	if ldd "$(command -v cachectl)" | grep -q asan; then
		skip "sanitizer builds use shadow memory"
	fi
	priv_redis_start --tcp
	awk 'BEGIN { for (i = 0; i < 1000000; i++) printf "mem:%d\tvalue number %d\n", i, i }' >"$TMP/big"
	run -0 --separate-stderr /usr/bin/time -f 'maxrss=%M' cachectl warm --ttl 1m --jitter 10% --redis "$PRIV_URL" "$TMP/big"
	[[ "$stderr" == *"warmed 1000000 keys in "* ]]
	rss=$(sed -n 's/^maxrss=//p' <<<"$stderr")
	echo "peak RSS ${rss} KiB"
	[ "$rss" -lt 16384 ]
	[ "$(redis-cli -p "$PRIV_PORT" dbsize)" = 1000000 ]
}

@test "warm usage errors exit 64" {
	run -64 cachectl warm --ttl 1m a b
	run -64 --separate-stderr cachectl warm --ttl 1m --exec 'echo'
	[[ "$stderr" == *"--keys and --exec go together"* ]]
	run -64 cachectl warm --ttl 1m --keys "$TMP/k"
	run -64 cachectl warm --ttl 1m --jobs 2
	run -64 cachectl warm --ttl 1m --jsonl --keys k --exec echo
	run -64 cachectl warm --ttl 1m --window 0
	run -64 cachectl warm --ttl 1m --rate fast
	run -64 cachectl warm --ttl 1m --once ''
	run -0 cachectl warm --help
	assert_line --index 0 'usage: cachectl warm [OPTIONS] [FILE|-]'
}
