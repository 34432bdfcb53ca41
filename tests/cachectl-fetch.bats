#!/usr/bin/env bats
# cachectl fetch: cache-aside around a command; stampede protection with
# an owner-token lock; --stale; --beta (XFetch); fail-open / --fail-closed;
# the bad inputs.

bats_require_minimum_version 1.5.0
load test_helper

lock_key() { echo "${P}{${P}$1}|cq:lock"; }
meta_key() { echo "${P}{${P}$1}|cq:meta"; }

# a command that counts its runs in $TMP/runs and prints $1
counted() {
	echo "echo run >>\"\$TMP/runs\"; printf '%s' \"$1\""
}

runs() {
	[ -f "$TMP/runs" ] && wc -l <"$TMP/runs" | tr -d ' ' || echo 0
}

@test "fetch on a miss runs CMD, caches its stdout, prints it; a hit does not run it" {
	run -0 --separate-stderr cachectl fetch k --ttl 1m -- sh -c "$(counted computed)"
	assert_output computed
	[ -z "$stderr" ]
	[ "$(runs)" = 1 ]
	run -0 cachectl fetch k --ttl 1m -- sh -c "$(counted again)"
	assert_output computed
	[ "$(runs)" = 1 ]
	# the value is a plain string any client reads, with the TTL
	run -0 rcli get "${P}k"
	assert_output computed
	t=$(rcli pttl "${P}k")
	[ "$t" -gt 55000 ]
	[ "$t" -le 60000 ]
	run -0 rcli exists "$(lock_key k)"
	assert_output 0
}

@test "fetch passes CQ_KEY and keeps the output byte for byte" {
	cachectl fetch 'a key' --ttl 1m -- sh -c 'printf "%s\0\n\377" "$CQ_KEY"' >"$TMP/got"
	printf 'a key\0\n\377' >"$TMP/want"
	cmp "$TMP/got" "$TMP/want"
	cachectl get -n 'a key' >"$TMP/got"
	cmp "$TMP/got" "$TMP/want"
}

@test "a failing CMD: exit code and stderr pass through, nothing cached" {
	run -3 --separate-stderr cachectl fetch k --ttl 1m -- sh -c 'echo partial; echo broken >&2; exit 3'
	assert_output partial
	[ "$stderr" = broken ]
	run -0 rcli exists "${P}k"
	assert_output 0
	run -0 rcli exists "$(lock_key k)"
	assert_output 0
	# killed by a signal: 128 + signal, as a shell says
	run -143 cachectl fetch k --ttl 1m -- sh -c 'kill -TERM $$'
}

@test "20 concurrent fetches on a cold key run CMD once and all print the same" {
	for i in $(seq 1 20); do
		cachectl fetch cold --ttl 1m -- sh -c "echo run >>\"\$TMP/runs\"; sleep 0.5; printf 'value-%s' \$\$" \
			>"$TMP/out.$i" 2>"$TMP/err.$i" &
	done
	wait
	[ "$(runs)" = 1 ]
	first=$(cat "$TMP/out.1")
	[[ "$first" == value-* ]]
	for i in $(seq 1 20); do
		[ "$(cat "$TMP/out.$i")" = "$first" ]
		[ ! -s "$TMP/err.$i" ]
	done
	run -0 cachectl get cold
	assert_output "$first"
}

@test "waiting callers give up after --wait with exit 75 (lock held, no value)" {
	rcli set "$(lock_key k)" someone-else PX 60000 >/dev/null
	run -75 --separate-stderr cachectl fetch k --ttl 1m --wait 300ms -- sh -c "$(counted x)"
	[[ "$stderr" == *"waited 300ms for another caller to compute 'k'"* ]]
	[ "$(runs)" = 0 ]
	# someone else's lock is never deleted by us
	run -0 rcli get "$(lock_key k)"
	assert_output someone-else
}

@test "a waiting caller prints the value the lock holder stores" {
	rcli set "$(lock_key k)" someone-else PX 60000 >/dev/null
	( sleep 0.4; rcli set "${P}k" from-holder PX 60000 >/dev/null ) &
	run -0 cachectl fetch k --ttl 1m --wait 5s -- sh -c "$(counted mine)"
	assert_output from-holder
	[ "$(runs)" = 0 ]
	wait
}

@test "when the lock holder gives up (lock gone, no value) a waiter computes" {
	rcli set "$(lock_key k)" someone-else PX 300 >/dev/null
	run -0 cachectl fetch k --ttl 1m --wait 5s -- sh -c "$(counted mine)"
	assert_output mine
	[ "$(runs)" = 1 ]
}

@test "--lock-ttl sets the lock's lifetime while CMD runs" {
	cachectl fetch k --ttl 1m --lock-ttl 20s -- sh -c 'sleep 0.5; echo v' >/dev/null &
	for _ in $(seq 1 50); do
		t=$(rcli pttl "$(lock_key k)")
		[ "$t" -gt 0 ] && break
		sleep 0.01
	done
	[ "$t" -gt 15000 ]
	[ "$t" -le 20000 ]
	wait
}

@test "the lock is renewed while a CMD slower than --lock-ttl runs" {
	cachectl fetch slow --ttl 1m --lock-ttl 300ms -- sh -c "$(counted first); sleep 1.2" >"$TMP/out1" &
	for _ in $(seq 1 100); do
		[ "$(rcli exists "$(lock_key slow)")" = 1 ] && break
		sleep 0.01
	done
	sleep 0.6
	# past two lock TTLs: still held, so this caller waits instead of computing
	run -0 rcli exists "$(lock_key slow)"
	assert_output 1
	run -0 cachectl fetch slow --ttl 1m --lock-ttl 300ms --wait 5s -- sh -c "$(counted second)"
	assert_output first
	wait
	[ "$(runs)" = 1 ]
	[ "$(cat "$TMP/out1")" = first ]
}

@test "--stale serves the stale value at once and refreshes it in the background" {
	cachectl fetch k --ttl 1s --stale 1m -- sh -c "$(counted old)" >/dev/null
	run -0 rcli hget "$(meta_key k)" expiry
	[[ "$output" =~ ^[0-9]+$ ]]
	sleep 1.2
	run -0 --separate-stderr cachectl fetch k --ttl 1s --stale 1m -- sh -c "sleep 0.3; $(counted new)"
	assert_output old
	for _ in $(seq 1 100); do
		[ "$(rcli get "${P}k")" = new ] && break
		sleep 0.05
	done
	run -0 rcli get "${P}k"
	assert_output new
	[ "$(runs)" = 2 ]
	# the physical TTL covers the stale window
	t=$(rcli pttl "${P}k")
	[ "$t" -gt 55000 ]
}

@test "--stale: the background refresh does not hold the caller's pipe open" {
	cachectl fetch k --ttl 1s --stale 1m -- echo old >/dev/null
	sleep 1.1
	start=$SECONDS
	out=$(cachectl fetch k --ttl 1s --stale 1m -- sh -c 'sleep 3; echo new')
	[ "$out" = old ]
	# $(...) returned before the 3 s refresh finished
	[ $((SECONDS - start)) -lt 3 ]
}

@test "--beta stores the compute time and refreshes early near expiry" {
	cachectl fetch k --ttl 2s --beta 100 -- sh -c "sleep 0.3; $(counted v)" >/dev/null
	run -0 rcli hget "$(meta_key k)" delta
	[ "$output" -ge 250 ]
	# 300 ms x beta 100 dwarfs the 2 s left: early refresh is all but certain
	for i in 1 2 3 4 5; do
		cachectl fetch k --ttl 2s --beta 100 -- sh -c "$(counted v)" >/dev/null
	done
	[ "$(runs)" -gt 1 ]
	run -0 rcli type "${P}k"
	assert_output string
}

@test "--beta with a small factor serves hits far from expiry" {
	cachectl fetch k --ttl 1h --beta 1 -- sh -c "$(counted v)" >/dev/null
	for i in 1 2 3; do
		run -0 cachectl fetch k --ttl 1h --beta 1 -- sh -c "$(counted w)"
		assert_output v
	done
	[ "$(runs)" = 1 ]
}

@test "--ns fetches in the namespace's generation" {
	run -0 cachectl fetch --ns rep k --ttl 1m -- printf one
	assert_output one
	run -0 cachectl get --ns rep k
	assert_output one
	cachectl invalidate -q --ns rep
	run -0 cachectl fetch --ns rep k --ttl 1m -- printf two
	assert_output two
}

@test "an unreachable Redis runs CMD uncached with a warning (fail-open)" {
	run -0 --separate-stderr cachectl fetch k --ttl 1m --redis redis://127.0.0.1:1 -- printf hi
	assert_output hi
	[[ "$stderr" == "cachectl: fetch: warning: cannot connect to Redis at 127.0.0.1:1"*"running the command without the cache" ]]
	run -4 --separate-stderr cachectl fetch k --ttl 1m --redis redis://127.0.0.1:1 -- sh -c 'exit 4'
}

@test "--fail-closed exits 69 without running CMD" {
	run -69 --separate-stderr cachectl fetch k --ttl 1m --fail-closed --redis redis://127.0.0.1:1 -- sh -c "$(counted x)"
	assert_output ""
	[[ "$stderr" == "cachectl: fetch: cannot connect to Redis at 127.0.0.1:1"* ]]
	[ "$(runs)" = 0 ]
}

@test "a wrong password is not failed open: exit 77, password never printed" {
	ACL_USER="cq_fetch_$$_$RANDOM"
	rcli ACL SETUSER "$ACL_USER" on ">Right-$RANDOM" '~*' '+@all' >/dev/null
	run -77 --separate-stderr cachectl fetch k --ttl 1m --redis "redis://$ACL_USER:Wr0ngPassw0rd@$(hostport)/0" -- sh -c "$(counted x)"
	[[ "$stderr" != *"Wr0ngPassw0rd"* ]]
	[ "$(runs)" = 0 ]
}

@test "fetch of a key holding a list exits 65 without running CMD" {
	rcli lpush "${P}l" x >/dev/null
	run -65 --separate-stderr cachectl fetch l --ttl 1m -- sh -c "$(counted x)"
	[[ "$stderr" == *"get 'l'"*"non-string"* ]]
	[ "$(runs)" = 0 ]
}

@test "a command that cannot be run exits 127 and leaves no lock" {
	run -127 --separate-stderr cachectl fetch k --ttl 1m -- no-such-command-cq
	[ "$stderr" = "cachectl: fetch: cannot run 'no-such-command-cq': No such file or directory" ]
	run -0 rcli exists "$(lock_key k)" "${P}k"
	assert_output 0
	printf '#!/bin/sh\necho hi\n' >"$TMP/noexec"
	chmod 644 "$TMP/noexec"
	run -126 --separate-stderr cachectl fetch k --ttl 1m -- "$TMP/noexec"
	[[ "$stderr" == *"cannot run '$TMP/noexec': Permission denied" ]]
}

@test "output over --max-size is printed but not cached" {
	run -0 --separate-stderr cachectl fetch k --ttl 1m --max-size 10 -- printf 0123456789abcdef
	assert_output 0123456789abcdef
	[[ "$stderr" == *"larger than --max-size, not cached"* ]]
	run -0 rcli exists "${P}k"
	assert_output 0
}

@test "fetch into a closed pipe: no crash, no message" {
	head -c 1000000 /dev/zero | tr '\0' x | cachectl set big --ttl 1m
	run -0 bash -c 'cachectl fetch big --ttl 1m -- true 2>"$TMP/err" | head -c1; echo "${PIPESTATUS[0]}" >"$TMP/code"'
	assert_output x
	[ "$(cat "$TMP/code")" = 74 ]
	[ ! -s "$TMP/err" ]
}

@test "fetch --track counts the miss and the hit under the prefix; so does CQ_TRACK=1" {
	run -0 --separate-stderr cachectl fetch --track k --ttl 1m -- echo hi
	assert_output hi
	assert_equal "$stderr" ""
	run -0 --separate-stderr cachectl fetch --track k --ttl 1m -- echo other
	assert_output hi
	assert_equal "$stderr" ""
	CQ_TRACK=1 cachectl fetch k2 --ttl 1m -- echo two >/dev/null
	CQ_TRACK=1 cachectl fetch k2 --ttl 1m -- echo two >/dev/null
	# without either, nothing is counted
	cachectl fetch k3 --ttl 1m -- echo three >/dev/null
	cachectl fetch k --ttl 1m -- echo hi >/dev/null
	assert_equal "$(rcli hget cq:track "misses:$P")" 2
	assert_equal "$(rcli hget cq:track "hits:$P")" 2
	rcli hdel cq:track "misses:$P" "hits:$P" >/dev/null
}

@test "the man page and the completions know every option of fetch --help" {
	opts=$(cachectl fetch --help | grep -oE -- '--[a-z][a-z-]+' | sort -u)
	[ -n "$opts" ]
	got=$(bash -c "
		source '$TOP/completions/cachectl.bash'
		COMP_WORDS=(cachectl fetch --); COMP_CWORD=2
		_cachectl
		printf '%s\n' \"\${COMPREPLY[@]}\"
	")
	# each file's common options and its fetch part only: an option that
	# another verb has does not count
	zsh=$(sed -n -e '/^common=(/,/^)/p' -e '/^_cachectl_fetch()/,/^}/p' "$TOP/completions/_cachectl")
	fish=$(grep -E "^complete -c cachectl (-s [a-z0-9] )?-l |__cachectl_verb[^']*\bfetch\b" "$TOP/completions/cachectl.fish")
	man=$(sed -n -e '/^\.SH COMMON OPTIONS/,/^\.SH VERBS/p' -e '/^\.SS fetch/,/^\.S[SH] /p' "$TOP/man/cachectl.1")
	for o in $opts; do
		grep -qx -- "$o" <<<"$got" || fail "cachectl.bash lacks $o"
		grep -q -- "$o\[\|$o}" <<<"$zsh" || fail "_cachectl lacks $o"
		grep -q -- "-l ${o#--}\b" <<<"$fish" || fail "cachectl.fish lacks $o"
		grep -q -- "${o//-/\\\\-}" <<<"$man" || fail "cachectl.1 lacks $o"
	done
}

@test "fetch usage errors exit 64" {
	run -64 --separate-stderr cachectl fetch k -- echo
	# the hint names only what fetch takes: no --no-ttl
	assert_equal "${stderr_lines[0]}" "cachectl: fetch: --ttl is required (or set CQ_DEFAULT_TTL)"
	run -64 --separate-stderr cachectl fetch k --no-ttl -- echo
	run -64 --separate-stderr cachectl fetch k --ttl 1m echo
	[[ "$stderr" == *"missing -- CMD"* ]]
	run -64 cachectl fetch k --ttl 1m --
	run -64 cachectl fetch --ttl 1m -- echo
	run -64 cachectl fetch a b --ttl 1m -- echo
	run -64 cachectl fetch k --ttl 1m --beta -1 -- echo
	run -64 cachectl fetch k --ttl 1m --wait never -- echo
	run -64 cachectl fetch k --ttl 1m --stale 0 -- echo
	run -0 cachectl fetch --help
	assert_line --index 0 'usage: cachectl fetch [OPTIONS] KEY -- CMD [ARG...]'
	[ "$(runs)" = 0 ]
}
