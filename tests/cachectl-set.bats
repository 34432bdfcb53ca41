#!/usr/bin/env bats
# cachectl set: TTL rules, jitter, --nx/--xx/--keep-ttl, --tag, --ns,
# --max-size, binary values, and the bad inputs.

bats_require_minimum_version 1.5.0
load test_helper

@test "set stores the value under the prefix with the TTL" {
	run -0 --separate-stderr cachectl set k "a value" --ttl 90s
	[ -z "$stderr" ]
	run -0 rcli get "${P}k"
	assert_output "a value"
	ttl=$(rcli pttl "${P}k")
	[ "$ttl" -gt 85000 ]
	[ "$ttl" -le 90000 ]
}

@test "set without --ttl is refused (exit 64) unless CQ_DEFAULT_TTL or --no-ttl" {
	run -64 --separate-stderr cachectl set k v
	assert_equal "${stderr_lines[0]}" "cachectl: set: --ttl is required (or --no-ttl, or set CQ_DEFAULT_TTL)"
	run -0 rcli exists "${P}k"
	assert_output 0
	CQ_DEFAULT_TTL=2m run -0 cachectl set k v
	ttl=$(rcli pttl "${P}k")
	[ "$ttl" -gt 110000 ]
	[ "$ttl" -le 120000 ]
	run -0 cachectl set k2 v --no-ttl
	run -0 rcli pttl "${P}k2"
	assert_output -1
}

@test "set --jitter DUR spreads expiry over [ttl, ttl+jitter]" {
	for i in $(seq 1 20); do cachectl set "k$i" v --ttl 100s --jitter 50s; done
	read -r min max <<<"$(pttl_range k 20)"
	[ "$min" -gt 95000 ]
	[ "$max" -le 150000 ]
	# 20 uniform draws over 50 s all within 1 s of each other: chance ~1e-30
	[ $((max - min)) -gt 1000 ]
}

@test "set --jitter PCT spreads expiry by a percentage of the TTL" {
	for i in $(seq 1 20); do cachectl set "k$i" v --ttl 100s --jitter 20%; done
	read -r min max <<<"$(pttl_range k 20)"
	[ "$min" -gt 95000 ]
	[ "$max" -le 120000 ]
	[ $((max - min)) -gt 1000 ]
}

@test "set --nx writes only a missing key; exit 1 and unchanged otherwise" {
	run -0 cachectl set k first --ttl 1m --nx
	run -1 --separate-stderr cachectl set k second --ttl 1m --nx
	[ "$stderr" = "cachectl: set: not set: 'k' exists" ]
	run -0 rcli get "${P}k"
	assert_output first
}

@test "set --xx writes only an existing key" {
	run -1 --separate-stderr cachectl set k v --ttl 1m --xx
	[ "$stderr" = "cachectl: set: not set: 'k' is missing" ]
	run -0 rcli exists "${P}k"
	assert_output 0
	rcli set "${P}k" old >/dev/null
	run -0 cachectl set k new --ttl 1m --xx
	run -0 rcli get "${P}k"
	assert_output new
}

@test "set --keep-ttl keeps the key's TTL" {
	rcli set "${P}k" old PX 500000 >/dev/null
	run -0 cachectl set k new --keep-ttl
	run -0 rcli get "${P}k"
	assert_output new
	ttl=$(rcli pttl "${P}k")
	[ "$ttl" -gt 400000 ]
	[ "$ttl" -le 500000 ]
}

@test "set --keep-ttl on a missing key writes nothing (exit 1): no key without expiry" {
	run -1 --separate-stderr cachectl set k v --keep-ttl
	assert_equal "$stderr" "cachectl: set: not set: 'k' is missing (--keep-ttl writes no key without expiry; add --ttl DUR for a missing key)"
	run -0 rcli exists "${P}k"
	assert_output 0
	# CQ_DEFAULT_TTL is no fallback: only an explicit --ttl is
	CQ_DEFAULT_TTL=1h run -1 --separate-stderr cachectl set k v --keep-ttl
	run -0 rcli exists "${P}k"
	assert_output 0
	run -1 --separate-stderr cachectl set --json k v --keep-ttl
	assert_output '{"key":"k","written":false,"bytes":1}'
	run -0 rcli exists "${P}k"
	assert_output 0
	run -64 --separate-stderr cachectl set k v --keep-ttl --nx
	assert_equal "${stderr_lines[0]}" "cachectl: set: --keep-ttl and --nx exclude each other (a missing key has no TTL to keep)"
	run -64 --separate-stderr cachectl set k v --keep-ttl --no-ttl
	run -64 --separate-stderr cachectl set k v --ttl 1m --no-ttl
}

@test "set --keep-ttl --ttl DUR: an existing key keeps its TTL, a missing one gets DUR" {
	rcli set "${P}old" x PX 500000 >/dev/null
	run -0 --separate-stderr cachectl set --json old new --keep-ttl --ttl 90s
	assert_output '{"key":"old","written":true,"bytes":3}'
	[ "$(rcli get "${P}old")" = new ]
	ttl=$(rcli pttl "${P}old")
	[ "$ttl" -gt 400000 ]
	[ "$ttl" -le 500000 ]
	run -0 --separate-stderr cachectl set --json fresh v --keep-ttl --ttl 90s
	assert_output '{"key":"fresh","written":true,"bytes":1,"ttl_ms":90000}'
	[ "$(rcli get "${P}fresh")" = v ]
	ttl=$(rcli pttl "${P}fresh")
	[ "$ttl" -gt 85000 ]
	[ "$ttl" -le 90000 ]
	# with --xx a missing key stays missing, --ttl or not
	run -1 --separate-stderr cachectl set gone v --keep-ttl --ttl 90s --xx
	assert_equal "$stderr" "cachectl: set: not set: 'gone' is missing"
	run -0 rcli exists "${P}gone"
	assert_output 0
}

@test "set --keep-ttl never sends a SET that could create a key without expiry (seen by MONITOR)" {
	# atomic by construction: a SET with KEEPTTL also has XX (it cannot
	# create a key), and the SET that may create one has NX and PX; no
	# check-then-write in between that another writer could race
	local hp mon
	hp=$(hostport)
	# redis-cli itself in the background (not the rcli function's
	# subshell), so that kill reaches it
	redis-cli --no-auth-warning -h "${hp%:*}" -p "${hp##*:}" monitor >"$TMP/mon" &
	mon=$!
	wait_for 5 grep -q OK "$TMP/mon"
	local rc=0
	{ cachectl set -q k v --keep-ttl; [ $? -eq 1 ]; } &&
		cachectl set -q k v --keep-ttl --ttl 1m &&
		cachectl set -q k w --keep-ttl --ttl 1m &&
		cachectl set -q k x --keep-ttl || rc=$?
	sleep 0.2
	kill "$mon"
	wait "$mon" || true
	[ "$rc" -eq 0 ]
	grep -F "\"$P" "$TMP/mon" | grep -i '"set"' >"$TMP/sets"
	cat "$TMP/sets"
	[ "$(wc -l <"$TMP/sets")" -eq 5 ]	# XX, XX then NX, XX, XX
	! grep -i '"keepttl"' "$TMP/sets" | grep -qiv '"xx"' || false
	! grep -iv '"keepttl"' "$TMP/sets" | grep -qiv '"nx"' || false
	! grep -iv '"keepttl"' "$TMP/sets" | grep -qiv '"px"' || false
	[ "$(rcli get "${P}k")" = x ]
	ttl=$(rcli pttl "${P}k")
	[ "$ttl" -gt 0 ]
	[ "$ttl" -le 60000 ]
}

@test "set reads a binary value from stdin byte for byte" {
	printf 'x\0y\n\tz\377\n\n' >"$TMP/want"
	cachectl set bin - --ttl 1m <"$TMP/want"
	cachectl get -n bin >"$TMP/got"
	cmp "$TMP/want" "$TMP/got"
	# no VALUE means stdin too
	printf 'v2' | cachectl set bin --ttl 1m
	run -0 cachectl get bin
	assert_output v2
}

@test "set refuses a value over --max-size with exit 65 and writes nothing" {
	run -65 --separate-stderr cachectl set k 123456 --ttl 1m --max-size 5
	[ "$stderr" = "cachectl: set: value larger than --max-size (5 bytes)" ]
	head -c 2048 /dev/zero >"$TMP/in"
	run -65 --separate-stderr cachectl set k --ttl 1m --max-size 1k <"$TMP/in"
	[[ "$stderr" == *"larger than --max-size (1024 bytes)"* ]]
	run -0 rcli exists "${P}k"
	assert_output 0
	run -0 cachectl set k 12345 --ttl 1m --max-size 5
}

@test "set refuses a value over the 64M default" {
	run -65 --separate-stderr bash -c 'head -c 67108865 /dev/zero | cachectl set huge --ttl 1m'
	[[ "$stderr" == *"larger than --max-size (67108864 bytes)"* ]]
	run -0 rcli exists "${P}huge"
	assert_output 0
}

@test "set --tag records the key in each tag's set, which outlives it" {
	run -0 cachectl set k v --ttl 100s --tag red --tag blue
	run -0 rcli smembers "${P}cq:tag:red"
	assert_output "${P}k"
	run -0 rcli smembers "${P}cq:tag:blue"
	assert_output "${P}k"
	t=$(rcli pttl "${P}cq:tag:red")
	[ "$t" -gt 95000 ]
	[ "$t" -le 100000 ]
	# a longer-lived key stretches the set's TTL, a shorter one never cuts it
	cachectl set k2 v --ttl 300s --tag red
	cachectl set k3 v --ttl 10s --tag red
	t=$(rcli pttl "${P}cq:tag:red")
	[ "$t" -gt 290000 ]
	run -0 rcli scard "${P}cq:tag:red"
	assert_output 3
	# a key without TTL makes the set persistent
	cachectl set k4 v --no-ttl --tag red
	run -0 rcli pttl "${P}cq:tag:red"
	assert_output -1
}

@test "set --tag is not recorded when --nx did not write" {
	rcli set "${P}k" v >/dev/null
	run -1 cachectl set k v2 --ttl 1m --nx --tag t
	run -0 rcli exists "${P}cq:tag:t"
	assert_output 0
}

@test "set --tag onto a tag key of the wrong type exits 65" {
	rcli set "${P}cq:tag:t" notaset >/dev/null
	run -65 --separate-stderr cachectl set k v --ttl 1m --tag t
	[ "$stderr" = "cachectl: set: tag 't': its key holds something other than a set" ]
}

@test "set --ns writes under the namespace's generation" {
	run -0 cachectl set --ns users u1 alice --ttl 1m
	gen=$(rcli get "${P}cq:ns:users")
	[[ "$gen" =~ ^[0-9]+$ ]]
	run -0 rcli get "${P}ns:users:$gen:u1"
	assert_output alice
	# the generation key is the one key without a TTL
	run -0 rcli pttl "${P}cq:ns:users"
	assert_output -1
}

@test "set over a key of another type replaces it (SET semantics)" {
	rcli lpush "${P}l" x >/dev/null
	run -0 cachectl set l v --ttl 1m
	run -0 rcli type "${P}l"
	assert_output string
}

@test "set --json prints its record: key, written, bytes, ttl_ms" {
	k='we"ird\ k é'
	run -0 --separate-stderr cachectl set --json --ttl 90s "$k" "a value"
	[ -z "$stderr" ]
	[ "${#lines[@]}" = 1 ]
	[ "$(jq -r .key <<<"$output")" = "$k" ]
	[ "$(jq -c '[.written, .bytes]' <<<"$output")" = '[true,7]' ]
	ttl=$(jq -r .ttl_ms <<<"$output")
	[ "$ttl" = 90000 ]
	[ "$(rcli get "${P}$k")" = "a value" ]
	pttl=$(rcli pttl "${P}$k")
	[ "$pttl" -gt 85000 ]
	[ "$pttl" -le 90000 ]
	# not written: written false, no ttl_ms, exit 1 as without --json
	run -1 --separate-stderr cachectl set --json --nx --ttl 90s "$k" other
	assert_output "{\"key\":\"we\\\"ird\\\\ k é\",\"written\":false,\"bytes\":5}"
	[ "$(rcli get "${P}$k")" = "a value" ]
	# --no-ttl: ttl_ms null; --keep-ttl: no ttl_ms (the key kept its own)
	run -0 cachectl set --json --no-ttl n v
	assert_output '{"key":"n","written":true,"bytes":1,"ttl_ms":null}'
	[ "$(rcli pttl "${P}n")" = -1 ]
	run -0 cachectl set --json --keep-ttl "$k" v2
	[ "$(jq -c . <<<"$output")" = "$(jq -cn --arg k "$k" '{key:$k,written:true,bytes:2}')" ]
	[ "$(rcli pttl "${P}$k")" -gt 80000 ]
	# a key that is not UTF-8 comes back as key_base64
	run -0 cachectl set --json --ttl 1m "$(printf 'b\xff')" v
	assert_output '{"key_base64":"Yv8=","written":true,"bytes":1,"ttl_ms":60000}'
}

@test "set to an unreachable server exits 69" {
	run -69 --separate-stderr cachectl set --redis redis://127.0.0.1:1 k v --ttl 1m
	[[ "$stderr" == *"cannot connect to Redis at 127.0.0.1:1"* ]]
}

@test "set with a wrong password exits 77 and never prints the password" {
	ACL_USER="cq_set_$$_$RANDOM"
	rcli ACL SETUSER "$ACL_USER" on ">Right-$RANDOM" '~*' '+@all' >/dev/null
	run -77 --separate-stderr cachectl set --redis "redis://$ACL_USER:Wr0ngPassw0rd@$(hostport)/0" k v --ttl 1m
	[[ "$stderr" != *"Wr0ngPassw0rd"* ]]
	[[ "$stderr" == *"refused"* ]]
}

@test "set usage errors exit 64" {
	run -64 cachectl set --ttl 1m
	run -64 --separate-stderr cachectl set k v --ttl 1m --nx --xx
	[[ "$stderr" == *"--nx and --xx exclude each other"* ]]
	run -64 --separate-stderr cachectl set k v --ttl 1m --no-ttl
	[[ "$stderr" == *"--ttl conflicts"* ]]
	run -64 --separate-stderr cachectl set k v --ttl soon
	[[ "$stderr" == *"--ttl: bad duration 'soon'"* ]]
	run -64 --separate-stderr cachectl set k v --ttl 0
	run -64 --separate-stderr cachectl set k v --ttl 1m --jitter 150%
	[[ "$stderr" == *"--jitter: bad value '150%'"* ]]
	run -64 cachectl set k v --ttl 1m --max-size lots
	run -64 cachectl set k v extra --ttl 1m
	run -64 cachectl set "" v --ttl 1m
	run -64 cachectl set k v --ttl 1m --tag ""
	run -64 --separate-stderr cachectl set k v --ttl 1m --ns "a:b"
	[[ "$stderr" == *"bad namespace 'a:b'"* ]]
	run -0 rcli exists "${P}k"
	assert_output 0
}
