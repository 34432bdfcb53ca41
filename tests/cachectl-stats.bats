#!/usr/bin/env bats
# cachectl stats: the cache figures of Redis since it started.

load test_helper
load cqstat_helper

per_test_setup() {
	priv_redis_start
	export CQ_REDIS_URL=$PRIV_URL
}

@test "name-value lines with the figures of real traffic" {
	cachectl set --ttl 60 a 1
	cachectl set --no-ttl b 2
	cachectl get a >/dev/null
	cachectl get a b >/dev/null
	cachectl get -q nope || true
	run --separate-stderr -0 cachectl stats
	assert_line $'hit_rate\t0.7500'
	assert_line $'hits\t3'
	assert_line $'misses\t1'
	assert_line $'keys\t2'
	assert_line $'keys_no_ttl\t1'
	assert_line $'db_keys[0]\t2'
	assert_line --regexp $'^used_memory\t[0-9]+$'
	assert_line $'maxmemory\t0'
	assert_line $'evicted_total\t0'
	# every line is NAME[LABEL]<TAB>VALUE
	for l in "${lines[@]}"; do
		[[ $l =~ ^[a-z_]+(\[[^]]*\])?$'\t'(-|[0-9]+(\.[0-9]+)?)$ ]] || fail "bad line: $l"
	done
}

@test "--json: one object with the same names" {
	cachectl set --ttl 60 a 1
	cachectl get a >/dev/null
	run -0 cachectl stats --json
	assert_equal "${#lines[@]}" 1
	assert_equal "$(jq -c '.redis | [.up, .hit_rate, .hits, .misses, .keys, .keys_no_ttl]' <<<"$output")" \
		'[true,1,1,0,1,0]'
}

@test "no lookups yet: the hit rate is unknown, shown as -" {
	run -0 cachectl stats
	assert_line $'hit_rate\t-'
	run -0 cachectl stats --json
	assert_equal "$(jq -c .redis.hit_rate <<<"$output")" null
}

@test "--track lists the hit rate of every tracked prefix" {
	CQ_PREFIX=p1: cachectl set --ttl 60 a 1
	CQ_PREFIX=p1: cachectl get --track a >/dev/null
	CQ_PREFIX=p1: cachectl get --track a >/dev/null
	CQ_PREFIX=p1: cachectl get --track -q b || true
	CQ_PREFIX=$'p\t2:' cachectl get --track -q b || true
	run -0 cachectl stats --track
	assert_line $'prefix_hit_rate[p1:]\t0.6667'
	assert_line $'prefix_hits_total[p1:]\t2'
	assert_line $'prefix_misses_total[p\\t2:]\t1'
	run -0 cachectl stats
	refute_line --partial prefix_
}

# The HINCRBY of --track is held by CLIENT PAUSE WRITE, and its client is
# blocked; whatever that client sends meanwhile waits in its query buffer.
sent_behind_hincrby() {
	pcli client list | grep ' cmd=hincrby ' | grep -qv ' qbuf=0 '
}

@test "a tracked fetch miss sends the lock's SET NX before it reads the counter's reply" {
	pcli client pause 20000 WRITE >/dev/null
	CQ_TRACK=1 cachectl fetch k --ttl 1m --timeout 30s -- echo hi >"$TMP/out" 2>&1 3>&- &
	BGPID=$!
	# waiting for the HINCRBY's reply first would be a round trip more:
	# the SET NX would not reach the server before the pause ends
	if ! wait_for 5 sent_behind_hincrby; then
		pcli client list
		pcli client unpause
		fail "the SET NX was not sent before the HINCRBY's reply was read"
	fi
	pcli client unpause >/dev/null
	wait "$BGPID"
	BGPID=
	assert_equal "$(cat "$TMP/out")" hi
	assert_equal "$(pcli hget cq:track "misses:$P")" 1
}

@test "a tracking hash of the wrong type never breaks fetch or get, nor is its error taken for another reply" {
	pcli set cq:track not-a-hash >/dev/null
	export CQ_TRACK=1
	run -0 --separate-stderr cachectl fetch k --ttl 1m -- echo hi
	assert_output hi
	assert_equal "$stderr" ""
	# the miss won the lock and cached the value: the HINCRBY's WRONGTYPE
	# was not read as the lock's SET NX reply, nor any later one
	assert_equal "$(pcli get "${P}k")" hi
	assert_equal "$(pcli keys "*lock*")" ""
	run -0 --separate-stderr cachectl fetch k --ttl 1m -- echo other
	assert_output hi
	assert_equal "$stderr" ""
	run -0 --separate-stderr cachectl get k
	assert_output hi
	assert_equal "$stderr" ""
	assert_equal "$(pcli get cq:track)" not-a-hash
}

@test "evictions and maxmemory of a full cache" {
	pcli config set maxmemory 3mb >/dev/null
	pcli config set maxmemory-policy allkeys-lru >/dev/null
	v=$(head -c 1000 /dev/zero | tr '\0' x)
	for i in $(seq 6000); do echo "SET k$i $v"; done | pcli --pipe >/dev/null
	# any command over maxmemory may evict more: bracket the figure
	e1=$(pinfo evicted_keys)
	run -0 cachectl stats --json
	e2=$(pinfo evicted_keys)
	[ "$e1" -gt 0 ]
	n=$(jq .redis.evicted_total <<<"$output")
	[ "$n" -ge "$e1" ] && [ "$n" -le "$e2" ] || fail "$n not in [$e1, $e2]"
	assert_equal "$(jq .redis.maxmemory <<<"$output")" 3145728
}

@test "Redis unreachable: exit 69 with the reason" {
	run --separate-stderr -69 cachectl stats --redis "$DOWN_REDIS"
	assert_equal "$stderr" "cachectl: stats: cannot connect to Redis at 127.0.0.1:1: Connection refused"
	assert_output ""
}

@test "a password the server refuses: exit 77, the password never printed" {
	priv_redis_stop
	priv_redis_start --requirepass Zq8pass
	run --separate-stderr -77 cachectl stats --redis "unix://:Bad7pwd@$PRIV_SOCK"
	[[ $stderr != *Bad7pwd* ]]
	run --separate-stderr -0 cachectl stats --redis "unix://:Zq8pass@$PRIV_SOCK"
}

@test "usage errors exit 64" {
	run --separate-stderr -64 cachectl stats extra
	assert_equal "${stderr%%$'\n'*}" "cachectl: stats: unexpected argument 'extra'"
	run --separate-stderr -64 cachectl stats --bogus
	run -0 cachectl stats --help
	assert_line -n 0 'usage: cachectl stats [OPTIONS]'
}

@test "a closed stdout is not a crash" {
	run -0 bash -c 'cachectl stats | head -c 1 >/dev/null; echo "${PIPESTATUS[0]}"'
	[[ $output == 0 || $output == 74 ]]
}

@test "cachectl does not load librabbitmq or libcurl" {
	run -0 ldd "$(command -v cachectl)"
	refute_output --partial librabbitmq
	refute_output --partial libcurl
}
