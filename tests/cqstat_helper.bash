# tests/cqstat_helper.bash - loaded by the stats suites (cqstat*.bats,
# cachectl-stats.bats, qctl-stats.bats) after test_helper.
#
# Hit rates and evictions are server-wide, and the sandbox Redis is shared
# by every suite running at the same time, so the tests that pin those
# figures get a private redis-server of their own (test_helper's
# priv_redis_start, on a unix socket in the test's temp dir).

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
