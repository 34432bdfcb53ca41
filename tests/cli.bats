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

@test "help lists the AMQP options only where a broker is used" {
	run -0 cachectl --help
	refute_output --partial "--amqp"
	assert_output --partial "  --cacert F, --cert F, --key F   TLS files for rediss://"$'\n'
	assert_output --partial "  --insecure         TLS without checking the server certificate (warns)"
	run -0 cachectl get --help
	refute_output --partial "--amqp"
	run -0 qctl --help
	assert_output --partial "  --amqp URL[,URL]   AMQP URL list (CQ_AMQP_URL, AMQP_URL)"
	run -0 qctl enqueue --help
	assert_output --partial "  --cacert F, --cert F, --key F   TLS files for rediss:// and amqps://"
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

@test "qctl's --backend and --group go after the verb: qctl --help says so, and before it they are a usage error" {
	run -0 qctl --help
	assert_output --partial $'\nEvery verb also takes, after the verb:\n  --backend KIND '
	assert_output --partial $'\n  --group NAME '
	run -0 qctl stats --help
	assert_output --partial $'\n  --backend KIND '
	run -64 --separate-stderr qctl --backend list stats "$Q"
	[[ "$stderr" == *"unrecognized option '--backend'"* ]]
	run -64 --separate-stderr qctl --group g stats "$Q"
	[[ "$stderr" == *"unrecognized option '--group'"* ]]
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

@test "a Redis database the server does not have is a usage error (64) in every program" {
	local hp=${CQ_REDIS_URL#redis://} n
	hp=${hp%%/*}
	n=$(rcli config get databases | tail -1)
	run -64 --separate-stderr cachectl get --redis "redis://$hp/$n" k
	assert_equal "$stderr" "cachectl: get: Redis at $hp has no database $n (its 'databases' setting is lower; see the URL's /DB)"
	run -64 --separate-stderr cachectl set --redis "unix://$CQ_REDIS_SOCKET?db=$n" k v --ttl 1m
	assert_equal "$stderr" "cachectl: set: Redis at $CQ_REDIS_SOCKET has no database $n (its 'databases' setting is lower; see the URL's /DB)"
	run -64 --separate-stderr cqstat --redis "redis://$hp/$n"
	[[ "$stderr" == *"Redis at $hp has no database $n"* ]]
	# the last one there is fine
	run -1 cachectl get --redis "redis://$hp/$((n - 1))" "k$RANDOM"
}

@test "every key cachectl writes without a TTL is named as such in cachectl(1)'s KEY LAYOUT" {
	# every writing path: set/warm with tags and a namespace, tracked
	# reads, fetch (lock), warm --once, invalidate by tag and namespace
	cachectl set -q --ttl 1m --tag t1 --ns n1 k1 v
	printf 'k2\tv\n' | cachectl warm -q --ttl 1m --tag t2 --once o1
	cachectl get -q --track k1 k2 >/dev/null || true
	CQ_TRACK=1 cachectl fetch --ttl 1m k3 -- echo v >/dev/null
	cachectl get -q --ns n1 k1 >/dev/null
	cachectl invalidate -q --tag t1 || true
	cachectl invalidate -q --ns n1
	local key found=()
	while IFS= read -r key; do
		[ -n "$key" ] || continue
		[ "$(rcli pttl "$key")" = -1 ] && found+=("${key#"$P"}")
	done < <(rcli --scan --pattern "${P}*"; echo cq:track)
	# what Redis holds without expiry: the namespace counter and cq:track
	[ "$(printf '%s\n' "${found[@]}" | sort | tr '\n' ' ')" = "cq:ns:n1 cq:track " ]
	# and what the man page's KEY LAYOUT says about them
	local layout
	layout=$(sed -n '/^\.SH KEY LAYOUT/,/^\.SH /p' "$TOP/man/cachectl.1")
	grep -q '^\.IB P cq:ns: NAME$' <<<"$layout"
	grep -q '^\.B cq:track$' <<<"$layout"
	grep -q 'one of the two keys' <<<"$layout"
	[[ "$layout" == *"It has no TTL either"* ]]
}

@test "man pages render without warnings and list exit status and environment" {
	for p in $PROGS; do
		[ -f "$TOP/man/$p.1" ]
		run -0 --separate-stderr env MANWIDTH=80 man --warnings -l "$TOP/man/$p.1"
		[ -z "$stderr" ] || { echo "$stderr"; false; }
		assert_output --partial "EXIT STATUS"
		assert_output --partial "ENVIRONMENT"
	done
	run -0 --separate-stderr env MANWIDTH=80 man --warnings -l "$TOP/man/cq.7"
	[ -z "$stderr" ] || { echo "$stderr"; false; }
	assert_output --partial "STAMPEDE PROTECTION"
}

# An alternating-font macro (.BR, .RB, .BI, .IB, .IR, .RI) splits its
# arguments at spaces, quotes or not inside a word: an unquoted argument
# with an odd number of quotes lost a space ({"error":"not sent"} printed
# "notsent"); write that space as '\ ' or quote the whole argument.
@test "no man page argument loses a space to roff's splitting" {
	run -0 awk '
		/^\.(BR|RB|BI|IB|IR|RI)[ \t]/ {
			s = substr($0, 5)
			n = length(s)
			i = 1
			while (i <= n) {
				c = substr(s, i, 1)
				if (c == " " || c == "\t") { i++; continue }
				if (c == "\"") {	# a quoted argument: to its closing quote ("" is one)
					for (i++; i <= n; i++) {
						if (substr(s, i, 1) != "\"") continue
						if (substr(s, i + 1, 1) == "\"") { i++; continue }
						break
					}
					i++
					continue
				}
				arg = ""
				while (i <= n && substr(s, i, 1) != " " && substr(s, i, 1) != "\t") {
					k = substr(s, i, 1) == "\\" ? 2 : 1	# an escape: "\ " too
					arg = arg substr(s, i, k)
					i += k
				}
				if (gsub(/"/, "\"", arg) % 2) {
					print FILENAME ":" FNR ": " $0
					break
				}
			}
		}
	' "$TOP"/man/*.[17]
	[ -z "$output" ] || { echo "$output"; false; }
}

@test "every variable lib/config.c reads is in README's settings table and a man page's ENVIRONMENT, and the table names no other" {
	local vars v table environ rc=0
	vars=$(grep -oE '(first_)?env\("[A-Z_]+"(, "[A-Z_]+")?' "$TOP/lib/config.c" |
		grep -oE '[A-Z][A-Z_]+' | sort -u)
	[ -n "$vars" ]
	table=$(sed -n '/^## Settings/,/^## /p' "$TOP/README.md" | grep '^|')
	environ=$(sed -n '/^\.SH ENVIRONMENT/,/^\.SH /p' "$TOP"/man/*.1)
	for v in $vars; do
		grep -qF "\`$v\`" <<<"$table" || { echo "README's settings table lacks $v"; rc=1; }
		grep -qw "$v" <<<"$environ" || { echo "no man page's ENVIRONMENT names $v"; rc=1; }
	done
	for v in $(grep -oE '`[A-Z][A-Z_]+`' <<<"$table" | tr -d '`' | sort -u); do
		grep -qx "$v" <<<"$vars" || { echo "README's settings table names $v, which lib/config.c does not read"; rc=1; }
	done
	return "$rc"
}

@test "cqstat(1)'s METRICS names every metric of cqstat --metrics, and no other" {
	local listed documented
	listed=$(cqstat --metrics | awk '{ print $1 }' | sort -u)
	documented=$(man_section "$TOP/man/cqstat.1" '^\.SH METRICS' | man_option_lines |
		sed -E 's/^\.[BIR]+ //' | grep -oE '[a-z][a-z0-9_]*' | sort -u)
	[ -n "$listed" ]
	[ "$listed" = "$documented" ] && return
	echo "cqstat --metrics (left), cqstat(1) METRICS (right):"
	diff <(echo "$listed") <(echo "$documented")
	return 1
}

@test "README's exit code table and the EXIT STATUS of cachectl(1) and qctl(1) list the same codes" {
	local readme p man
	readme=$(sed -n '/^## Exit codes/,/^## /p' "$TOP/README.md" | grep -oE '^\| [0-9]+ ' | tr -d '| ' | sort -n)
	[ -n "$readme" ]
	for p in cachectl qctl; do
		man=$(man_section "$TOP/man/$p.1" '^\.SH EXIT STATUS' | grep -A1 '^\.TP' |
			sed -n 's/^\.B \([0-9][0-9]*\)$/\1/p' | sort -n)
		[ "$man" = "$readme" ] && continue
		echo "README (left), man/$p.1 EXIT STATUS (right):"
		diff <(echo "$readme") <(echo "$man")
		return 1
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

# "cachectl", every "cachectl VERB", "qctl", every "qctl VERB", and
# "cqstat", which has no verbs
prog_verbs() {
	local p
	for p in cachectl qctl; do
		echo "$p"
		"$p" --list-commands | sed "s/^/$p /"
	done
	echo cqstat
}

# The options a --help text on stdin defines, one a line, sorted: the names
# on its lines that start with an option (up to the description), not the
# options its prose mentions, nor those it says go after the verb.
help_options() {
	sed '/after the verb:$/,$d' | grep -E '^ {2,4}-' | sed -E 's/ {2,}[^ -].*$//' |
		grep -oE -- '(^|[ ,])--?[a-zA-Z0-9][a-zA-Z0-9-]*' | sed 's/^[ ,]*//' | sort -u
}

# The text of the section of man page FILE whose heading matches the ERE
# HEADING, up to the next .SH or .SS, with \- read as -.
man_section() { # FILE HEADING
	awk -v h="$2" '$0 ~ h { on = 1; print; next } on && /^\.S[HS] / { exit } on' "$1" |
		sed 's/\\-/-/g'
}

# The option lines (each .TP's tag) of man text on stdin
man_option_lines() {
	grep -A1 '^\.TP' | grep -v -e '^\.TP' -e '^--$' || true
}

# The section of man/PROG.1 on VERB's options: the verb's .SS (without a
# verb: OPTIONS, which only cqstat has)
man_verb_section() { # PROG [VERB]
	if [ -n "${2:-}" ]; then
		man_section "$TOP/man/$1.1" "^\\.SS \"?$2(\"| |\$)"
	else
		man_section "$TOP/man/$1.1" '^\.SH OPTIONS'
	fi
}

# Whether TEXT names OPTION as a man page's option lines do: after a space,
# a quote or a font change, and before a space, a quote or a line's end
man_names() { # TEXT OPTION
	local nl=$'\n'
	local re="(^|[ \"$nl]|\\\\fP)$2([ \"$nl]|\$)"
	[[ $1 =~ $re ]]
}

@test "every option of every --help is in the man page, with the same short name, and every option the man page gives a verb is in its --help" {
	local pvs pv p v o s l help opts text tags own line rc=0
	mapfile -t pvs < <(prog_verbs)
	for pv in "${pvs[@]}"; do
		read -r p v <<<"$pv"
		help=$("$p" ${v:+"$v"} --help)
		opts=$'\n'$(help_options <<<"$help")$'\n'
		own=$(man_verb_section "$p" ${v:+"$v"})
		text=$own$'\n'$(man_section "$TOP/man/$p.1" '^\.SH COMMON OPTIONS')
		tags=$(man_option_lines <<<"$text")
		# each option of the help: in the verb's section or COMMON OPTIONS
		for o in $opts; do
			man_names "$text" "$o" ||
				{ echo "$p $v --help has $o, man/$p.1 does not say it there"; rc=1; }
		done
		# "-x, --long" in the help: one man option line names both
		while read -r s l; do
			s=${s%,}
			while IFS= read -r line; do
				man_names "$line" "$s" && man_names "$line" "$l" && continue 2
			done <<<"$tags"
			echo "$p $v --help pairs $s with $l, man/$p.1 does not"
			rc=1
		done < <(grep -oE -- '^ {2,4}-[a-zA-Z0-9], --[a-z][a-z0-9-]*' <<<"$help")
		# each option line of the verb's own section: in its help
		for o in $(man_option_lines <<<"$own" |
			grep -oE -- '(^|[ "]|\\fP)--?[a-zA-Z0-9][a-zA-Z0-9-]*' | sed -E 's/^([ "]|\\fP)//'); do
			[[ $opts == *$'\n'"$o"$'\n'* ]] ||
				{ echo "man/$p.1 gives '$p $v' $o, its --help does not"; rc=1; }
		done
	done
	return "$rc"
}

@test "every usage line of every --help is a line of the man page's SYNOPSIS" {
	local pvs pv p v u syn rc=0
	mapfile -t pvs < <(prog_verbs)
	for pv in "${pvs[@]}"; do
		read -r p v <<<"$pv"
		[ -n "$v" ] || [ "$p" = cqstat ] || continue	# a verb's usage, or cqstat's
		# rendered wide, one space apart; "cachectl [OPTIONS] get" is "cachectl get"
		syn=$(MANWIDTH=300 man -l "$TOP/man/$p.1" 2>/dev/null | sed -n '/^SYNOPSIS/,/^DESCRIPTION/p' |
			sed -E "s/^ +//; s/ +/ /g; s/^$p \[OPTIONS\] ([a-z])/$p \1/")
		while IFS= read -r u; do
			grep -qxF -- "$u" <<<"$syn" ||
				{ echo "man/$p.1's SYNOPSIS lacks '$u' ($p $v --help)"; rc=1; }
		done < <("$p" ${v:+"$v"} --help |
			awk '/^usage: / { sub(/^usage: /, ""); print; on = 1; next }
			     on && /^ +[a-z]/ { sub(/^ +/, ""); print; next } { on = 0 }' |
			sed -E 's/ +/ /g')
	done
	return "$rc"
}

# The options a completion file offers after "PROG [VERB] -", one a line,
# sorted (bash: the completion function; fish: its completion engine)
bash_options() { # PROG [VERB]
	bash --norc --noprofile -c '
		source "$1" || exit
		fn=$(complete -p "$2" | sed -n "s/.*-F \([^ ]*\).*/\1/p")
		shift
		COMP_WORDS=("$@" -); COMP_CWORD=$#; COMP_LINE="$* -"; COMP_POINT=${#COMP_LINE}
		"$fn" "$1" - "${@: -1}"
		printf "%s\n" "${COMPREPLY[@]}"' _ "$TOP/completions/$1.bash" "$@" | sort -u
}
# zsh: the completion file sourced with _arguments replaced by a function
# that prints the options of its specs (the program's own, and with a verb
# the verb's, once the first call hands the words after it on: '->args')
zsh_options() { # PROG [VERB]
	zsh -f -c '
		_arguments() {
			local a
			[[ "$*" == *"->"* ]] && state=args
			for a in "$@"; do
				[[ $a == -[sCSRnwW] ]] && continue
				a=${a#\(*\)}; a=${a#\*}; a=${a#\(*\)}
				[[ $a =~ "^--?[a-zA-Z0-9][a-zA-Z0-9-]*" ]] && print -r -- $MATCH
			done
			return 1
		}
		_describe() { : }
		words=($2) state=
		source $1' _ "$TOP/completions/_$1" "${2:-}" | sort -u
}
fish_options() { # PROG [VERB]
	mkdir -p "$TMP/empty"
	(cd "$TMP/empty" && fish --no-config -c 'source $argv[1]; and complete -C "$argv[2]"' \
		"$TOP/completions/$1.fish" "$* -") | cut -f1 | sort -u
}

@test "bash, zsh and fish completions offer every option of every --help" {
	local pvs pv p v kind missing rc=0
	mapfile -t pvs < <(prog_verbs)
	for pv in "${pvs[@]}"; do
		read -r p v <<<"$pv"
		for kind in bash zsh fish; do
			missing=$(comm -23 <("$p" ${v:+"$v"} --help | help_options) <("${kind}_options" "$p" ${v:+"$v"}))
			[ -z "$missing" ] ||
				{ echo "$kind completion of '$p $v' lacks:" $missing; rc=1; }
		done
	done
	return "$rc"
}

# The verbs a completion file offers after "PROG ", one a line, sorted.
# bash: the completion function, run with PATH as given (so that, without
# the program on it, the file's own fallback list is what is offered).
bash_verbs() { # PROG PATH
	bash --norc --noprofile -c '
		source "$1" || exit
		fn=$(complete -p "$2" | sed -n "s/.*-F \([^ ]*\).*/\1/p")
		COMP_WORDS=("$2" ""); COMP_CWORD=1; COMP_LINE="$2 "; COMP_POINT=${#COMP_LINE}
		PATH=$3 "$fn" "$2" "" "$2"
		printf "%s\n" "${COMPREPLY[@]}"' _ "$TOP/completions/$1.bash" "$1" "$2" |
		sort
}

# zsh: a real completion (compinit, TAB) in an interactive zsh on a pty,
# with compadd wrapped to print the matches it is given.
zsh_verbs() { # PROG
	cat >"$TMP/capture.zsh" <<'ZSH'
zmodload zsh/zpty || exit 2
zpty z zsh -f -i
zpty -w z "fpath=(${(q)1} \$fpath); PS1=''; autoload -U compinit; compinit -u -D"
zpty -w z 'compadd() {
	if [[ ${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]]; then builtin compadd "$@"; return; fi
	local -a m; builtin compadd -A m "$@"
	(( $#m )) && print -rl -- "<""m>"${^m}
	builtin compadd "$@"
}'
zpty -w z 'bindkey "^I" complete-word; comppostfuncs=(done_); done_() { print "<do""ne>"; exit; }'
zpty -w -n z "$2"$'\t'
while zpty -r z line; do
	[[ $line == *'<done>'* ]] && break
	[[ $line == *'<m>'* ]] && print -r -- "${${line##*<m>}%%[$'\r\n']*}"
done
zpty -d z
ZSH
	timeout 30 zsh -f "$TMP/capture.zsh" "$TOP/completions" "$1 " | sort
}

# fish: its own completion engine, from an empty directory
fish_verbs() { # PROG
	mkdir -p "$TMP/empty"
	(cd "$TMP/empty" && fish --no-config -c 'source $argv[1]; and complete -C "$argv[2] "' \
		"$TOP/completions/$1.fish" "$1") | cut -f1 | sort
}

# WHAT offers exactly the verbs of PROG --list-commands
same_verbs() { # WHAT PROG OFFERED
	local want
	want=$("$2" --list-commands | sort)
	[ -n "$want" ] || { echo "$2 --list-commands printed nothing"; return 1; }
	[ "$3" = "$want" ] && return
	echo "$1 offers the verbs on the left, $2 --list-commands those on the right:"
	diff <(echo "$3") <(echo "$want")
	return 1
}

# PATH without any directory holding PROG
path_without() { # PROG
	local d out=
	local IFS=:
	for d in $PATH; do [ -x "$d/$1" ] || out=$out${out:+:}$d; done
	echo "$out"
}

@test "bash completion offers exactly the verbs of --list-commands" {
	local rc=0
	for p in cachectl qctl; do
		same_verbs "$p.bash" "$p" "$(bash_verbs "$p" "$PATH")" || rc=1
	done
	return "$rc"
}

@test "bash completion without the program on PATH offers exactly the verbs of --list-commands" {
	local rc=0 nopath
	for p in cachectl qctl; do
		nopath=$(path_without "$p")
		run -127 env PATH="$nopath" "$p" --list-commands
		same_verbs "$p.bash (fallback list)" "$p" "$(bash_verbs "$p" "$nopath")" || rc=1
	done
	return "$rc"
}

@test "zsh completion offers exactly the verbs of --list-commands" {
	local rc=0
	for p in cachectl qctl; do
		same_verbs "_$p" "$p" "$(zsh_verbs "$p")" || rc=1
		# and after common options with values (a ':' in a --redis
		# value list once hid the verbs)
		same_verbs "_$p after --redis URL --prefix P" "$p" \
			"$(zsh_verbs "$p --redis redis://h:1/0 --prefix p")" || rc=1
	done
	return "$rc"
}

@test "fish completion offers exactly the verbs of --list-commands" {
	local rc=0
	for p in cachectl qctl; do
		same_verbs "$p.fish" "$p" "$(fish_verbs "$p")" || rc=1
	done
	return "$rc"
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

@test "make install: libcq links from the installed tree, static and shared" {
	local build d cc=() san=() cflags=() libs=() static=() l f
	build=$(cd "$(dirname "$(command -v cachectl)")/.." && pwd)
	d=$TMP/inst
	# install what was built (-o all: never rebuild what the suites test)
	run -0 make -C "$TOP" -o all BUILD="$build" DESTDIR="$d" PREFIX=/usr install
	# the compiler of the build, and its sanitizers if it has them
	read -ra cc <<<"$(sed -n 's/^CC=\(.*\) CPPFLAGS=.*/\1/p' "$build/.flags" 2>/dev/null)"
	[ ${#cc[@]} -gt 0 ] || cc=(cc)
	if nm "$d/usr/lib/libcq.a" 2>/dev/null | grep -q __asan_init; then
		san=("-fsanitize=address,undefined")
	fi
	export PKG_CONFIG_SYSROOT_DIR=$d PKG_CONFIG_PATH=$d/usr/lib/pkgconfig
	printf '#include <stdio.h>\n#include <cq.h>\nint main(void) { puts(cq_strerror(0)); return 0; }\n' >"$TMP/t.c"
	read -ra cflags <<<"$(pkg-config --cflags libcq)"

	# libcq.a calls OpenSSL itself, not only through librabbitmq
	run -0 pkg-config --print-requires-private libcq
	assert_line openssl
	# static: every object of libcq.a, linked with what pkg-config names;
	# libraries only libcurl's own static build needs, when not installed
	# here, are stood in for by empty archives
	read -ra libs <<<"$(pkg-config --static --libs libcq)"
	mkdir -p "$TMP/stubs"
	for l in $(printf '%s\n' "${libs[@]}" | sed -n 's/^-l//p' | grep -vx cq | sort -u); do
		f=$("${cc[@]}" -print-file-name="lib$l.so")
		[ "$f" != "lib$l.so" ] || f=$("${cc[@]}" -print-file-name="lib$l.a")
		[ "$f" != "lib$l.a" ] || ar rc "$TMP/stubs/lib$l.a"
	done
	for l in "${libs[@]}"; do
		if [ "$l" = -lcq ]; then
			static+=("-Wl,--whole-archive" -l:libcq.a "-Wl,--no-whole-archive")
		else
			static+=("$l")
		fi
	done
	run -0 "${cc[@]}" "${san[@]}" -o "$TMP/t-static" "$TMP/t.c" "${cflags[@]}" \
		"${static[@]}" -L"$TMP/stubs"
	run -0 ldd "$TMP/t-static"
	refute_output --partial libcq
	run -0 "$TMP/t-static"
	assert_output success
	# shared
	read -ra libs <<<"$(pkg-config --libs libcq)"
	run -0 "${cc[@]}" "${san[@]}" -o "$TMP/t-shared" "$TMP/t.c" "${cflags[@]}" "${libs[@]}"
	LD_LIBRARY_PATH=$d/usr/lib run -0 "$TMP/t-shared"
	assert_output success
	LD_LIBRARY_PATH=$d/usr/lib run -0 ldd "$TMP/t-shared"
	assert_output --partial "libcq.so.0 => $d/usr/lib/libcq.so.0"
}

@test "libcq.so exports what the programs call, and for library users cq_seterr, cq_clear_error and cq_buf_reserve, nothing more" {
	local build f unused=()
	build=$(cd "$(dirname "$(command -v cachectl)")/.." && pwd)
	[ -f "$build/libcq.so" ]
	for f in $(nm -D --defined-only "$build/libcq.so" | awk '$2 == "T" { sub(/@.*/, "", $3); print $3 }'); do
		[[ $f == cq_* ]] || { echo "exported without the cq_ prefix: $f"; false; }
		case $f in cq_seterr|cq_clear_error|cq_buf_reserve) continue ;; esac
		grep -qw "$f" "$TOP"/cmd/*.c "$TOP"/cmd/*.h || unused+=("$f")
	done
	assert_equal "${unused[*]}" ""
}
