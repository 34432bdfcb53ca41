# bash completion for cachectl(1)                          -*- shell-script -*-

_cachectl_common="--redis --amqp --prefix --timeout --password-file
--sentinel-password-file --cacert --cert --key --insecure --json --quiet -q
--help -h"

_cachectl_verb_opts() {
	case $1 in
	get) echo "--no-newline -n --null -0 --ttl --ns --track" ;;
	set) echo "--ttl --jitter --no-ttl --keep-ttl --nx --xx --tag --ns --max-size" ;;
	invalidate) echo "--pattern --tag --ns --dry-run --null -0 --rate --count" ;;
	warm) echo "--ttl --jitter --no-ttl --nx --null -0 --jsonl --tag --ns --rate
		--window --max-size --once --once-ttl --keys --exec --jobs --pass-env" ;;
	fetch) echo "--ttl --jitter --ns --lock-ttl --wait --stale --beta
		--fail-closed --max-size --track --pass-env" ;;
	stats) echo "--track" ;;
	*)	# a verb this file does not know: read its options from --help
		cachectl "$1" --help 2>/dev/null |
			grep -o -- '--[a-z][a-z0-9-]*' | sort -u ;;
	esac
}

_cachectl() {
	local cur prev verb i dashdash=0
	cur=${COMP_WORDS[COMP_CWORD]}
	prev=${COMP_WORDS[COMP_CWORD - 1]}
	COMPREPLY=()

	# the verb is the first word after the program that is not an option
	# (or the value of a global option that takes one)
	for ((i = 1; i < COMP_CWORD; i++)); do
		case ${COMP_WORDS[i]} in
		--redis | --amqp | --prefix | --timeout | --password-file | \
			--sentinel-password-file | --cacert | --cert | --key)
			[ -z "$verb" ] && ((i++)) ;;
		--) [ -n "$verb" ] && { dashdash=$i; break; } ;;
		-*) ;;
		*) [ -z "$verb" ] && verb=${COMP_WORDS[i]} ;;
		esac
	done

	# fetch KEY -- CMD [ARG...]: complete the command, then files
	if [ "$verb" = fetch ] && [ "$dashdash" -gt 0 ]; then
		if [ $((COMP_CWORD - dashdash)) -eq 1 ]; then
			COMPREPLY=($(compgen -c -- "$cur"))
		else
			COMPREPLY=($(compgen -f -- "$cur"))
		fi
		return 0
	fi

	case $prev in
	--password-file | --sentinel-password-file | --cacert | --cert | --key | --keys)
		COMPREPLY=($(compgen -f -- "$cur"))
		return 0 ;;
	--exec)
		COMPREPLY=($(compgen -c -- "$cur"))
		return 0 ;;
	--redis)
		COMPREPLY=($(compgen -W "redis://127.0.0.1:6379/0 unix://" -- "$cur"))
		return 0 ;;
	--ttl | --jitter | --timeout | --lock-ttl | --wait | --stale | --once-ttl)
		COMPREPLY=($(compgen -W "30s 5m 1h 1d" -- "$cur"))
		return 0 ;;
	--max-size)
		COMPREPLY=($(compgen -W "64k 1M 64M" -- "$cur"))
		return 0 ;;
	--amqp | --prefix | --tag | --ns | --pattern | --rate | --count | \
		--window | --once | --jobs | --beta)
		return 0 ;;
	esac

	if [ -z "$verb" ]; then
		if [[ $cur == -* ]]; then
			COMPREPLY=($(compgen -W "$_cachectl_common --version" -- "$cur"))
		else
			COMPREPLY=($(compgen -W "$(cachectl --list-commands 2>/dev/null ||
				echo get set invalidate warm fetch stats)" -- "$cur"))
		fi
		return 0
	fi
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$(_cachectl_verb_opts "$verb") $_cachectl_common" -- "$cur"))
		[ "$verb" = fetch ] && COMPREPLY+=($(compgen -W "--" -- "$cur"))
		return 0
	fi
	[ "$verb" = warm ] && COMPREPLY=($(compgen -f -- "$cur"))
	return 0
}

complete -F _cachectl cachectl
