#!/usr/bin/env bats
# What every program shares: help, version, the verb table, usage errors,
# man pages and completions that stay in sync with the code.

load test_helper

PROGS="cachectl qctl cqstat"

@test "--version prints the program name and version" {
	for p in $PROGS; do
		run -0 "$p" --version
		assert_output --regexp "^$p [0-9]+\.[0-9]+\.[0-9]+$"
	done
}

@test "--help goes to stdout with exit 0 and lists every verb" {
	for p in cachectl qctl; do
		run -0 --separate-stderr "$p" --help
		assert_output --partial "usage: $p"
		[ -z "$stderr" ]
		while read -r verb; do
			assert_output --partial "  $verb "
		done < <("$p" --list-commands)
	done
}

@test "every verb has --help on stdout with exit 0" {
	for p in cachectl qctl; do
		for verb in $("$p" --list-commands); do
			run -0 --separate-stderr "$p" "$verb" --help
			assert_output --partial "usage: $p $verb"
			[ -z "$stderr" ]
		done
	done
}

@test "no verb is a usage error (64) with the usage on stderr" {
	for p in cachectl qctl; do
		run -64 --separate-stderr "$p"
		[ -z "$output" ]
		[[ "$stderr" == *"usage: $p"* ]]
	done
}

@test "an unknown verb is a usage error naming it" {
	run -64 --separate-stderr cachectl frobnicate
	[ "$stderr" = "cachectl: unknown verb 'frobnicate'
Try 'cachectl --help'." ]
}

@test "an unknown option is a usage error" {
	run -64 --separate-stderr cachectl get --bogus k
	[[ "$stderr" == *"unrecognized option '--bogus'"* ]]
	[[ "$stderr" == *"Try 'cachectl get --help'."* ]]
}

@test "a malformed --timeout is a usage error" {
	run -64 --separate-stderr cachectl get --timeout 5x k
	[[ "$stderr" == *"--timeout: bad duration '5x'"* ]]
}

@test "a malformed CQ_TIMEOUT is a usage error" {
	CQ_TIMEOUT=soon run -64 --separate-stderr cachectl get k
	[[ "$stderr" == *"CQ_TIMEOUT: bad duration 'soon'"* ]]
}

@test "a malformed Redis URL is a usage error and hides the password" {
	run -64 --separate-stderr cachectl get --redis 'redis://u:hunter2@h:99999' k
	[[ "$stderr" == *"bad Redis URL 'redis://u:***@h:99999': bad port"* ]]
	[[ "$stderr" != *hunter2* ]]
}

@test "man pages render without warnings and list exit status and environment" {
	for p in $PROGS; do
		[ -f "$TOP/man/$p.1" ]
		run -0 --separate-stderr env MANWIDTH=80 man --warnings -l "$TOP/man/$p.1"
		[ -z "$stderr" ] || { echo "$stderr"; false; }
		assert_output --partial "EXIT STATUS"
		assert_output --partial "ENVIRONMENT"
	done
}

@test "man pages document every verb in a section of its own" {
	for p in cachectl qctl; do
		for verb in $("$p" --list-commands); do
			grep -qE "^\.SS \"?$verb\b" "$TOP/man/$p.1" ||
				{ echo "man/$p.1 has no .SS $verb"; false; }
		done
	done
}

@test "bash completion offers exactly the verbs of --list-commands" {
	for p in cachectl qctl; do
		expected=$("$p" --list-commands | sort | tr '\n' ' ')
		got=$(bash -c "
			source '$TOP/completions/$p.bash'
			COMP_WORDS=($p ''); COMP_CWORD=1; COMP_LINE='$p '; COMP_POINT=\${#COMP_LINE}
			_fn=\$(complete -p $p | sed -n 's/.*-F \([^ ]*\).*/\1/p')
			\$_fn $p '' $p
			printf '%s\n' \"\${COMPREPLY[@]}\" | sort | tr '\n' ' '
		")
		[ "$got" = "$expected" ] || { echo "$p: want '$expected' got '$got'"; false; }
	done
}

@test "zsh and fish completions name every verb" {
	for p in cachectl qctl; do
		for verb in $("$p" --list-commands); do
			grep -qw -- "$verb" "$TOP/completions/_$p" ||
				{ echo "_$p lacks $verb"; false; }
			grep -qw -- "$verb" "$TOP/completions/$p.fish" ||
				{ echo "$p.fish lacks $verb"; false; }
		done
	done
}

@test "zsh and fish completions parse" {
	for p in $PROGS; do
		zsh -n "$TOP/completions/_$p"
		fish -n "$TOP/completions/$p.fish"
	done
}

@test "programs include only the project's headers" {
	run grep -lE '#include *[<"](hiredis|amqp|jansson|curl)' "$TOP"/cmd/*.c "$TOP"/cmd/*.h
	assert_failure
}

@test "cachectl does not load librabbitmq, OpenSSL or curl" {
	run -0 ldd "$(command -v cachectl)"
	refute_output --partial librabbitmq
	refute_output --partial libssl
	refute_output --partial libcurl
}
