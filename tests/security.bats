#!/usr/bin/env bats
# Security (issue 7): no secret is ever needed in argv, and none is ever
# printed, in error messages, --json output or cqstat; a restricted Redis
# ACL user gets a clear permission error (77) outside its keys.

bats_require_minimum_version 1.5.0
load test_helper

per_test_setup() {
	local hostport=${CQ_REDIS_URL#redis://}
	HOSTPORT=${hostport%%/*}
	# a fresh ACL user per test, allowed only keys under ${P}app:
	USER_NAME="cq_sec_${BATS_TEST_NUMBER}_$$_$RANDOM"
	SECRET="Pw-$RANDOM$RANDOM-s3cret"
	admin ACL SETUSER "$USER_NAME" on ">$SECRET" "~${P}app:*" '+@all' >/dev/null
	APP="${P}app:"
	export CQ_PREFIX="$APP"
}

per_test_teardown() {
	admin ACL DELUSER "$USER_NAME" >/dev/null 2>&1 || true
}

# redis-cli as the sandbox's default user, whatever CQ_REDIS_URL the test set
admin() {
	redis-cli --no-auth-warning -h "${HOSTPORT%:*}" -p "${HOSTPORT##*:}" --raw "$@"
}

# Fail if the secret (or another string) shows anywhere in the last run.
refute_secret() { refute_printed "$SECRET" "$@"; }

@test "the password can come from the URL in CQ_REDIS_URL (nothing in argv)" {
	export CQ_REDIS_URL="redis://$USER_NAME:$SECRET@$HOSTPORT/0"
	run -0 --separate-stderr cachectl set k v --ttl 1m
	refute_secret
	run -0 --separate-stderr cachectl get k
	assert_output v
	refute_secret
	run -0 --separate-stderr cachectl get --json --ttl k
	assert_output --partial '"value":"v"'
	refute_secret
}

@test "the password can come from --password-file or CQ_PASSWORD_FILE" {
	export CQ_REDIS_URL="redis://$USER_NAME@$HOSTPORT/0"
	printf '%s\n' "$SECRET" >"$TMP/pw"
	chmod 600 "$TMP/pw"
	run -0 --separate-stderr cachectl set k from-file --ttl 1m --password-file "$TMP/pw"
	refute_secret
	run -0 --separate-stderr env CQ_PASSWORD_FILE="$TMP/pw" cachectl get k
	assert_output from-file
	refute_secret
}

@test "the password can come from CQ_REDIS_PASSWORD, which beats the URL's" {
	export CQ_REDIS_URL="redis://$USER_NAME:not-the-password@$HOSTPORT/0"
	run -0 --separate-stderr env CQ_REDIS_PASSWORD="$SECRET" cachectl set k v --ttl 1m
	refute_secret not-the-password
	run -77 --separate-stderr cachectl get k
	assert_equal "$stderr" "cachectl: get: Redis at $HOSTPORT refused the user name or password: wrong user name or password"
	refute_secret not-the-password
}

@test "a wrong password is exit 77 with a clear message that shows no password" {
	export CQ_REDIS_URL="redis://$USER_NAME:Wrong-$SECRET@$HOSTPORT/0"
	run -77 --separate-stderr cachectl get k
	assert_equal "$stderr" "cachectl: get: Redis at $HOSTPORT refused the user name or password: wrong user name or password"
	refute_secret
	run -77 --separate-stderr cachectl get --json k
	[ -z "$output" ]
	refute_secret
	run -77 --separate-stderr cachectl set k v --ttl 1m
	refute_secret
	run -77 --separate-stderr env CQ_REDIS_PASSWORD="Wrong-$SECRET" \
		CQ_REDIS_URL="redis://$USER_NAME@$HOSTPORT/0" cachectl get k
	refute_secret
}

@test "a malformed URL is shown with its password hidden, even one holding a comma" {
	for pw in "$SECRET" "se,$SECRET" "$SECRET,x" "a@b,$SECRET"; do
		run -64 --separate-stderr env CQ_REDIS_URL="redis://u:$pw@127.0.0.1:99999/0" cachectl get k
		assert_equal "$stderr" "cachectl: get: bad Redis URL 'redis://u:***@127.0.0.1:99999/0': bad port (want 1-65535)"
		refute_secret
		run -64 --separate-stderr cachectl get k --redis "redis://u:$pw@127.0.0.1:0/x"
		assert_output ''
		[[ "$stderr" == *"redis://u:***@"* ]]
		refute_secret
	done
}

@test "a password typed without its @host is hidden too (it reads as a bad port)" {
	run -64 --separate-stderr env CQ_REDIS_URL="redis://u:$SECRET" cachectl get k
	assert_equal "$stderr" "cachectl: get: bad Redis URL 'redis://u:***': bad port (want 1-65535)"
	refute_secret
	run -64 --separate-stderr qctl declare "$Q" --amqp "amqp://guest:$SECRET/%2f"
	assert_equal "$stderr" "qctl: declare: bad AMQP URL 'amqp://guest:***/%2f': bad port (want 1-65535)"
	refute_secret
	run --separate-stderr cqstat --no-cache --json --api "http://guest:$SECRET" -Q "$Q"
	refute_secret
	[[ "$output$stderr" == *"http://guest:***"* ]]
	# a port stays readable, in brackets or not
	run -64 --separate-stderr cachectl get k --redis "redis://[::1]:99999/0"
	assert_equal "$stderr" "cachectl: get: bad Redis URL 'redis://[::1]:99999/0': bad port (want 1-65535)"
}

@test "a password holding a comma works (it is not split like a URL list)" {
	admin ACL SETUSER "$USER_NAME" resetpass ">a,$SECRET" >/dev/null
	export CQ_REDIS_URL="redis://$USER_NAME:a,$SECRET@$HOSTPORT/0"
	run -0 --separate-stderr cachectl set k comma --ttl 1m
	refute_secret
	run -0 cachectl get k
	assert_output comma
}

@test "a restricted ACL user gets exit 77 and a clear message outside its keys" {
	export CQ_REDIS_URL="redis://$USER_NAME:$SECRET@$HOSTPORT/0"
	run -0 cachectl set k mine --ttl 1m
	run -77 --separate-stderr cachectl --prefix "${P}other:" set k theirs --ttl 1m
	[[ "$stderr" == "cachectl: set: "*"permission denied: NOPERM this user has no permissions to access one of the keys"* ]]
	refute_secret
	run -77 --separate-stderr cachectl --prefix "${P}other:" get k
	[[ "$stderr" == "cachectl: get: "*"permission denied"* ]]
	refute_secret
	run -77 --separate-stderr cachectl --prefix "${P}other:" get --json k
	[ -z "$output" ]
	# nothing was written outside app:*
	run -0 admin EXISTS "${P}other:k"
	assert_output 0
	run -0 admin GET "${P}app:k"
	assert_output mine
}

@test "a restricted ACL user's warm outside its keys: exit 77, each refused line named" {
	export CQ_REDIS_URL="redis://$USER_NAME:$SECRET@$HOSTPORT/0"
	printf 'k1\tmine\nk2\tmine\n' >"$TMP/in"
	run -0 --separate-stderr cachectl warm --ttl 1m "$TMP/in"
	run -77 --separate-stderr cachectl --prefix "${P}other:" warm --ttl 1m "$TMP/in"
	assert_equal "${stderr_lines[0]}" "cachectl: warm: line 1: write refused: permission denied: NOPERM this user has no permissions to access one of the keys used as arguments"
	[[ "${stderr_lines[1]}" == "cachectl: warm: line 2: write refused: permission denied: NOPERM"* ]]
	[[ "${stderr_lines[2]}" == "warmed 0 keys in "*"(0 skipped, 2 failed)" ]]
	refute_secret
	# --exec: the EXISTS is refused before any command runs
	printf 'k1\nk2\n' >"$TMP/keys"
	run -77 --separate-stderr cachectl --prefix "${P}other:" warm --ttl 1m \
		--keys "$TMP/keys" --exec 'touch "$TMP/ran"'
	assert_equal "${stderr_lines[0]}" "cachectl: warm: EXISTS: permission denied: NOPERM this user has no permissions to access one of the keys used as arguments"
	assert_equal "${stderr_lines[1]}" "cachectl: warm: 2 keys not confirmed written; lines from 3 on not read"
	[ ! -e "$TMP/ran" ]
	refute_secret
	# nothing was written outside app:*
	run -0 admin --scan --pattern "${P}other:*"
	assert_output ""
	run -0 admin GET "${P}app:k2"
	assert_output mine
}

@test "a missing password file is a usage error naming the file, not a secret" {
	run -64 --separate-stderr cachectl get k --password-file "$TMP/nope"
	assert_equal "$stderr" "cachectl: get: cannot read password file '$TMP/nope': No such file or directory"
}

@test "fetch keeps every key it writes under the caller's prefix, braces or not" {
	export CQ_REDIS_URL="redis://$USER_NAME:$SECRET@$HOSTPORT/0"
	local k
	for k in plain 'a}b' '}' '{tag}x' 'x{y' '{}z'; do
		run -0 --separate-stderr cachectl fetch "$k" --ttl 1m -- printf 'out-%s' "$k"
		assert_output "out-$k"
		refute_secret
		run -0 cachectl fetch "$k" --ttl 1m -- false
		assert_output "out-$k"
	done
	# nothing of ours lies outside ${P}app: (the ACL would have refused it
	# anyway: this checks no key was even attempted elsewhere)
	run -0 admin --scan --pattern "${P}*"
	[ -n "$output" ]
	while IFS= read -r k; do
		[[ "$k" == "${P}app:"* ]] || { echo "outside the prefix: $k"; false; }
	done <<<"$output"
	# outside its keys the restricted user gets 77, and CMD does not run
	run -77 --separate-stderr cachectl --prefix "${P}other:" fetch k --ttl 1m -- touch "$TMP/ran"
	[[ "$stderr" == "cachectl: fetch: "*"permission denied"* ]]
	refute_secret
	[ ! -e "$TMP/ran" ]
}

@test "fetch lock tokens are random: two concurrent fetches hold different 128-bit tokens" {
	# each command holds its lock until the test has read both tokens (a
	# fixed sleep raced the reading on a loaded machine); 30 s at most
	local hold="i=0; until [ -e '$TMP/go' ] || [ \$i -ge 600 ]; do sleep 0.05; i=\$((i + 1)); done"
	cachectl fetch k1 --ttl 1m -- sh -c "$hold; echo one" >"$TMP/1" &
	local p1=$!
	cachectl fetch k2 --ttl 1m -- sh -c "$hold; echo two" >"$TMP/2" &
	local p2=$!
	locks() { [ "$(admin --scan --pattern "${P}*|cq:lock" | wc -l)" -eq 2 ]; }
	local i
	for i in $(seq 300); do locks && break; sleep 0.05; done
	run -0 admin --scan --pattern "${P}*|cq:lock"
	local t1 t2
	t1=$(admin GET "${lines[0]}")
	t2=$(admin GET "${lines[1]}")
	touch "$TMP/go"
	wait "$p1" "$p2"
	[ "${#lines[@]}" -eq 2 ]
	[[ "$t1" =~ ^[0-9a-f]{32}$ ]]
	[[ "$t2" =~ ^[0-9a-f]{32}$ ]]
	[ "$t1" != "$t2" ]
	[ "$(cat "$TMP/1")" = one ]
	[ "$(cat "$TMP/2")" = two ]
	# released by their owners
	run -0 admin --scan --pattern "${P}*|cq:lock"
	assert_output ''
}

@test "cqstat and the stats verbs never print a password, up or down, in any format" {
	local good="redis://$USER_NAME:$SECRET@$HOSTPORT/0"
	local bad="redis://$USER_NAME:Bad-$SECRET@$HOSTPORT/0"
	local amqp_port=${CQ_AMQP_URL##*:}
	amqp_port=${amqp_port%%/*}
	local api_hp=${CQ_API_URL#*@}
	local f
	for f in "" --json --prom; do
		run --separate-stderr cqstat $f --redis "$good" -Q "$Q"
		refute_secret
		[[ "$output$stderr" != *":$SECRET@"* ]]
		run --separate-stderr cqstat $f --redis "$bad" \
			--amqp "amqp://guest:Amqp-$SECRET@127.0.0.1:$amqp_port/%2f" \
			--api "http://guest:Api-$SECRET@$api_hp" -Q "$Q"
		refute_secret
		if [ "$f" != --prom ]; then	# --prom says it in cq_up
			[[ "$stderr" == *"redis down: "*"refused the user name or password"* ]]
			[[ "$stderr" == *"amqp down: "* ]]
		fi
	done
	run --separate-stderr cqstat --check 'hit_rate<0.1' --redis "$bad"
	[ "$status" -eq 3 ]
	refute_secret
	run --separate-stderr cqstat --api "http://guest:Api-$SECRET@127.0.0.1:1" --json -Q "$Q"
	refute_secret
	[[ "$output" == *'"error":"management API at http://guest:***@127.0.0.1:1: '* ]]
	run -0 --separate-stderr env CQ_REDIS_URL="$good" cachectl stats --json
	refute_secret
	run -77 --separate-stderr env CQ_REDIS_URL="$bad" cachectl stats --json
	refute_secret
}

@test "qctl never prints an AMQP password: bad URLs, refused logins, --json" {
	local port=${CQ_AMQP_URL##*:}
	port=${port%%/*}
	run -77 --separate-stderr qctl declare "$Q" --json --amqp "amqp://guest:Bad-$SECRET@127.0.0.1:$port/%2f"
	refute_secret
	[ -z "$output" ]
	run -64 --separate-stderr qctl enqueue "$Q" m --amqp "amqp://guest:se,$SECRET@127.0.0.1:99999/%2f"
	assert_equal "$stderr" "qctl: enqueue: bad AMQP URL 'amqp://guest:***@127.0.0.1:99999/%2f': bad port (want 1-65535)"
	run -64 --separate-stderr qctl peek "$Q" --amqp "amqp://guest:$SECRET@127.0.0.1:1/%zz"
	refute_secret
	# a list: the second URL's password is hidden too
	run --separate-stderr qctl declare "$Q" --amqp "amqp://guest:Bad-$SECRET@127.0.0.1:1/%2f,amqp://guest:Bad2-$SECRET@127.0.0.1:2/%2f"
	[ "$status" -eq 69 ]
	refute_secret
}
