# bash completion for qctl(1)
_qctl()
{
	local cur prev verb i
	COMPREPLY=()
	cur=${COMP_WORDS[COMP_CWORD]}
	prev=${COMP_WORDS[COMP_CWORD-1]}
	local common="--redis --amqp --prefix --timeout --password-file --sentinel-password-file --cacert --cert --key --insecure --json --quiet -q --help -h"
	local verbs="enqueue consume peek replay-dlq declare purge stats"

	# the verb is the first word that is not an option (or an option's value)
	verb=
	for ((i = 1; i < COMP_CWORD; i++)); do
		case ${COMP_WORDS[i]} in
		--redis|--amqp|--prefix|--timeout|--password-file|--sentinel-password-file|--cacert|--cert|--key) ((i++)) ;;
		-*) ;;
		*) verb=${COMP_WORDS[i]}; break ;;
		esac
	done

	case $prev in
	--password-file|--sentinel-password-file|--cacert|--cert|--key)
		COMPREPLY=($(compgen -f -- "$cur")); return ;;
	--redis|--amqp|--prefix|--timeout|--exchange|--routing-key|-H|--header|\
	--priority|--message-id|--content-type|--expiration|--window|--max-size|\
	--count|-n|--preview|--to|--filter|--rate|--max-length|--message-ttl|\
	--max-priority|--delivery-limit|-e|--exec|-j|--jobs|--max-retries|\
	--retry-delay|--poison-codes|--handler-timeout|--dedupe-ttl|--prefetch|\
	--idle-timeout|--heartbeat|--maxlen|--group|--consumer|--visibility-timeout)
		return ;;
	--backend)
		COMPREPLY=($(compgen -W "amqp list stream" -- "$cur")); return ;;
	--dlq)
		[ "$verb" = consume ] && return ;;
	esac

	if [ -z "$verb" ]; then
		if [[ $cur == -* ]]; then
			COMPREPLY=($(compgen -W "$common --version" -- "$cur"))
		else
			COMPREPLY=($(compgen -W "$verbs" -- "$cur"))
		fi
		return
	fi
	local opts=
	case $verb in
	enqueue) opts="--null -0 --jsonl --exchange --routing-key --header -H --priority --message-id --no-message-id --content-type --expiration --transient --window --max-size --heartbeat --maxlen" ;;
	consume) opts="--null -0 --jsonl --exec -e --jobs -j --max-retries --retry-delay --poison-codes --handler-timeout --dlq --dedupe --dedupe-ttl --prefetch --count -n --idle-timeout --until-empty --heartbeat --pass-env --consumer --visibility-timeout --processing-list --lease --recover" ;;
	peek) opts="--count -n --preview" ;;
	replay-dlq) opts="--to --count -n --filter --dry-run --rate --reset-retries --window" ;;
	declare) opts="--dlq --quorum --max-length --message-ttl --max-priority --delivery-limit --dead-letter-strategy" ;;
	purge) opts="--yes" ;;
	stats) opts= ;;
	esac
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$opts --backend --group $common" -- "$cur"))
	fi
}
complete -F _qctl qctl
