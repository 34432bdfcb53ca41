#!/usr/bin/env bats
# cachectl get: raw values, many keys in one round trip, --ttl, --json,
# --ns, and every bad input: wrong type, binary data, dead server, wrong
# password, closed pipe.

bats_require_minimum_version 1.5.0
load test_helper

@test "get prints a value raw, exit 0" {
	rcli set "${P}k" "hello world" >/dev/null
	run -0 --separate-stderr cachectl get k
	assert_output "hello world"
	[ -z "$stderr" ]
}

@test "get of a missing key exits 1, prints nothing, says miss on stderr" {
	run -1 --separate-stderr cachectl get nope
	assert_output ""
	[ "$stderr" = "cachectl: get: miss: 'nope'" ]
	run -1 --separate-stderr cachectl get -q nope
	[ -z "$stderr" ]
}

@test "get of many keys prints them in order, an empty line per miss, exit 1" {
	rcli set "${P}a" 1 >/dev/null
	rcli set "${P}c" 3 >/dev/null
	run -1 --separate-stderr cachectl get a b c
	[ "$output" = $'1\n\n3' ]
	run -0 cachectl get c a
	[ "$output" = $'3\n1' ]
}

@test "get reads every key with one pipelined GET each (no MGET)" {
	rcli set "${P}a" 1 >/dev/null
	rcli set "${P}b" 2 >/dev/null
	mget_before=$(rcli info commandstats | sed -n 's/^cmdstat_mget:calls=\([0-9]*\),.*/\1/p')
	run -0 cachectl get a b a b
	[ "$output" = $'1\n2\n1\n2' ]
	mget_after=$(rcli info commandstats | sed -n 's/^cmdstat_mget:calls=\([0-9]*\),.*/\1/p')
	[ "${mget_before:-0}" = "${mget_after:-0}" ]
}

@test "get keeps binary values byte for byte (-n, NUL, newlines, high bytes)" {
	printf 'a\0b\nc\377' | cachectl set bin --ttl 1m
	cachectl get -n bin >"$TMP/out"
	printf 'a\0b\nc\377' >"$TMP/want"
	cmp "$TMP/out" "$TMP/want"
}

@test "get -0 ends each value with a NUL" {
	rcli set "${P}a" "x y" >/dev/null
	rcli set "${P}b" $'two\nlines' >/dev/null
	cachectl get -0 a b >"$TMP/out"
	printf 'x y\0two\nlines\0' >"$TMP/want"
	cmp "$TMP/out" "$TMP/want"
}

@test "get --ttl adds the remaining TTL in ms, -1 for none" {
	rcli set "${P}a" v PX 60000 >/dev/null
	rcli set "${P}b" w >/dev/null
	run -0 cachectl get --ttl a b
	[[ "${lines[0]}" =~ ^v$'\t'(59[0-9]{3}|60000)$ ]]
	[ "${lines[1]}" = $'w\t-1' ]
}

@test "get --json --ttl: every record has ttl_ms, null for no expiry and for a miss; without --ttl none has" {
	rcli set "${P}a" v PX 60000 >/dev/null
	rcli set "${P}b" w >/dev/null
	run -1 cachectl get --json --ttl a missing b
	[[ "${lines[0]}" =~ ^\{\"key\":\"a\",\"value\":\"v\",\"ttl_ms\":(59[0-9]{3}|60000)\}$ ]]
	assert_line --index 1 '{"key":"missing","value":null,"ttl_ms":null}'
	assert_line --index 2 '{"key":"b","value":"w","ttl_ms":null}'
	run -1 cachectl get --json a missing b
	assert_output "$(printf '%s\n' '{"key":"a","value":"v"}' '{"key":"missing","value":null}' '{"key":"b","value":"w"}')"
	# the help and the man page say the same
	run -0 cachectl get --help
	assert_output --partial '{"key","value"} per key, with "ttl_ms" when --ttl'
	grep -q 'record (null for a key without expiry, and for a missing key)' "$TOP/man/cachectl.1"
}

@test "get --json --ttl output is what warm --jsonl reads: a copy keeps values and TTLs" {
	rcli set "${P}a" v PX 600000 >/dev/null
	rcli set "${P}b" w >/dev/null
	printf '\377\0' | cachectl set c --ttl 1h
	cachectl get --json --ttl a b c > "$TMP/dump"
	run -0 cachectl warm --jsonl --prefix "${P}copy:" --ttl 1m "$TMP/dump"
	run -0 rcli pttl "${P}copy:a"
	# milliseconds stay milliseconds (not taken for seconds)
	((output > 590000 && output <= 600000))
	run -0 rcli pttl "${P}copy:b"
	((output > 0 && output <= 60000))	# no expiry of its own: warm's --ttl
	[ "$(cachectl get --prefix "${P}copy:" c | od -An -tx1 | tr -d ' ')" = ff000a ]
}

@test "get --json gives a non-UTF-8 value as value_base64" {
	printf '\377\376\0' | cachectl set b --ttl 1m
	run -0 cachectl get --json b
	assert_output '{"key":"b","value_base64":"//4A"}'
	printf 'caf\303\251\n' | cachectl set u --ttl 1m
	run -0 cachectl get --json u
	assert_output '{"key":"u","value":"café\n"}'
}

@test "get applies the prefix: the value lives at prefix+key" {
	rcli set "${P}user:1" alice >/dev/null
	run -0 cachectl get user:1
	assert_output alice
	run -1 cachectl get --prefix "other$P" user:1
}

@test "get --ns reads the namespace's current generation" {
	cachectl set --ns users u1 alice --ttl 1m
	run -0 cachectl get --ns users u1
	assert_output alice
	run -1 cachectl get u1
	run -1 cachectl get --ns others u1
	cachectl invalidate -q --ns users
	run -1 cachectl get --ns users u1
}

@test "get --ns of a namespace never written misses without creating it" {
	run -1 cachectl get --ns fresh k
	run -0 rcli exists "${P}cq:ns:fresh"
	assert_output 0
}

@test "get of a key holding a list exits 65 and names the key" {
	rcli lpush "${P}l" x >/dev/null
	run -65 --separate-stderr cachectl get l
	assert_output ""
	[[ "$stderr" == *"get 'l'"*"non-string type"* ]]
}

@test "get from an unreachable server exits 69" {
	run -69 --separate-stderr cachectl get --redis redis://127.0.0.1:1 k
	[[ "$stderr" == "cachectl: get: cannot connect to Redis at 127.0.0.1:1"* ]]
}

@test "get with a wrong password exits 77 and never prints the password" {
	ACL_USER="cq_get_$$_$RANDOM"
	rcli ACL SETUSER "$ACL_USER" on ">Right-$RANDOM" '~*' '+@all' >/dev/null
	run -77 --separate-stderr cachectl get --redis "redis://$ACL_USER:Wr0ngPassw0rd@$(hostport)/0" k
	[[ "$stderr" == *"refused"* ]]
	[[ "$stderr" != *"Wr0ngPassw0rd"* ]]
	[[ "$output" != *"Wr0ngPassw0rd"* ]]
}

@test "get into a closed pipe: no crash, no message" {
	head -c 2000000 /dev/zero | tr '\0' x | cachectl set big --ttl 1m
	run -0 bash -c 'cachectl get big 2>"$TMP/err" | head -c1; echo "${PIPESTATUS[0]}" >"$TMP/code"'
	assert_output x
	# 74 (output failed), never a signal death (141) or a crash; silent
	[ "$(cat "$TMP/code")" = 74 ]
	[ ! -s "$TMP/err" ]
}

@test "get usage errors exit 64" {
	run -64 --separate-stderr cachectl get
	[[ "$stderr" == *"missing KEY"* ]]
	run -64 cachectl get -n a b
	run -64 --separate-stderr cachectl get --ns 'bad name' a
	[[ "$stderr" == *"bad namespace 'bad name'"* ]]
	run -64 cachectl get --bogus a
	run -0 cachectl get --help
	assert_line --index 0 'usage: cachectl get [OPTIONS] KEY...'
}

@test "get --json with -n or -0 is a usage error (64), not a silent drop" {
	rcli set "${P}a" v >/dev/null
	run -64 --separate-stderr cachectl get --json -n a
	assert_equal "$stderr" "cachectl: get: --json excludes -n/--no-newline (it prints one record a line)
Try 'cachectl get --help'."
	[ -z "$output" ]
	run -64 --separate-stderr cachectl get -0 --json a
	[[ "$stderr" == "cachectl: get: --json excludes -0/--null (it prints one record a line)"* ]]
	[ -z "$output" ]
}
