#!/usr/bin/env bats
# A failover behind sentinels with a password of their own
# (CQ_SENTINEL_PASSWORD): the master is found again through them.  A
# private master, replica and 3 sentinels (scripts/sandbox start-sentinel),
# then given a password; counted with redis-cli on the master they name.

bats_require_minimum_version 1.5.0
load fault_helper
load ../sentinel_helper

setup_file() {
	sentinel_start || return 1
	export SPW="Sp-$RANDOM$RANDOM-s3nt"
	sentinel_protect "$SPW"
}

per_test_teardown() { :; }

# The master the sentinels name, asked with their password.
mport() { REDISCLI_AUTH=$SPW master_port; }
# key $1 of this test is on the master (warm's progress, in one lookup)
master_has() { [ "$(on "$(mport)" EXISTS "$P$1")" = 1 ]; }
# the sentinels name a master other than port $1
moved_from() { local m; m=$(mport) && [ "$m" != "$1" ]; }

@test "the master lost during warm behind sentinels with a password: warm carries on with the one they promote, every line written once" {
	local n=60000 old new rc=0
	export CQ_SENTINEL_PASSWORD=$SPW
	seq 1 $n | awk '{ print "w" $1 "\tv" $1 }' >"$TMP/in"
	cachectl warm --ttl 1h --rate 20000 "$TMP/in" 2>"$TMP/err" &
	BGPID=$!
	wait_for 10 master_has w5000
	old=$(mport)
	on "$old" SHUTDOWN NOSAVE NOW >/dev/null 2>&1 || true
	wait "$BGPID" || rc=$?
	BGPID=
	[ "$rc" -eq 0 ] || { cat "$TMP/err"; false; }
	wait_for 10 moved_from "$old"
	new=$(mport)
	note "master $old shut down, $new took over; $(cat "$TMP/err")"
	[[ $(cat "$TMP/err") == "warmed $n keys in "*" (0 skipped, 0 failed)" ]]
	[ "$(count_on "$new")" -eq $n ]
	run -0 --separate-stderr cachectl get "w$n"
	assert_output "v$n"
	[[ $stderr != *"$SPW"* ]]
}
