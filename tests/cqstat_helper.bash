# tests/cqstat_helper.bash - loaded by the stats suites (cqstat*.bats,
# cachectl-stats.bats, qctl-stats.bats) after test_helper.
#
# Hit rates and evictions are server-wide, and the sandbox Redis is shared
# by every suite running at the same time, so the tests that pin those
# figures get a private redis-server of their own, on a unix socket in the
# test's temp dir (no port to collide on), stopped in teardown.

# Start a private redis-server; extra arguments go to its command line.
# Sets PRIV_SOCK and PRIV_URL.
priv_redis_start() {
	local dir=$BATS_TEST_TMPDIR/priv-redis i
	mkdir -p "$dir"
	PRIV_SOCK=$dir/redis.sock
	PRIV_URL=unix://$PRIV_SOCK
	redis-server --port 0 --unixsocket "$PRIV_SOCK" --save '' --appendonly no \
		--daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
		--dir "$dir" "$@" >/dev/null || return 1
	for i in $(seq 100); do
		case $(redis-cli -s "$PRIV_SOCK" ping 2>/dev/null) in
		PONG | NOAUTH*) return 0 ;;
		esac
		sleep 0.05
	done
	echo "private redis-server did not start" >&2
	return 1
}

priv_redis_stop() {
	local pidf=$BATS_TEST_TMPDIR/priv-redis/redis.pid pid i
	[ -f "$pidf" ] || return 0
	pid=$(cat "$pidf")
	kill "$pid" 2>/dev/null || return 0
	for i in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	rm -f "$pidf"
}

pcli() {
	redis-cli -s "$PRIV_SOCK" --raw "$@"
}

# The value of a field of INFO of the private server.
pinfo() {
	pcli info | tr -d '\r' | sed -n "s/^$1://p"
}

# Wait until FILE has at least N lines (at most ~10 s).
wait_lines() {
	local file=$1 n=$2 i
	for i in $(seq 200); do
		[ "$(wc -l <"$file" 2>/dev/null || echo 0)" -ge "$n" ] && return 0
		sleep 0.05
	done
	echo "timed out waiting for $n lines in $file" >&2
	return 1
}

# A JSON field of line N of FILE (jq path).
jline() {
	sed -n "${2}p" "$1" | jq -r "$3"
}

# A URL on which nothing listens (loopback port 1) for "server down".
DOWN_REDIS=redis://127.0.0.1:1/0
DOWN_AMQP=amqp://guest:guest@127.0.0.1:1/%2f
