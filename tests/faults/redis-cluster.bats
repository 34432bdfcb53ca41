#!/usr/bin/env bats
# Redis Cluster under stress (issue 11 §3): cachectl warm into a private
# cluster (scripts/sandbox start-redis-cluster, in this suite's own
# directory) while redis-cli --cluster reshard moves slots, and while a
# master is killed with SIGKILL, with and without a replica to take over.
# Every key is counted with redis-cli on the masters, never with cachectl.

bats_require_minimum_version 1.5.0
# test_helper wants a sandbox's URLs at load time: this suite needs none
: "${CQ_REDIS_URL:=redis://127.0.0.1:1/0}" "${CQ_AMQP_URL:=amqp://guest:guest@127.0.0.1:1/%2f}"
export CQ_REDIS_URL CQ_AMQP_URL
load ../test_helper

setup_file() {
	export RC_DIR="$BATS_FILE_TMPDIR/rc"
}

teardown_file() {
	"$TOP/scripts/sandbox" --dir "$RC_DIR" stop >/dev/null 2>&1
	return 0
}

# Start (or reuse) a cluster: sandbox start-redis-cluster ARGS.
cluster() {
	local env
	env=$("$TOP/scripts/sandbox" --dir "$RC_DIR" start-redis-cluster "$@" 2>"$TMP/rc.log") || {
		cat "$TMP/rc.log" >&2
		return 1
	}
	eval "$env"
	export CQ_REDIS_URL=$CQ_REDIS_CLUSTER_URL
	read -r P1 P2 P3 P4 P5 P6 <<<"$CQ_REDIS_CLUSTER_PORTS"
}

ncli() {
	local p=$1
	shift
	redis-cli -h 127.0.0.1 -p "$p" --raw "$@"
}

# The ports of the nodes that are masters now.
masters() {
	local p
	for p in $CQ_REDIS_CLUSTER_PORTS; do
		[ "$(ncli "$p" role 2>/dev/null | head -n 1)" = master ] && echo "$p"
	done
	return 0
}

cluster_ok() {
	local p
	for p in $(masters); do
		ncli "$p" cluster info | grep -q 'cluster_state:ok' || return 1
	done
}

# This test's keys on every master, one per line.
all_keys() {
	local p
	for p in $(masters); do ncli "$p" --scan --pattern "${P}*"; done
}

# How many of this test's keys on the masters have no TTL.
keys_without_ttl() {
	local p n=0
	for p in $(masters); do
		n=$((n + $(ncli "$p" eval "local n = 0 for _, k in ipairs(redis.call('keys', ARGV[1])) do if redis.call('pttl', k) < 0 then n = n + 1 end end return n" 0 "${P}*")))
	done
	echo "$n"
}

# A node a test stopped (SIGSTOP) goes on again, even when the test
# failed; consumers it stopped are killed.
per_test_teardown() {
	local pid
	[ -z "${STOPPED_PID:-}" ] || kill -CONT "$STOPPED_PID" 2>/dev/null
	for pid in ${STOPPED_PIDS:-}; do kill -9 "$pid" 2>/dev/null; done
	return 0
}

# process $1 has ended (gone, or a zombie not waited for yet)
gone() {
	local st
	st=$(ps -o stat= -p "$1" 2>/dev/null)
	[ -z "$st" ] || [[ $st == Z* ]]
}

# N lines of input: key TAB value.
input() { seq 1 "$1" | awk '{ printf "k%d\tvalue %d\n", $1, $1 }'; }

# The line numbers a warm's stderr names as not written, sorted.
named_lines() { sed -n 's/^cachectl: warm: line \([0-9]*\): .*/\1/p' "$1" | sort -n -u; }

@test "a live redis-cli --cluster reshard while warm writes 200,000 keys: every key present with its TTL" {
	local rc=0
	cluster --replicas 0
	input 200000 >"$TMP/in.tsv"
	cachectl warm --ttl 1h --rate 15000 "$TMP/in.tsv" 2>"$TMP/warm.err" &
	BGPID=$!
	sleep 0.5
	kill -0 "$BGPID"
	run -0 redis-cli --cluster reshard "127.0.0.1:$P1" --cluster-from "$(ncli "$P1" cluster myid)" \
		--cluster-to "$(ncli "$P2" cluster myid)" --cluster-slots 1000 --cluster-yes
	# the slots moved while warm was writing
	kill -0 "$BGPID" || { cat "$TMP/warm.err" >&2; false; }
	wait "$BGPID" || rc=$?
	BGPID=
	[ "$rc" -eq 0 ] || { cat "$TMP/warm.err" >&2; false; }
	run -0 cat "$TMP/warm.err"
	assert_output --regexp '^warmed 200000 keys in [0-9.]+s \(0 skipped, 0 failed\)$'
	[ "$(all_keys | sort -u | wc -l)" -eq 200000 ]
	[ "$(keys_without_ttl)" -eq 0 ]
	[ "$(redis-cli -c -h 127.0.0.1 -p "$P3" --raw get "${P}k123456")" = "value 123456" ]
	# node 2 serves the moved slots now
	ncli "$P1" cluster nodes | grep -q "127.0.0.1:$P2@[0-9]* .*master.* 0-999"
}

@test "kill -9 of a master during warm: its replica takes over and every line is written once" {
	local rc=0
	cluster --replicas 1
	input 200000 >"$TMP/in.tsv"
	cachectl warm --ttl 1h --rate 40000 "$TMP/in.tsv" 2>"$TMP/warm.err" &
	BGPID=$!
	sleep 1.5
	"$TOP/scripts/sandbox" --dir "$RC_DIR" kill-redis-node 1
	wait "$BGPID" || rc=$?
	BGPID=
	[ "$rc" -eq 0 ] || { cat "$TMP/warm.err" >&2; false; }
	run -0 cat "$TMP/warm.err"
	assert_output --regexp '^warmed 200000 keys in [0-9.]+s \(0 skipped, 0 failed\)$'
	# node 1's replica is a master now
	[ "$(masters | grep -vc "^$P1\$")" -eq 3 ]
	[ "$(all_keys | sort -u | wc -l)" -eq 200000 ]
	[ "$(keys_without_ttl)" -eq 0 ]
}

@test "kill -9 of a master with a replica during a loop of cachectl set and get on its slots: every command succeeds" {
	local i tag='' n
	cluster --replicas 1
	# a hash tag of node 1's slots (redis-cli answers MOVED for another's)
	for i in $(seq 1 50); do
		[ "$(ncli "$P1" exists "${P}{r$i}k")" = 0 ] && { tag="{r$i}"; break; }
	done
	[ -n "$tag" ]
	# 8 s of set then get, one process each, through the kill
	(
		i=0 end=$((SECONDS + 8))
		while [ "$SECONDS" -lt "$end" ]; do
			i=$((i + 1))
			cachectl set "${tag}k$i" "v$i" --ttl 1h || { echo "set $i: exit $?"; exit 1; }
			[ "$(cachectl get "${tag}k$i")" = "v$i" ] || { echo "get $i"; exit 1; }
			echo "$i" >"$TMP/n"
		done
	) >"$TMP/loop.log" 2>&1 &
	BGPID=$!
	sleep 1
	"$TOP/scripts/sandbox" --dir "$RC_DIR" kill-redis-node 1
	wait "$BGPID" || { cat "$TMP/loop.log" >&2; false; }
	BGPID=
	[ ! -s "$TMP/loop.log" ]
	n=$(cat "$TMP/n")
	# node 1's replica is a master now, and it took commands after the kill
	[ "$(masters | grep -vc "^$P1\$")" -eq 3 ]
	[ "$n" -gt 20 ]
	for i in 1 $((n / 2)) "$n"; do
		[ "$(redis-cli -c -h 127.0.0.1 -p "$P2" --raw get "${P}${tag}k$i")" = "v$i" ]
	done
	[ "$(all_keys | grep -c "^${P}${tag}k")" -eq "$n" ]
}

# A hash tag of node 1's slots (redis-cli answers MOVED for another's).
node1_tag() {
	local i
	for i in $(seq 1 50); do
		[ "$(ncli "$P1" exists "${P}{r$i}k")" = 0 ] && { echo "{r$i}"; return 0; }
	done
	return 1
}

# The master that serves hash tag $1 now, other than node 1.
tag_master() {
	local i
	for i in $(masters | grep -vx "$P1"); do
		[ "$(ncli "$i" exists "${P}$1k")" = 0 ] && echo "$i"
	done
	return 0
}

@test "kill -9 of the master of a list and a stream queue under idle consumers (BLMOVE, XREADGROUP BLOCK), and under others whose reads it answered, the replies lost: its replica takes over, every consumer carries on, every message consumed and acked once" {
	local i q tag new
	cluster --replicas 1
	tag=$(node1_tag)
	[ -n "$tag" ]
	# each takes and acks its first message and waits, idle
	idle_consumers_start "$tag$Q"
	# and on queues of their own, two frozen with a message node 1 moved
	# for them and dropped unanswered
	lost_reply_consumers_start "$tag$Q.lost"
	STOPPED_PIDS="$(cat "$TMP"/pid.* "$TMP"/lost-pid.*)"
	lost_reply_freeze "$P1" "$RC_DIR/redis-cluster/n1/redis.log" "$tag$Q.lost"
	# node 1's replica has all of it
	[ "$(printf 'SET %s 1\nWAIT 1 2000\n' "${P}${tag}sync" | ncli "$P1" | tail -1)" = 1 ]
	"$TOP/scripts/sandbox" --dir "$RC_DIR" kill-redis-node 1
	# neither consumer gave up; what is enqueued once a replica took over
	# reaches them
	idle_consumers_carry_on "$tag$Q"
	# the frozen ones handle theirs (back from the processing list; their
	# own pending entry read again) on node 1's replica
	lost_reply_delivered "$P1" "$tag$Q.lost"
	# counted on the node that serves the tag now: node 1's replica
	new=$(tag_master "$tag")
	[ -n "$new" ]
	[ "$new" != "$P1" ]
	for q in "$Q" "$Q.lost"; do
		run -0 ncli "$new" LLEN "${P}$tag$q.list"
		assert_output 0
		run -0 ncli "$new" XPENDING "${P}$tag$q.stream" qctl
		assert_line -n 0 0
	done
	[ -z "$(ncli "$new" --scan --pattern "*$Q*.list*processing*" |
		while read -r k; do [ "$(ncli "$new" LLEN "$k")" = 0 ] || echo "$k"; done)" ]
	run -0 ncli "$new" XLEN "${P}$tag$Q.stream"
	assert_output 6
}

@test "a manual CLUSTER FAILOVER during warm: the old master's MOVED names a node warm has not met, every line written once" {
	local rc=0 p r='' m i
	cluster --replicas 1
	# a replica the URL does not name: warm meets it through a MOVED
	for p in $P4 $P5 $P6; do
		[ "$(ncli "$p" role 2>/dev/null | head -n 1)" = slave ] && { r=$p; break; }
	done
	[ -n "$r" ]
	m=$(ncli "$r" role | sed -n 3p)
	input 200000 >"$TMP/in.tsv"
	# bursts of 4,000 lines (no --rate: warm reads replies as it goes,
	# not in a sync every 50 ms)
	for i in $(seq 0 49); do
		sed -n "$((i * 4000 + 1)),$((i * 4000 + 4000))p" "$TMP/in.tsv"
		sleep 0.1
	done | cachectl warm --ttl 1h 2>"$TMP/warm.err" &
	BGPID=$!
	sleep 2
	[ "$(ncli "$r" cluster failover)" = OK ]
	wait "$BGPID" || rc=$?
	BGPID=
	[ "$rc" -eq 0 ] || { cat "$TMP/warm.err" >&2; false; }
	run -0 cat "$TMP/warm.err"
	assert_output --regexp '^warmed 200000 keys in [0-9.]+s \(0 skipped, 0 failed\)$'
	# the replica is a master now, its old master a replica
	[ "$(ncli "$r" role | head -n 1)" = master ]
	[ "$(ncli "$m" role | head -n 1)" = slave ]
	[ "$(all_keys | sort -u | wc -l)" -eq 200000 ]
	[ "$(keys_without_ttl)" -eq 0 ]
}

@test "kill -9 of a master with no replica: warm exits 75 naming the lines not written, and they complete the set" {
	local rc=0
	cluster --replicas 0 --aof
	input 60000 >"$TMP/in.tsv"
	cachectl warm --ttl 1h --rate 30000 --timeout 1s "$TMP/in.tsv" 2>"$TMP/warm.err" &
	BGPID=$!
	sleep 1
	"$TOP/scripts/sandbox" --dir "$RC_DIR" kill-redis-node 1
	wait "$BGPID" || rc=$?
	BGPID=
	[ "$rc" -eq 75 ] || { tail "$TMP/warm.err" >&2; false; }
	named_lines "$TMP/warm.err" >"$TMP/named"
	[ -s "$TMP/named" ]
	grep -q "^cachectl: warm: line [0-9]*: write refused: not written: Redis at 127.0.0.1:$P1 went down and no node took over its slots within 3s$" "$TMP/warm.err"
	# node 1 comes back with what it had written (its append-only file)
	"$TOP/scripts/sandbox" --dir "$RC_DIR" start-redis-node 1
	wait_for 30 cluster_ok
	# every line not named was written
	all_keys | sed "s/^${P}k//" | sort -n -u >"$TMP/present"
	[ "$(sort -n -u "$TMP/present" "$TMP/named" | wc -l)" -eq 60000 ]
	# re-running the named lines completes the set
	awk 'NR == FNR { want[$1]; next } FNR in want' "$TMP/named" "$TMP/in.tsv" >"$TMP/again.tsv"
	[ "$(wc -l <"$TMP/again.tsv")" -eq "$(wc -l <"$TMP/named")" ]
	run -0 cachectl warm --ttl 1h "$TMP/again.tsv"
	[ "$(all_keys | sort -u | wc -l)" -eq 60000 ]
	[ "$(keys_without_ttl)" -eq 0 ]
}

@test "kill -9 of a master with no replica: a get on its slots waits 3x --timeout, then exits 75 naming the command" {
	local i tag='' t0
	cluster --replicas 0 --aof	# the cluster the test above left whole
	for i in $(seq 1 50); do
		[ "$(ncli "$P1" exists "${P}{g$i}k")" = 0 ] && { tag="{g$i}"; break; }
	done
	[ -n "$tag" ]
	"$TOP/scripts/sandbox" --dir "$RC_DIR" kill-redis-node 1
	t0=$SECONDS
	run -75 --separate-stderr cachectl get --timeout 1s "${tag}k"
	[ $((SECONDS - t0)) -ge 3 ]
	assert_regex "$stderr" "^cachectl: get: GET: not done: Redis at 127\.0\.0\.1:$P1 went down and no node took over its slots within 3s \(cannot connect to Redis at 127\.0\.0\.1:$P1: Connection refused\)$"
}

@test "a master that hangs (SIGSTOP) with no replica: get and warm give up on it 3x --timeout after it was first lost, exit 75" {
	local rc=0 pid i tag='' t0
	cluster --replicas 0
	for i in $(seq 1 50); do
		[ "$(ncli "$P2" exists "${P}{h$i}k")" = 0 ] && { tag="{h$i}"; break; }
	done
	[ -n "$tag" ]
	# not the URL's first node (CLUSTER SLOTS is asked of that one)
	input 3000 >"$TMP/in.tsv"
	pid=$(ncli "$P2" info server | tr -d '\r' | sed -n 's/^process_id://p')
	kill -STOP "$pid"
	STOPPED_PID=$pid
	# it takes connections and never answers: each try timed out (16 of
	# 2 s for a get, hundreds for warm)
	t0=$SECONDS
	run -75 --separate-stderr cachectl get --timeout 2s "${tag}k"
	[ $((SECONDS - t0)) -lt 20 ]
	assert_equal "$stderr" "cachectl: get: GET: not done: Redis at 127.0.0.1:$P2 went down and no node took over its slots within 6s (Redis at 127.0.0.1:$P2 timed out (--timeout 2000ms))"
	cachectl warm --ttl 1h --timeout 2s "$TMP/in.tsv" 2>"$TMP/warm.err" &
	BGPID=$!
	wait_for 60 gone "$BGPID" || { tail -3 "$TMP/warm.err" >&2; false; }
	wait "$BGPID" || rc=$?
	BGPID=
	[ "$rc" -eq 75 ] || { tail -3 "$TMP/warm.err" >&2; false; }
	grep -q "^cachectl: warm: line [0-9]*: write refused: not written: Redis at 127.0.0.1:$P2 went down and no node took over its slots within 6s$" "$TMP/warm.err" ||
		{ tail -3 "$TMP/warm.err" >&2; false; }
	kill -CONT "$pid"
	STOPPED_PID=
}
