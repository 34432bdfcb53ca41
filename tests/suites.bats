#!/usr/bin/env bats
# The test suites themselves: every check in a test can fail.  Bats runs a
# test under set -e, which ignores a failing '! cmd' and every command of an
# '&&' list but the last, so such a line checks nothing unless it is the
# test's last.  And wait_for runs its condition again and again, but a
# "$(...)" in its arguments is expanded once, before the first try.
# Needs no server.

bats_require_minimum_version 1.5.0
bats_load_library bats-support
bats_load_library bats-assert

setup() {
	cd "$BATS_TEST_DIRNAME" || return 1
}

# Lines of tests/**/*.bats (and test_helper) matching the awk condition $1,
# outside comments, as FILE:LINE: TEXT.
lines_where() {
	awk "/^[[:space:]]*#/ { next } $1 { printf \"%s:%d: %s\\n\", FILENAME, FNR, \$0 }" \
		./*.bats faults/*.bats test_helper.bash
}

@test "no negated command is ignored: '! cmd' is followed by '|| false' (or is in a condition)" {
	run -0 lines_where '/^[[:space:]]*! / && !/\|\|/'
	assert_output ''
}

@test "no check hides behind another: '[ A ] && [ B ]' is written one check a line" {
	run -0 lines_where '/^[[:space:]]*\[\[? .* \]\]? && \[\[? .* \]\]?[[:space:]]*$/'
	assert_output ''
}

@test "wait_for's condition is asked again each try: no \"\$(...)\" expanded once in its arguments" {
	run -0 lines_where '/wait_for [0-9.]+ (test|\[) .*\$\(/'
	assert_output ''
}
