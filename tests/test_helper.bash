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
	# the broker this test's queues are on, whatever the test does to
	# its environment (drop_test_queues)
	_TEST_AMQP_URL=$CQ_AMQP_URL _TEST_API_URL=${CQ_API_URL:-}
	unset CQ_DEFAULT_TTL CQ_TRACK CQ_REDIS_PASSWORD CQ_PASSWORD_FILE ACL_USER
	unset CQ_SENTINEL_USER CQ_SENTINEL_PASSWORD CQ_SENTINEL_PASSWORD_FILE
	if declare -F per_test_setup >/dev/null; then per_test_setup; fi
}

teardown() {
	if declare -F per_test_teardown >/dev/null; then per_test_teardown; fi
	# handlers running $HOLD end now (qctl stopped by SIGTERM waits for them)
	: >"$TMP/release"
	# a background process the test started and named in BGPID
	if [ -n "${BGPID:-}" ] && kill "$BGPID" 2>/dev/null; then
		wait "$BGPID" 2>/dev/null
	fi
	# a handler a test left running (kill -9 of qctl orphans it)
	if [ -s "$TMP/handler.pid" ]; then
		kill -9 "$(cat "$TMP/handler.pid")" 2>/dev/null || true
	fi
	priv_redis_stop
	# a Redis ACL user a test created for itself
	if [ -n "${ACL_USER:-}" ]; then rcli ACL DELUSER "$ACL_USER" >/dev/null 2>&1; fi
	# a suite that makes queues says so with QUEUE_SUITE=1 at load time
	if [ -n "${QUEUE_SUITE:-}" ]; then drop_test_queues; fi
	return 0
}

# A handler (for consume --exec) that holds its message unacked until the
# test ends: it waits for $TMP/release, made by teardown, at most 30 s.
HOLD='for i in $(seq 300); do [ -e "$TMP/release" ] && exit 0; sleep 0.1; done; exit 1'

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

# ---- the broker, seen by other tools than qctl ------------------------

# The management HTTP API: api PATH [curl options...]
api() {
	local path=$1
	shift
	curl -sf -H 'content-type: application/json' "$CQ_API_URL/api/$path" "$@"
}

# NAME percent-encoded for a URL path.
uri() { jq -rn --arg s "$1" '$s | @uri'; }

# Delete queues, quietly, with amqp-delete-queue (a short C program:
# rabbitmqctl costs half a second a call).
drop_queues() {
	local q
	for q in "$@"; do
		amqp-delete-queue -u "$CQ_AMQP_URL" -q "$q" >/dev/null 2>&1 || true
	done
}

# Delete every queue and exchange of this test: $Q, and the names made
# from it ($Q.dlq, $Q.dlx, "$HQ"...), found through the management API.
# In teardown, for the suites that set QUEUE_SUITE=1.
drop_test_queues() {
	local sel name CQ_AMQP_URL=$_TEST_AMQP_URL CQ_API_URL=$_TEST_API_URL
	[ -n "$CQ_API_URL" ] || return 0
	# $Q, or $Q followed by something that no other test's $Q can be
	sel='.[].name | select(. == $q or (startswith($q) and (.[($q | length):($q | length) + 1] | test("[^0-9A-Za-z]"))))'
	api "queues/%2f?columns=name" 2>/dev/null | jq -r --arg q "$Q" "$sel" |
		while IFS= read -r name; do drop_queues "$name"; done
	api "exchanges/%2f?columns=name" 2>/dev/null | jq -r --arg q "$Q" "$sel" |
		while IFS= read -r name; do
			api "exchanges/%2f/$(uri "$name")" -X DELETE >/dev/null 2>&1 || true
		done
	return 0
}

# A figure of queue $1 as rabbitmqctl reports it (it asks the queue
# itself: exact), or $3 when there is no such queue.
queue_field() {
	rctl list_queues -q name "$2" |
		awk -F'\t' -v q="$1" -v none="$3" '$1 == q { print $2; found = 1 } END { if (!found) print none }'
}

# Ready messages in queue $1, or "missing".
ready() { queue_field "$1" messages_ready missing; }

# Every message of the queues named, ready and unacked, added up (a
# missing queue counts 0), in one call of rabbitmqctl.
depth() {
	rctl list_queues -q name messages |
		awk -F'\t' 'BEGIN { for (i = 1; i < ARGC; i++) want[ARGV[i]]; ARGC = 1 }
			     $1 in want { n += $2 } END { print n + 0 }' "$@"
}
depth_at_least() { [ "$(depth "$1")" -ge "$2" ]; }
# Has queue $1 exactly $2 messages ready? (a condition for wait_for)
ready_is() { [ "$(ready "$1")" = "$2" ]; }

# Take every message of queue $1 with amqp-get, one body per line.
take_all() {
	local body
	while body=$(amqp-get -u "$CQ_AMQP_URL" -q "$1" 2>/dev/null); do
		printf '%s\n' "$body"
	done
}

api_up() { curl -sf "$CQ_API_URL/api/overview" >/dev/null; }

# Decoded bodies of every message taken from queue $1 through the API, one
# per line (for bodies without newlines), in batches; the API comes up a
# little after AMQP when a node restarts, so it is waited for.
take_bodies() {
	local batch
	wait_for 60 api_up || return 1
	while :; do
		batch=$(api "queues/%2f/$(uri "$1")/get" -X POST \
			-d '{"count":5000,"ackmode":"ack_requeue_false","encoding":"base64","truncate":200000000}') ||
			return 1
		[ "$batch" = "[]" ] && return 0
		jq -r '.[].payload | @base64d' <<<"$batch"
	done
}

# ---- ports and private servers ------------------------------------------

# A loopback port nobody listens on now, outside the ephemeral range: for
# a "server down" test, or for a server a test starts itself.
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

# alive PID: the process exists and has not exited.  A daemonized server
# is a child of init, and an init that reaps slowly (this machine's takes
# ~2 s) leaves an exited one a zombie that still answers kill -0.
alive() {
	local line st
	{ read -r line <"/proc/$1/stat"; } 2>/dev/null || return 1
	st=${line##*) }
	[[ ${st%% *} != [ZX] ]]
}

# The process is gone: exited, or killed and only waiting to be reaped (a
# zombie answers kill -0; this machine's init reaps orphans seconds late).
gone() {
	if alive "$1"; then return 1; fi
}

# Idle list and stream consumers, for failover tests: QUEUE.list and
# QUEUE.stream get one message each, which `consume -n 6` takes and acks;
# each consumer then waits idle in its blocking read (BLMOVE, XREADGROUP
# BLOCK).  Their output, stderr and pid go to $TMP/{out,err,pid}.BACKEND.
idle_consumers_start() {
	local q=$1 b
	for b in list stream; do
		qctl declare -q --backend "$b" "$q.$b"
		qctl enqueue -q --backend "$b" "$q.$b" "$b-0"
		qctl consume --backend "$b" -n 6 "$q.$b" >"$TMP/out.$b" 2>"$TMP/err.$b" &
		echo $! >"$TMP/pid.$b"
	done
	for b in list stream; do wait_for 10 lines_at_least "$TMP/out.$b" 1; done
}

# The idle consumers of QUEUE carried on (after a master was lost): each
# still runs (asked before giving it its last 5 messages: given them, it
# ends at once), then takes those 5 and ends with exit 0, each message
# once and in order, all 6 acked.
idle_consumers_carry_on() {
	local q=$1 b pid rc
	for b in list stream; do
		pid=$(cat "$TMP/pid.$b")
		kill -0 "$pid" || { cat "$TMP/err.$b"; false; }
		qctl enqueue -q --backend "$b" "$q.$b" $(seq -f "$b-%g" 1 5)
	done
	for b in list stream; do
		pid=$(cat "$TMP/pid.$b")
		rc=0
		wait "$pid" || rc=$?
		[ "$rc" -eq 0 ] || { cat "$TMP/err.$b"; false; }
		assert_equal "$(cat "$TMP/out.$b")" "$(seq -f "$b-%g" 0 5)"
		grep -q "^qctl: consume: consumed 6 messages in .* (6 acked, 0 retried, 0 dead-lettered)$" "$TMP/err.$b"
	done
}

# ---- a consumer's read answered by Redis, its reply lost (the fault
# suites of a Sentinel and a Cluster) ----

# A command in RESP, for redis-cli --pipe.
resp() {
	local a
	printf '*%d\r\n' $#
	for a; do printf '$%d\r\n%s\r\n' "${#a}" "$a"; done
}

# The master on port $1 (its log file $2) gets message $4 (list $3's
# LPUSH, or stream $3's XADD) in one pipeline that drops a client whose
# replies outgrow 64 kB while it runs: a consumer waiting in BLMOVE or
# XREADGROUP BLOCK is served (the move done, and replicated) and its
# connection closed before the reply goes out.  Succeeds when the log
# says it dropped one ($5: blmove or xreadgroup); else the message waits
# in the queue as any other.
drop_reply() {
	local port=$1 log=$2 key=$3 body=$4 cmd=$5 before
	before=$(grep -c "cmd=$cmd .*output buffer limits" "$log" || true)
	{
		resp CONFIG SET client-output-buffer-limit "normal 64kb 64kb 0"
		if [ "$cmd" = blmove ]; then resp LPUSH "$key" "$body"; else resp XADD "$key" '*' body "$body"; fi
		resp CONFIG SET client-output-buffer-limit "normal 0 0 0"
	} | redis-cli -p "$port" --pipe >/dev/null
	[ "$(grep -c "cmd=$cmd .*output buffer limits" "$log" || true)" -gt "$before" ]
}

# A list and a stream consumer of QUEUE.list and QUEUE.stream whose
# handlers write the first 2 bytes of each message to $TMP/lost-got.list
# and lost-got.stream (pids in $TMP/lost-pid.*), waiting idle.
lost_reply_consumers_start() {
	local b
	for b in list stream; do
		qctl declare -q --backend "$b" "$1.$b"
		qctl consume --backend "$b" --exec "cut -c1-2 >>$TMP/lost-got.$b" "$1.$b" 2>"$TMP/lost-err.$b" &
		echo $! >"$TMP/lost-pid.$b"
	done
	sleep 0.5
}

# Each consumer of lost_reply_consumers_start frozen (SIGSTOP) while its
# read waits on the master on port $1 (log $2), which answers it with a
# 100 kB message mN and drops it unanswered (drop_reply): if the read was
# not waiting at that instant, the consumer takes mN as usual, and m(N+1)
# is tried ($TMP/lost-tries.B says how many).  The keys are $P$3.B.
lost_reply_freeze() {
	local b pid cmd try big
	big=$(head -c 100000 /dev/zero | tr '\0' x)
	for b in list stream; do
		pid=$(cat "$TMP/lost-pid.$b")
		cmd=$([ "$b" = list ] && echo blmove || echo xreadgroup)
		for try in 1 2 3 4 5 6; do
			[ "$try" -lt 6 ] || return 1
			kill -STOP "$pid"
			drop_reply "$1" "$2" "$P$3.$b" "m$try$big" "$cmd" && break
			kill -CONT "$pid"
			wait_for 10 lines_at_least "$TMP/lost-got.$b" "$try" || return 1
		done
		echo "$try" >"$TMP/lost-tries.$b"
	done
}

# The frozen consumers go on, the node on port $1 lost: each
# handles its dropped message within its life, once, says so, and ends
# on SIGTERM with exit 0, every message of QUEUE ($2) counted once.
lost_reply_delivered() {
	local b try pid rc
	for b in list stream; do kill -CONT "$(cat "$TMP/lost-pid.$b")"; done
	for b in list stream; do
		try=$(cat "$TMP/lost-tries.$b")
		wait_for 10 lines_at_least "$TMP/lost-got.$b" "$try" || { cat "$TMP/lost-err.$b"; return 1; }
		pid=$(cat "$TMP/lost-pid.$b")
		kill -0 "$pid"
		kill -TERM "$pid"
		rc=0
		wait "$pid" || rc=$?
		echo "# $b: $(tr '\n' ' ' <"$TMP/lost-err.$b")" >&3
		[ "$rc" -eq 0 ] || { cat "$TMP/lost-err.$b"; return 1; }
		assert_equal "$(cat "$TMP/lost-got.$b")" "$(seq -f "m%g" 1 "$try")"
		grep -q "^qctl: consume: consumed $try messages\{0,1\} in .* ($try acked, 0 retried, 0 dead-lettered)$" "$TMP/lost-err.$b" || return 1
	done
	grep -q "^qctl: consume: 1 message in processing list '[^']*cq:processing:[^']*' that this consumer never received (the connection to Redis at 127\.0\.0\.1:$1 was lost before the reply came) went back to '$2.list', to be delivered again$" "$TMP/lost-err.list" &&
	grep -q "^qctl: consume: 1 entry pending in group 'qctl' of stream '$2.stream' under this consumer's name ('.*') that it never received (the connection to Redis at 127\.0\.0\.1:$1 was lost before the reply came): taken back$" "$TMP/lost-err.stream"
}

# File $1 holds at least $2 lines.
lines_at_least() { [ -f "$1" ] && [ "$(wc -l <"$1")" -ge "$2" ]; }

# Start a private redis-server for a test that must own its server (hit
# rates and evictions are server-wide; or the test fills or kills it): on a
# unix socket in the test's temp dir, and with --tcp also on a free
# loopback port.  More arguments go to its command line.  Sets PRIV_SOCK,
# PRIV_PID (its pid file), PRIV_URL (the TCP one with --tcp) and with --tcp
# PRIV_PORT.  Stopped in teardown.
priv_redis_start() {
	local dir=$BATS_TEST_TMPDIR/priv-redis tcp= port=0 try i
	[ "${1:-}" = --tcp ] && { tcp=1; shift; }
	mkdir -p "$dir"
	PRIV_SOCK=$dir/redis.sock
	PRIV_PID=$dir/redis.pid
	for try in 1 2 3 4 5; do
		[ -n "$tcp" ] && port=$(free_port)
		redis-server --port "$port" --bind 127.0.0.1 --unixsocket "$PRIV_SOCK" \
			--save '' --appendonly no --daemonize yes --pidfile "$PRIV_PID" \
			--logfile "$dir/redis.log" --dir "$dir" "$@" >/dev/null || continue
		for i in $(seq 100); do
			case $(redis-cli -s "$PRIV_SOCK" ping 2>/dev/null) in
			PONG | NOAUTH*)
				if [ -n "$tcp" ]; then
					PRIV_PORT=$port
					PRIV_URL=redis://127.0.0.1:$port/0
				else
					PRIV_URL=unix://$PRIV_SOCK
				fi
				return 0 ;;
			esac
			sleep 0.05
		done
		priv_redis_stop
	done
	echo "private redis-server did not start" >&2
	return 1
}

priv_redis_stop() {
	local pidf=$BATS_TEST_TMPDIR/priv-redis/redis.pid pid i
	[ -f "$pidf" ] || return 0
	pid=$(cat "$pidf")
	kill "$pid" 2>/dev/null || { rm -f "$pidf"; return 0; }
	for i in $(seq 100); do
		alive "$pid" || break
		sleep 0.05
	done
	rm -f "$pidf"
}

# redis-cli on the private server.
pcli() {
	redis-cli -s "$PRIV_SOCK" --raw "$@"
}

# For a per_test_teardown: kill -9 the background consumer $BGPID first
# (it would start handlers again for retries), then each handler listed
# in $TMP/handlers, the leader of its own process group.
kill_consumer_and_handlers() {
	local pid
	[ -n "${BGPID:-}" ] && kill -9 "$BGPID" 2>/dev/null
	for pid in $(cat "$TMP/handlers" 2>/dev/null); do
		kill -9 -- "-$pid" 2>/dev/null
	done
	return 0
}

# Purge queue $1 again and again while $BGPID (a producer) runs, then once
# more: $purged gets the sum of what each purge said it deleted.
purge_while_producing() {
	local got
	purged=0
	while kill -0 "$BGPID" 2>/dev/null; do
		got=$(qctl purge --yes "$1")
		purged=$((purged + $(sed -n 's/^purged \([0-9]*\) messages* from .*/\1/p' <<<"$got")))
	done
	wait "$BGPID"
	BGPID=
	got=$(qctl purge --yes "$1")
	purged=$((purged + $(sed -n 's/^purged \([0-9]*\) messages* from .*/\1/p' <<<"$got")))
}

# The lowest and highest TTL in ms of keys $P$1 followed by 1 to $2, as
# "MIN MAX" (jitter tests).
pttl_range() {
	local i t min=999999 max=0
	for i in $(seq 1 "$2"); do
		t=$(rcli pttl "$P$1$i")
		[ "$t" -lt "$min" ] && min=$t
		[ "$t" -gt "$max" ] && max=$t
	done
	echo "$min $max"
}

# A private Redis (priv_redis_start --tcp) that refuses writes once it is
# full (maxmemory 2 MB, noeviction), and $TMP/in: 20 lines of 200 KB, more
# than it holds.
priv_redis_full() {
	priv_redis_start --tcp --maxmemory 2mb --maxmemory-policy noeviction
	head -c 200000 /dev/zero | tr '\0' x >"$TMP/big"
	for i in $(seq 1 20); do cat "$TMP/big"; echo; done >"$TMP/in"
}

# Enqueue $TMP/in to queue $Q on the full private Redis: exit 75, and the
# lines named as not confirmed, with Redis's reason, are exactly those the
# queue does not have (its length: pcli with the arguments given).
enqueue_to_full_redis() {
	run -75 --separate-stderr qctl --redis "$PRIV_URL" enqueue "$Q" <"$TMP/in"
	local have
	have=$(pcli "$@")
	[ "$have" -gt 0 ]
	[ "$have" -lt 20 ]
	[[ "$stderr" == *"qctl: enqueue: lines $((have + 1))-20: not confirmed: refused by Redis: out of memory (maxmemory)"* ]]
}

# The lines of INPUT that an `enqueue --json` report (FAILED, one JSON record
# per line) says to re-send: qctl(1)'s recipe, named lines and a never-sent
# range ({"from_line":N}), in input order.
resend_lines() {
	jq -r '.line // "\(.from_line)-"' "$1" |
		awk 'NR == FNR { if (sub(/-$/, "")) from = $0 + 0; else want[$0]; next }
		     FNR in want || (from && FNR >= from)' - "$2"
}

# A Redis Cluster of a suite's own, in state dir $1 (scripts/sandbox
# start-redis-cluster with the rest of the arguments): its URL becomes
# CQ_REDIS_URL (CQ_REDIS_CLUSTER_PORTS names its nodes' ports).
# redis_cluster_stop DIR stops it (nothing when none runs there).
redis_cluster_start() {
	local dir=$1 env
	shift
	env=$("$TOP/scripts/sandbox" --dir "$dir" start-redis-cluster "$@" 2>"$dir.rc.log") ||
		{ cat "$dir.rc.log"; return 1; }
	eval "$env"
	export CQ_REDIS_URL=$CQ_REDIS_CLUSTER_URL
}

redis_cluster_stop() {
	[ -d "$1/redis-cluster" ] || return 0
	"$TOP/scripts/sandbox" --dir "$1" stop-redis-cluster >/dev/null 2>&1 || true
}

# Fail if one of the secrets given shows anywhere in the last run (stdout
# or, with run --separate-stderr, stderr).
refute_printed() {
	local s
	for s in "$@"; do
		if [[ "$output" == *"$s"* ]] || [[ "${stderr:-}" == *"$s"* ]]; then
			echo "secret '$s' printed:"
			echo "stdout: $output"
			echo "stderr: ${stderr:-}"
			return 1
		fi
	done
}

# SIGTERM to a warm in the middle of its input, on whatever Redis
# CQ_REDIS_URL names: `cachectl warm --json` reads $1 lines (w1..w$1)
# from a pipe that then stays open and silent (--window 4: each line is
# sent at once, not with the next batch); once "$2 ARGS..." (a command
# printing how many of the test's w* keys the server holds, counted
# without cachectl) says $1, warm gets SIGTERM.  It must exit 75 saying
# so, every line read written and counted once, the next named.
warm_stopped_midway() {
	local n=$1 rc=0 pid
	shift
	mkfifo "$TMP/warm.in"
	( seq 1 "$n" | awk '{ printf "w%d\tv%d\n", $1, $1 }'; exec sleep 60 ) >"$TMP/warm.in" 3>&- &
	local writer=$!
	cachectl warm --ttl 1h --json --window 4 "$TMP/warm.in" >"$TMP/warm.out" 2>"$TMP/warm.err" 3>&- &
	pid=$!
	wait_for 20 warm_holds "$n" "$@" || { kill "$pid" "$writer"; return 1; }
	kill -TERM "$pid"
	wait "$pid" || rc=$?
	kill "$writer" 2>/dev/null
	cat "$TMP/warm.err"
	[ "$rc" = 75 ]
	grep -qx "cachectl: warm: stopped by SIGTERM" "$TMP/warm.err"
	grep -qx "cachectl: warm: 0 keys not confirmed written; lines from $((n + 1)) on not read" "$TMP/warm.err"
	[ "$(jq -c '[.warmed, .failed, .stopped]' "$TMP/warm.out")" = "[$n,0,true]" ]
	[ "$("$@")" = "$n" ]
}
warm_holds() {
	local n=$1
	shift
	[ "$("$@")" = "$n" ]
}

# Field $2 of the (first) group of stream $1, XINFO GROUPS: entries-read,
# lag, pending...
group_field() {
	rcli XINFO GROUPS "$1" | awk -v f="$2" 'p { print; exit } $0 == f { p = 1 }'
}
