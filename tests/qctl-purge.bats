#!/usr/bin/env bats
# qctl purge (issue 4): refuses without --yes; says how many went.

bats_require_minimum_version 1.5.0
load test_helper
load qctl_helper

@test "purge: refuses without --yes (64) and removes nothing" {
	qctl declare -q "$Q"
	qctl enqueue -q "$Q" a b
	run -64 --separate-stderr qctl purge "$Q"
	assert_equal "$stderr" "$(printf "qctl: purge: refusing to purge '%s' without --yes\nTry 'qctl purge --help'." "$Q")"
	[ "$(ready "$Q")" = 2 ]
}

@test "purge: --yes removes the ready messages and prints how many" {
	qctl declare -q "$Q"
	seq 1 25 | qctl enqueue -q "$Q"
	run -0 --separate-stderr qctl purge "$Q" --yes
	assert_output "purged 25 messages from '$Q'"
	[ "$(ready "$Q")" = 0 ]
	run -0 qctl purge --yes --json "$Q"
	assert_output "{\"queue\":\"$Q\",\"purged\":0}"
}

@test "purge: a missing queue exits 1" {
	run -1 --separate-stderr qctl purge --yes "$Q"
	assert_equal "$stderr" "qctl: purge: queue '$Q' does not exist"
}

@test "purge: usage errors, an unreachable broker (69), a wrong password (77)" {
	run -64 qctl purge --yes
	run -64 qctl purge --yes a b
	run -69 qctl purge --yes --amqp amqp://guest:guest@127.0.0.1:1/ "$Q"
	run -77 --separate-stderr qctl purge --yes --amqp "$(bad_password_url)" "$Q"
	[[ "$stderr" != *wrong-s3cret* ]]
}
