#!/usr/bin/env bats
# cachectl invalidate: by key, by pattern (SCAN, never KEYS), by tag, by
# namespace generation; dry runs, odd key names, and the bad inputs.

bats_require_minimum_version 1.5.0
load test_helper

calls() {
	rcli info commandstats | sed -n "s/^cmdstat_$1:calls=\([0-9]*\),.*/\1/p"
}

@test "invalidate KEY... unlinks them and says how many" {
	rcli set "${P}a" 1 >/dev/null
	rcli set "${P}b" 2 >/dev/null
	rcli set "${P}c" 3 >/dev/null
	run -0 --separate-stderr cachectl invalidate a b missing
	[[ "$stderr" =~ ^invalidated\ 2\ keys\ in\ [0-9]+\.[0-9]{2}s$ ]]
	run -0 rcli exists "${P}a" "${P}b" "${P}c"
	assert_output 1
}

@test "invalidate of keys that do not exist exits 1" {
	run -1 --separate-stderr cachectl invalidate nope nada
	[[ "$stderr" == "invalidated 0 keys in "* ]]
	run -1 --separate-stderr cachectl invalidate -q nope
	[ -z "$stderr" ]
}

@test "invalidate --pattern deletes the matching keys under the prefix only" {
	printf 'user:1\ta\nuser:2\tb\nuser:3\tc\norder:1\td\n' | cachectl warm -q --ttl 1m
	rcli set "other$P" x EX 60 >/dev/null
	rcli set "other${P}user:9" x EX 60 >/dev/null
	run -0 --separate-stderr cachectl invalidate --pattern 'user:*'
	[[ "$stderr" == "invalidated 3 keys in "* ]]
	run -0 cachectl get order:1
	run -0 rcli exists "${P}user:1" "${P}user:2" "other${P}user:9"
	assert_output 1
	rcli del "other$P" "other${P}user:9" >/dev/null
}

@test "invalidate --pattern uses SCAN and UNLINK, never KEYS or DEL" {
	for i in $(seq 1 50); do printf 'k%d\tv\n' "$i"; done | cachectl warm -q --ttl 1m
	keys=$(calls keys) del=$(calls del) scan=$(calls scan)
	run -0 cachectl invalidate -q --pattern 'k*' --count 10
	[ "$(calls keys)" = "$keys" ]
	[ "$(calls del)" = "$del" ]
	[ "$(calls scan)" -gt "${scan:-0}" ]
	run -0 rcli exists "${P}k1" "${P}k50"
	assert_output 0
}

@test "invalidate --pattern walks many batches (small --count) to the end" {
	seq 1 3000 | awk '{printf "many:%d\tv\n", $1}' | cachectl warm -q --ttl 1m
	run -0 --separate-stderr cachectl invalidate --pattern 'many:*' --count 50
	[[ "$stderr" == "invalidated 3000 keys in "* ]]
	run -0 rcli eval "return #redis.call('SCAN', '0', 'MATCH', ARGV[1], 'COUNT', 100000)[2]" 0 "${P}many:*"
	assert_output 0
}

@test "invalidate --pattern handles keys with spaces, newlines and binary bytes" {
	printf 'odd key\0v\0odd\nkey\0v\0odd\377\001key\0v\0plain\0v\0' | cachectl warm -q -0 --ttl 1m
	run -0 --separate-stderr cachectl invalidate --pattern 'odd*'
	[[ "$stderr" == "invalidated 3 keys in "* ]]
	run -0 cachectl get plain
	run -0 rcli eval "return #redis.call('SCAN', '0', 'MATCH', ARGV[1], 'COUNT', 100000)[2]" 0 "${P}odd*"
	assert_output 0
}

@test "invalidate --pattern --dry-run lists keys (without the prefix) and deletes nothing" {
	printf 'a:1\tx\na:2\tx\nb:1\tx\n' | cachectl warm -q --ttl 1m
	run -0 --separate-stderr cachectl invalidate --pattern 'a:*' --dry-run
	[ "$(printf '%s\n' "${lines[@]}" | sort | tr '\n' ' ')" = "a:1 a:2 " ]
	[[ "$stderr" == "would invalidate 2 keys in "* ]]
	run -0 rcli exists "${P}a:1" "${P}a:2"
	assert_output 2
}

@test "invalidate --dry-run -0 separates keys with NUL (keys with newlines)" {
	printf 'n\nl\0v\0' | cachectl warm -q -0 --ttl 1m
	cachectl invalidate -q --pattern 'n*' --dry-run -0 >"$TMP/out"
	printf 'n\nl\0' >"$TMP/want"
	cmp "$TMP/out" "$TMP/want"
}

@test "the man page's look-before-deleting example prints nothing when nothing matches (xargs -r)" {
	local cmd
	cmd=$(grep 'dry.*| xargs' "$TOP/man/cachectl.1" | sed -e 's/\\-/-/g' -e "s/\\\\(aq/'/g")
	[[ "$cmd" == "cachectl invalidate --pattern 'tmp:*' --dry-run -0 | xargs "* ]]
	# nothing under tmp:* yet: no output at all (xargs without -r runs
	# echo once anyway and prints an empty line, a key that is not there)
	run -0 --separate-stderr bash -c "$cmd | wc -c"
	assert_output 0
	cachectl set -q --ttl 1m 'tmp:a b' v
	run -0 --separate-stderr bash -c "$cmd"
	assert_output "tmp:a b"
	run -0 rcli exists "${P}tmp:a b"
	assert_output 1
}

@test "invalidate --pattern escapes glob characters in the prefix" {
	export CQ_PREFIX="${P}[x]*:"
	cachectl set k v --ttl 1m
	# a key the unescaped prefix glob would match, outside our prefix
	rcli set "${P}x-other:k" v EX 60 >/dev/null
	run -0 --separate-stderr cachectl invalidate --pattern '*'
	[[ "$stderr" == "invalidated 1 key in "* ]]
	run -0 rcli exists "${P}x-other:k"
	assert_output 1
	rcli del "${P}x-other:k" >/dev/null
}

@test "invalidate --pattern that matches nothing exits 1" {
	run -1 --separate-stderr cachectl invalidate --pattern 'nothing:*'
	[[ "$stderr" == "invalidated 0 keys in "* ]]
}

@test "invalidate --rate throttles but still deletes everything" {
	seq 1 40 | awk '{printf "r:%d\tv\n", $1}' | cachectl warm -q --ttl 1m
	run -0 --separate-stderr cachectl invalidate --pattern 'r:*' --rate 400
	[[ "$stderr" == "invalidated 40 keys in "* ]]
}

@test "invalidate --pattern shows progress on a terminal, not elsewhere" {
	seq 1 40 | awk '{printf "r:%d\tv\n", $1}' | cachectl warm -q --ttl 1m
	run -0 script -qec "cachectl invalidate --pattern 'r:*' --rate 100" /dev/null
	# the counts a line shows depend on how SCAN spreads the 40 keys over
	# its pages in a shared keyspace
	[[ "$output" =~ "invalidating: "[0-9]+" keys scanned, "[0-9]+" deleted, " ]]
	[[ "$output" == *"invalidated 40 keys in "* ]]
	seq 1 40 | awk '{printf "r:%d\tv\n", $1}' | cachectl warm -q --ttl 1m
	run -0 --separate-stderr cachectl invalidate --pattern 'r:*' --rate 100
	[[ "$stderr" == "invalidated 40 keys in "* ]]
	[ "${#stderr_lines[@]}" = 1 ]
}

@test "invalidate --dry-run into a closed pipe: no crash, no message" {
	# more than a pipe holds (the list is printed without the prefix), so
	# that the listing outlives head whatever the scheduling
	seq 1 20000 | awk '{printf "c:%d\tv\n", $1}' | cachectl warm -q --ttl 1m
	run -0 bash -c 'cachectl invalidate --pattern "c:*" --dry-run 2>"$TMP/err" | head -c1; echo "${PIPESTATUS[0]}" >"$TMP/code"'
	assert_output c
	[ "$(cat "$TMP/code")" = 74 ]
	[ ! -s "$TMP/err" ]
	run -0 rcli exists "${P}c:1"
	assert_output 1
}

@test "invalidate --tag deletes the tagged keys and the tag set" {
	cachectl set a 1 --ttl 1m --tag news
	cachectl set b 2 --ttl 1m --tag news --tag sport
	cachectl set c 3 --ttl 1m --tag sport
	run -0 --separate-stderr cachectl invalidate --tag news
	[[ "$stderr" == "invalidated 2 keys in "* ]]
	run -1 cachectl get a
	run -1 cachectl get b
	run -0 cachectl get c
	run -0 rcli exists "${P}cq:tag:news"
	assert_output 0
}

@test "invalidate --tag --dry-run lists the keys and keeps them" {
	cachectl set a 1 --ttl 1m --tag t
	cachectl set b 2 --ttl 1m --tag t
	run -0 --separate-stderr cachectl invalidate --tag t --dry-run
	[ "$(printf '%s\n' "${lines[@]}" | sort | tr '\n' ' ')" = "a b " ]
	run -0 rcli scard "${P}cq:tag:t"
	assert_output 2
}

@test "invalidate --tag in batches (large tag set, small --count)" {
	seq 1 700 | awk '{printf "t:%d\tv\n", $1}' | cachectl warm -q --ttl 1m --tag big
	run -0 --separate-stderr cachectl invalidate --tag big --count 50
	[[ "$stderr" == "invalidated 700 keys in "* ]]
	run -0 rcli exists "${P}t:1" "${P}t:700" "${P}cq:tag:big"
	assert_output 0
}

@test "invalidate --tag of an unknown tag exits 1" {
	run -1 cachectl invalidate -q --tag none
}

@test "invalidate --tag whose key is not a set exits 65" {
	rcli set "${P}cq:tag:t" x >/dev/null
	run -65 --separate-stderr cachectl invalidate --tag t
	[[ "$stderr" == *"holds something other than a set"* ]]
}

@test "invalidate --ns bumps the generation: every key unreachable in O(1)" {
	cachectl set --ns users u1 a --ttl 1m
	cachectl set --ns users u2 b --ttl 1m
	gen=$(rcli get "${P}cq:ns:users")
	run -0 --separate-stderr cachectl invalidate --ns users
	[ "$stderr" = "cachectl: invalidate: namespace 'users' moved to generation $((gen + 1))" ]
	run -1 cachectl get --ns users u1
	run -1 cachectl get --ns users u2
	# the old keys are still there, ageing out by their TTL
	run -0 rcli exists "${P}ns:users:$gen:u1"
	assert_output 1
	cachectl set --ns users u1 new --ttl 1m
	run -0 cachectl get --ns users u1
	assert_output new
}

@test "invalidate --ns --dry-run shows the generation and changes nothing" {
	cachectl set --ns users u1 a --ttl 1m
	gen=$(rcli get "${P}cq:ns:users")
	run -0 --separate-stderr cachectl invalidate --ns users --dry-run
	[ "$stderr" = "cachectl: invalidate: namespace 'users' is at generation $gen" ]
	run -0 cachectl get --ns users u1
	run -0 --separate-stderr cachectl invalidate --ns users --dry-run --json
	[ "$(jq -c '[.matched, .generation]' <<<"$output")" = "[0,\"$gen\"]" ]
	# a namespace never used has no generation yet: null, not ""
	run -0 --separate-stderr cachectl invalidate --ns fresh --dry-run --json
	[ "$(jq -c '.generation' <<<"$output")" = null ]
	[ "$(rcli exists "${P}cq:ns:fresh")" = 0 ]
}

@test "a lost generation key never brings old keys back" {
	cachectl set --ns users u1 old --ttl 1m
	rcli del "${P}cq:ns:users" >/dev/null
	run -1 cachectl get --ns users u1
	cachectl invalidate -q --ns users
	run -1 cachectl get --ns users u1
	cachectl set --ns users u1 new --ttl 1m
	run -0 cachectl get --ns users u1
	assert_output new
}

@test "invalidate --ns with KEY or --pattern works inside the namespace" {
	cachectl set --ns users u1 a --ttl 1m
	cachectl set --ns users u2 b --ttl 1m
	cachectl set --ns users x1 c --ttl 1m
	run -0 cachectl invalidate -q --ns users u1
	run -1 cachectl get --ns users u1
	run -0 --separate-stderr cachectl invalidate --ns users --pattern 'u*' --dry-run
	assert_output u2
	run -0 cachectl invalidate -q --ns users --pattern 'u*'
	run -1 cachectl get --ns users u2
	run -0 cachectl get --ns users x1
}

@test "invalidate --ns on a generation key holding garbage exits 65" {
	rcli set "${P}cq:ns:bad" garbage >/dev/null
	run -65 --separate-stderr cachectl invalidate --ns bad
	[[ "$stderr" == *"namespace 'bad'"*"not a generation"* ]]
}

@test "invalidate KEY also drops fetch's metadata beside it" {
	cachectl fetch k --ttl 1m --stale 1m -- echo v
	run -0 rcli exists "${P}{${P}k}|cq:meta"
	assert_output 1
	run -0 cachectl invalidate -q k
	run -0 rcli exists "${P}k" "${P}{${P}k}|cq:meta"
	assert_output 0
}

@test "invalidate --json prints the summary as JSON on stdout" {
	rcli set "${P}a" 1 >/dev/null
	run -0 --separate-stderr cachectl invalidate --json a
	[[ "$output" =~ ^\{\"invalidated\":1,\"scanned\":0,\"seconds\":[0-9.]+\}$ ]]
	[ -z "$stderr" ]
}

@test "invalidate on an unreachable server exits 69" {
	run -69 --separate-stderr cachectl invalidate --redis redis://127.0.0.1:1 --pattern '*'
	[[ "$stderr" == *"cannot connect to Redis at 127.0.0.1:1"* ]]
}

@test "invalidate with a wrong password exits 77 and never prints it" {
	ACL_USER="cq_inv_$$_$RANDOM"
	rcli ACL SETUSER "$ACL_USER" on ">Right-$RANDOM" '~*' '+@all' >/dev/null
	run -77 --separate-stderr cachectl invalidate --redis "redis://$ACL_USER:Wr0ngPassw0rd@$(hostport)/0" k
	[[ "$stderr" != *"Wr0ngPassw0rd"* ]]
}

@test "invalidate without UNLINK permission exits 77" {
	ACL_USER="cq_inv_$$_$RANDOM"
	pw="Pw-$RANDOM$RANDOM"
	rcli ACL SETUSER "$ACL_USER" on ">$pw" '~*' '+@all' '-unlink' >/dev/null
	rcli set "${P}a" 1 >/dev/null
	run -77 --separate-stderr cachectl invalidate --redis "redis://$ACL_USER:$pw@$(hostport)/0" a
	[[ "$stderr" == *"permission"* ]]
	[[ "$stderr" != *"$pw"* ]]
}

@test "invalidate usage errors exit 64" {
	run -64 --separate-stderr cachectl invalidate
	[[ "$stderr" == *"missing KEY"* ]]
	run -64 cachectl invalidate a --pattern 'x*'
	run -64 cachectl invalidate --pattern 'x*' --tag t
	run -64 cachectl invalidate --tag t --ns users
	run -64 cachectl invalidate --pattern ''
	run -64 cachectl invalidate --pattern 'x*' --rate 0
	run -64 cachectl invalidate --pattern 'x*' --count many
}
