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
