# tests/sentinel_helper.bash - for the suites that test Redis behind
# Sentinel (tests/redis-sentinel.bats, tests/faults/redis-sentinel.bats):
# a private master, replica and 3 sentinels (scripts/sandbox
# start-sentinel in the suite's own directory), started once per suite,
# and the independent views of them through redis-cli.  Load it after
# test_helper (or fault_helper).

setup_file() { sentinel_start; }

# Start the suite's sentinels (a suite with a setup_file of its own calls
# it first).
sentinel_start() {
	export SSB="$BATS_FILE_TMPDIR/sb" SANDBOX="$TOP/scripts/sandbox"
	local env
	env=$("$SANDBOX" --dir "$SSB" start-sentinel 2>"$BATS_FILE_TMPDIR/sandbox.log") || {
		cat "$BATS_FILE_TMPDIR/sandbox.log" >&2
		return 1
	}
	eval "$env"
	export CQ_REDIS_SENTINEL_URL CQ_SENTINEL_MASTER CQ_SENTINEL_PORTS CQ_SENTINEL_DATA_PORTS
}

teardown_file() { sentinel_stop; }

sentinel_stop() {
	"$SANDBOX" --dir "$SSB" stop >/dev/null 2>&1
	return 0
}

# Give the sentinels the password $1 (requirepass of their default user,
# and sentinel-pass, with which they reach each other to agree on a
# failover); redis-cli on them then needs REDISCLI_AUTH=$1.
sentinel_protect() {
	local s
	for s in $CQ_SENTINEL_PORTS; do
		redis-cli -p "$s" SENTINEL CONFIG SET sentinel-pass "$1" &&
			redis-cli -p "$s" ACL SETUSER default resetpass ">$1" || return 1
	done >/dev/null
}

per_test_setup() {
	export CQ_REDIS_URL=$CQ_REDIS_SENTINEL_URL
	S1=${CQ_SENTINEL_PORTS%% *}
}

# The port of the master the first sentinel that answers names.
master_port() {
	local s
	for s in $CQ_SENTINEL_PORTS; do
		redis-cli -p "$s" --raw SENTINEL get-master-addr-by-name "$CQ_SENTINEL_MASTER" 2>/dev/null |
			sed -n 2p | grep . && return 0
	done
	return 1
}

# redis-cli against one node: on PORT ARGS...
on() {
	local port=$1
	shift
	redis-cli -p "$port" --raw "$@"
}

# The keys of this test on a node, counted with SCAN.
count_on() { redis-cli -p "$1" --scan --pattern "$P*" | wc -l; }
