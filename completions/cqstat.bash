# bash completion for cqstat(1)                            -*- shell-script -*-

_cqstat() {
	local cur prev
	cur=${COMP_WORDS[COMP_CWORD]}
	prev=${COMP_WORDS[COMP_CWORD - 1]}
	COMPREPLY=()

	case $prev in
	--password-file | --sentinel-password-file | --cacert | --cert | --key)
		COMPREPLY=($(compgen -f -- "$cur"))
		return ;;
	--check)
		# a metric name to start the expression with
		COMPREPLY=($(compgen -W "$(cqstat --metrics 2>/dev/null | cut -d' ' -f1)" \
			-- "$cur"))
		compopt -o nospace 2>/dev/null
		return ;;
	-Q | --queue | --api | --match | --redis | --amqp | --prefix | --timeout)
		return ;;
	esac
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "--queue -Q --api --match --nodes --masters --no-cache --track
			--json --prom --check --metrics --redis --amqp --prefix
			--timeout --password-file --sentinel-password-file --cacert --cert --key --insecure --quiet -q
			--help -h --version" -- "$cur"))
	fi
}
complete -F _cqstat cqstat
