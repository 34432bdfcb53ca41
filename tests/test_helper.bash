# tests/test_helper.bash - loaded by every bats suite.
#
# Each test gets its own temp dir, the built programs first on PATH, the
# sandbox servers' URLs, and a unique key prefix and queue name so that no
# two tests (or two runs) ever see each other's data.

bats_require_minimum_version 1.5.0
bats_load_library bats-support
bats_load_library bats-assert

TOP=$(cd "$BATS_TEST_DIRNAME/.." && pwd)
while [ ! -f "$TOP/Makefile" ] && [ "$TOP" != / ]; do TOP=$(dirname "$TOP"); done
export TOP
export PATH="${CQ_BIN_DIR:-$TOP/build/bin}:$PATH"

# The sandbox: `make check` exports its URLs; a developer running bats by
# hand gets them from a running sandbox.
if [ -z "${CQ_REDIS_URL:-}" ] || [ -z "${CQ_AMQP_URL:-}" ]; then
	_sandbox_env=$("$TOP/scripts/sandbox" env) ||
		{ echo "no sandbox running: run scripts/sandbox start" >&2; return 1; }
	eval "$_sandbox_env"
fi

setup() {
	export TMP="$BATS_TEST_TMPDIR"
	export HOME="$TMP/home"
	mkdir -p "$HOME"
	# unique per test and per run: suite, test number, pid, random
	local id
	id="t$(basename "$BATS_TEST_FILENAME" .bats | tr -c 'a-zA-Z0-9\n' _)_${BATS_TEST_NUMBER}_$$_$RANDOM"
	export CQ_PREFIX="cqtest:$id:"
	export P="$CQ_PREFIX"
	export Q="cqtest.$id"
	# the same with a quote, a backslash, a space and UTF-8: names the
	# broker and Redis accept must work everywhere
	export HQ="$Q \"q\\ é"
	unset CQ_DEFAULT_TTL CQ_TRACK CQ_REDIS_PASSWORD CQ_PASSWORD_FILE ACL_USER
	if declare -F per_test_setup >/dev/null; then per_test_setup; fi
}

teardown() {
	if declare -F per_test_teardown >/dev/null; then per_test_teardown; fi
	# a Redis ACL user a test created for itself
	if [ -n "${ACL_USER:-}" ]; then rcli ACL DELUSER "$ACL_USER" >/dev/null 2>&1; fi
	return 0
}

# host:port of the sandbox Redis.
hostport() {
	local hp=${CQ_REDIS_URL#redis://}
	echo "${hp%%/*}"
}

# redis-cli against the sandbox Redis, raw output.
rcli() {
	local hp
	hp=$(hostport)
	redis-cli --no-auth-warning -h "${hp%:*}" -p "${hp##*:}" --raw "$@"
}

# rabbitmqctl against the sandbox node.
rctl() {
	"$TOP/scripts/sandbox" ctl "$@"
}

# Delete queues on the sandbox broker, quietly (amqp-delete-queue is a
# short C program; rabbitmqctl costs half a second a call).
drop_queues() {
	local q
	for q in "$@"; do
		amqp-delete-queue -u "$CQ_AMQP_URL" -q "$q" >/dev/null 2>&1 || true
	done
}

# A free loopback port nobody listens on (for "server down" tests).
dead_port() {
	echo 1
}

# Wait until a command succeeds, up to $1 seconds.
wait_for() {
	local t=$1 i
	shift
	for ((i = 0; i < t * 10; i++)); do
		"$@" && return 0
		sleep 0.1
	done
	return 1
}

# A loopback port nobody listens on now, outside the ephemeral range, for a
# server a test starts itself.
free_port() {
	local p i
	for ((i = 0; i < 200; i++)); do
		p=$((20000 + RANDOM % 12000))
		[ -z "$(ss -Hltn "sport = :$p" 2>/dev/null)" ] && { echo "$p"; return 0; }
	done
	return 1
}

# Run the bash script $2 with allocations over about $1 MB failing: an
# address-space limit (ulimit -v) for plain builds; for sanitized ones
# (which reserve terabytes of address space) ASan's own allocation cap.
low_memory() {
	local mb=$1
	if nm "$(command -v cachectl)" 2>/dev/null | grep -q __asan_init; then
		ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}max_allocation_size_mb=$mb:allocator_may_return_null=1" \
			bash -c "$2"
	else
		bash -c "ulimit -v $((mb * 1000)); $2"
	fi
}
