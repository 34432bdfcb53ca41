# tests/faults/fault_helper.bash - loaded by the fault suites.
#
# Fault tests kill and restart servers, so each suite runs its own private
# sandbox (scripts/sandbox --dir $BATS_FILE_TMPDIR/sb), started once in
# setup_file and stopped in teardown_file; the shared sandbox is never
# touched.  Every sandbox command below names the private directory.

# test_helper wants a sandbox's URLs at load time; the private one's are
# exported by setup_file, so anything will do until then.
: "${CQ_REDIS_URL:=redis://127.0.0.1:1/0}" "${CQ_AMQP_URL:=amqp://guest:guest@127.0.0.1:1/%2f}"
export CQ_REDIS_URL CQ_AMQP_URL
load ../test_helper

# Start the private sandbox and export its URLs for every test.
fault_setup_file() {
	local top
	top=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
	export SB="$BATS_FILE_TMPDIR/sb"
	export SANDBOX="$top/scripts/sandbox"
	local env
	env=$("$SANDBOX" start --dir "$SB" 2>"$BATS_FILE_TMPDIR/sandbox.log") || {
		cat "$BATS_FILE_TMPDIR/sandbox.log" >&2
		return 1
	}
	eval "$env"
	export CQ_REDIS_URL CQ_AMQP_URL CQ_SANDBOX_DIR CQ_RABBITMQCTL CQ_REDIS_CLI \
		CQ_AMQPS_URL CQ_TLS_DIR CQ_API_URL CQ_REDIS_SOCKET
	[ "$CQ_SANDBOX_DIR" = "$SB" ] || { echo "sandbox dir mismatch" >&2; return 1; }
}

fault_teardown_file() {
	[ -n "${SB:-}" ] && "$SANDBOX" stop --dir "$SB" >/dev/null 2>&1
	return 0
}

# What most fault suites want; a suite may define its own after loading.
setup_file() { fault_setup_file; }
teardown_file() { fault_teardown_file; }
per_test_teardown() { sb_heal; }

# The private sandbox's servers (never the shared one).
sb() { "$SANDBOX" --dir "$SB" "$@" >>"$BATS_FILE_TMPDIR/sandbox.log" 2>&1; }

# Make sure both servers are up again after a test that stopped one.
sb_heal() {
	"$SANDBOX" --dir "$SB" status >/dev/null 2>&1 && return 0
	sb start-redis || true
	sb start-rabbit || true
}

# A number the test reports in the TAP output (bats shows fd 3 lines).
note() { echo "# $*" >&3; }

# Start a private 3-node RabbitMQ cluster (no single node, no redis) for a
# suite, once, and build bench/qtool: the independent librabbitmq client
# the cluster suites count with (drain, depth).  CQ_AMQP_URL is the list of
# the three nodes, node 1 first: qctl connects to node 1.
cluster_setup_file() {
	local top env
	top=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
	export SB="$BATS_FILE_TMPDIR/sb"
	export SANDBOX="$top/scripts/sandbox"
	export QTOOL="$BATS_FILE_TMPDIR/qtool"
	# shellcheck disable=SC2046
	cc -O2 -std=gnu11 -D_GNU_SOURCE -o "$QTOOL" "$top/bench/qtool.c" \
		$(pkg-config --cflags --libs librabbitmq) || return 1
	env=$("$SANDBOX" --dir "$SB" start-cluster 2>"$BATS_FILE_TMPDIR/sandbox.log") || {
		cat "$BATS_FILE_TMPDIR/sandbox.log" >&2
		return 1
	}
	eval "$env"
	export CQ_AMQP_CLUSTER_URL \
		CQ_CLUSTER_AMQP_URL_1 CQ_CLUSTER_AMQP_URL_2 CQ_CLUSTER_AMQP_URL_3 \
		CQ_CLUSTER_API_URL_1 CQ_CLUSTER_API_URL_2 CQ_CLUSTER_API_URL_3 \
		CQ_CLUSTER_NODE_1 CQ_CLUSTER_NODE_2 CQ_CLUSTER_NODE_3
	export CQ_AMQP_URL=$CQ_AMQP_CLUSTER_URL
	note "cluster up: $(tail -n 1 "$BATS_FILE_TMPDIR/sandbox.log")"
}

# The AMQP URL and port of cluster node $1.
node_url() { local v=CQ_CLUSTER_AMQP_URL_$1; echo "${!v}"; }
node_port() {
	local u
	u=$(node_url "$1")
	u=${u##*:}
	echo "${u%%/*}"
}

# qtool against cluster node $1: qt N depth|drain|... QUEUE [ARG]
qt() {
	local n=$1
	shift
	"$QTOOL" 127.0.0.1 "$(node_port "$n")" "$@"
}

# Queue $2 on node $1 holds at least $3 ready messages.
has_at_least_on() {
	local d
	d=$(qt "$1" depth "$2" 2>/dev/null) || return 1
	[ "$d" -ge "$3" ]
}

# Bring back every cluster node a test killed (each restart: 8-10 s).
cluster_heal() {
	local n
	"$SANDBOX" --dir "$SB" cluster-status >/dev/null 2>&1 && return 0
	for n in 1 2 3; do
		amqp_up "$n" || sb start-node "$n" || true
	done
}

amqp_up() {
	timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$(node_port "$1")" 2>/dev/null
}
