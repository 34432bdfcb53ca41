#!/usr/bin/env bats
# Sentinels with a password of their own (CQ_SENTINEL_PASSWORD,
# --sentinel-password-file, CQ_SENTINEL_USER): the suite's private master,
# replica and 3 sentinels (scripts/sandbox start-sentinel), then logins
# set on the sentinels; the sentinels also watch 'cqlocked', a master with
# a password that is not theirs (requirepass), started here.  What is
# written is counted with redis-cli on the master the sentinels name.

bats_require_minimum_version 1.5.0
load test_helper
load sentinel_helper

setup_file() {
	sentinel_start || return 1
	local d=$BATS_FILE_TMPDIR/locked s i
	export SPW="Sp-$RANDOM$RANDOM-s3nt" MPW="Mp-$RANDOM$RANDOM-m4st" WPW="Wp-$RANDOM$RANDOM-w4tch"
	export LOCKED_PORT
	LOCKED_PORT=$(free_port)
	mkdir -p "$d"
	redis-server --port "$LOCKED_PORT" --bind 127.0.0.1 --requirepass "$MPW" \
		--save '' --appendonly no --daemonize yes --pidfile "$d/pid" \
		--logfile "$d/log" --dir "$d" >/dev/null || return 1
	for i in $(seq 100); do
		[[ $(redis-cli -p "$LOCKED_PORT" PING 2>/dev/null) == NOAUTH* ]] && break
		sleep 0.05
	done
	for s in $CQ_SENTINEL_PORTS; do
		redis-cli -p "$s" SENTINEL MONITOR cqlocked 127.0.0.1 "$LOCKED_PORT" 2 &&
			redis-cli -p "$s" SENTINEL SET cqlocked auth-pass "$MPW" &&
			redis-cli -p "$s" ACL SETUSER watcher on ">$WPW" -@all '+sentinel|get-master-addr-by-name' &&
			redis-cli -p "$s" ACL SETUSER pinger on ">$WPW" -@all +ping || return 1
	done >/dev/null
	sentinel_protect "$SPW"
}

teardown_file() {
	kill "$(cat "$BATS_FILE_TMPDIR/locked/pid" 2>/dev/null)" 2>/dev/null
	sentinel_stop
}

# The master the sentinels name, asked with their password.
mport() { REDISCLI_AUTH=$SPW master_port; }

# The URL of the master with a password of its own (none in it: the tests
# give it as CQ_REDIS_PASSWORD or --password-file).
locked() { echo "${CQ_REDIS_SENTINEL_URL%#*}#cqlocked"; }

# Fail if a password (or another string) shows anywhere in the last run.
refute_secret() { refute_printed "$SPW" "$MPW" "$WPW" "$@"; }

@test "sentinels that need a password nobody gave: 77 naming the sentinel and the setting; the master's refused: 77 saying so" {
	run -77 --separate-stderr cachectl get k
	assert_equal "$stderr" "cachectl: get: sentinel 127.0.0.1:$S1 needs a password (give the sentinels' password in CQ_SENTINEL_PASSWORD or --sentinel-password-file)"
	CQ_REDIS_PASSWORD=$MPW run -77 --separate-stderr cachectl set k v --ttl 1m --redis "$(locked)"
	assert_equal "$stderr" "cachectl: set: sentinel 127.0.0.1:$S1 needs a password and refused the master's (give the sentinels' own in CQ_SENTINEL_PASSWORD or --sentinel-password-file)"
	refute_secret
}

@test "CQ_SENTINEL_PASSWORD: set and get through sentinels with a password, to a master with none" {
	export CQ_SENTINEL_PASSWORD=$SPW
	run -0 --separate-stderr cachectl set k 'behind locked sentinels' --ttl 1h
	refute_secret
	run -0 --separate-stderr cachectl get k
	assert_output 'behind locked sentinels'
	refute_secret
	run -0 on "$(mport)" GET "${P}k"
	assert_output 'behind locked sentinels'
}

@test "--sentinel-password-file or CQ_SENTINEL_PASSWORD_FILE, with a master whose password is another (--password-file, CQ_REDIS_PASSWORD)" {
	printf '%s\n' "$SPW" >"$TMP/spw"
	printf '%s\n' "$MPW" >"$TMP/mpw"
	run -0 --separate-stderr cachectl set k locked-v --ttl 1h --redis "$(locked)" \
		--sentinel-password-file "$TMP/spw" --password-file "$TMP/mpw"
	refute_secret
	run -0 env REDISCLI_AUTH="$MPW" redis-cli -p "$LOCKED_PORT" --raw GET "${P}k"
	assert_output locked-v
	run -0 --separate-stderr env CQ_SENTINEL_PASSWORD_FILE="$TMP/spw" CQ_REDIS_PASSWORD="$MPW" \
		cachectl get k --redis "$(locked)"
	assert_output locked-v
	refute_secret
	# the sentinels let us in, the master wants its own password
	run -77 --separate-stderr cachectl get k --redis "$(locked)" --sentinel-password-file "$TMP/spw"
	assert_equal "$stderr" "cachectl: get: Redis at 127.0.0.1:$LOCKED_PORT needs a password (put it in the URL, CQ_REDIS_PASSWORD or --password-file)"
	run -64 --separate-stderr cachectl get k --sentinel-password-file "$TMP/none"
	assert_equal "$stderr" "cachectl: get: cannot read sentinel password file '$TMP/none': No such file or directory"
}

@test "a wrong sentinel password is 77 naming the sentinel, never printed (stderr, --json, cqstat); a sentinel that refuses is passed for the next" {
	local d1 bad="Wrong-$SPW"
	read -r d1 _ <<<"$CQ_SENTINEL_DATA_PORTS"
	export CQ_SENTINEL_PASSWORD=$bad
	# refused by every sentinel: the first is named
	run -77 --separate-stderr cachectl get k
	assert_equal "$stderr" "cachectl: get: sentinel 127.0.0.1:$S1 refused the password of CQ_SENTINEL_PASSWORD: wrong user name or password"
	refute_secret "$bad"
	run -77 --separate-stderr cachectl get --json k
	refute_secret "$bad"
	run -77 --separate-stderr cqstat --json
	[[ $stderr == *"sentinel 127.0.0.1:$S1 refused the password of CQ_SENTINEL_PASSWORD"* ]]
	refute_secret "$bad"
	printf '%s\n' "$bad" >"$TMP/bad"
	run -77 --separate-stderr env -u CQ_SENTINEL_PASSWORD cachectl get k --sentinel-password-file "$TMP/bad"
	assert_equal "$stderr" "cachectl: get: sentinel 127.0.0.1:$S1 refused the password of '$TMP/bad': wrong user name or password"
	refute_secret "$bad"
	# a server without a password refuses one; the sentinel after it answers
	export CQ_SENTINEL_PASSWORD=$SPW
	run -77 --separate-stderr cachectl get k --redis "redis-sentinel://127.0.0.1:$d1#$CQ_SENTINEL_MASTER"
	assert_equal "$stderr" "cachectl: get: sentinel 127.0.0.1:$d1 refused the password of CQ_SENTINEL_PASSWORD: it has no password set"
	run -0 --separate-stderr cachectl set k passed --ttl 1m --redis "redis-sentinel://127.0.0.1:$d1,127.0.0.1:$S1#$CQ_SENTINEL_MASTER"
	run -0 on "$(mport)" GET "${P}k"
	assert_output passed
}

@test "CQ_SENTINEL_USER: a sentinel ACL user; a wrong one or one not allowed to ask is 77, one without a password 64" {
	export CQ_SENTINEL_USER=watcher CQ_SENTINEL_PASSWORD=$WPW
	run -0 --separate-stderr cachectl set k by-watcher --ttl 1m
	run -0 on "$(mport)" GET "${P}k"
	assert_output by-watcher
	CQ_SENTINEL_USER=nosuch run -77 --separate-stderr cachectl get k
	assert_equal "$stderr" "cachectl: get: sentinel 127.0.0.1:$S1 refused user 'nosuch' (CQ_SENTINEL_USER) with the password of CQ_SENTINEL_PASSWORD: wrong user name or password"
	refute_secret
	CQ_SENTINEL_USER=pinger run -77 --separate-stderr cachectl get k
	assert_equal "$stderr" "cachectl: get: sentinel 127.0.0.1:$S1: permission denied: NOPERM this user has no permissions to run the 'sentinel|get-master-addr-by-name' command"
	run -64 --separate-stderr env -u CQ_SENTINEL_PASSWORD cachectl get k
	assert_equal "$stderr" "cachectl: get: CQ_SENTINEL_USER needs a sentinel password (CQ_SENTINEL_PASSWORD or --sentinel-password-file)"
}

@test "qctl --backend list and stream, and cqstat, through sentinels with a password" {
	export CQ_SENTINEL_PASSWORD=$SPW
	run -0 --separate-stderr qctl enqueue --backend list "$Q" one two
	refute_secret
	run -0 on "$(mport)" LLEN "$P$Q"
	assert_output 2
	run -0 --separate-stderr qctl consume --backend list --until-empty "$Q"
	assert_output "$(printf 'one\ntwo')"
	run -0 qctl declare --backend stream "$Q.s"
	run -0 --separate-stderr qctl enqueue --backend stream "$Q.s" three
	run -0 on "$(mport)" XLEN "$P$Q.s"
	assert_output 1
	run -0 --separate-stderr cqstat --json -Q "list:$Q" -Q "stream:$Q.s"
	jq -e '.redis.up' <<<"$output" >/dev/null
	refute_secret
}

@test "the sentinel login is never printed (--help) and commands cq runs get it only with --pass-env" {
	local p
	export CQ_SENTINEL_USER=watcher CQ_SENTINEL_PASSWORD=$WPW
	for p in cachectl qctl cqstat; do
		run -0 --separate-stderr "$p" --help
		assert_output --partial '--sentinel-password-file F'
		refute_secret
	done
	run -0 cachectl fetch k --ttl 1m -- sh -c 'env | grep -cE "^CQ_SENTINEL_(USER|PASSWORD)=" || true'
	assert_output 0
	run -0 cachectl fetch k2 --ttl 1m --pass-env -- sh -c 'env | grep -cE "^CQ_SENTINEL_(USER|PASSWORD)=" || true'
	assert_output 2
}
