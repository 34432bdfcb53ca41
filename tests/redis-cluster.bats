#!/usr/bin/env bats
# Redis Cluster (issue 11 §3): cachectl against a private cluster of 3
# masters (scripts/sandbox start-redis-cluster, in this suite's own
# directory): commands routed by key, MOVED, ASK from a slot migration
# done by hand, get/set/fetch/multi-get, warm, a URL whose every seed is
# down, a list with a dead first node in front of a single Redis, and a
# slot no node serves.  What is written is counted with redis-cli on each
# node, never with cachectl.

bats_require_minimum_version 1.5.0
load test_helper

setup_file() {
	export RC_DIR="$BATS_FILE_TMPDIR/rc"
	local env
	env=$("$TOP/scripts/sandbox" --dir "$RC_DIR" start-redis-cluster 2>"$BATS_FILE_TMPDIR/rc.log") || {
		cat "$BATS_FILE_TMPDIR/rc.log" >&2
		return 1
	}
	eval "$env"
	export CQ_REDIS_CLUSTER_URL CQ_REDIS_CLUSTER_PORTS
}

teardown_file() {
	"$TOP/scripts/sandbox" --dir "$RC_DIR" stop >/dev/null 2>&1
	return 0
}

per_test_setup() {
	SINGLE_URL=$CQ_REDIS_URL
	export CQ_REDIS_URL=$CQ_REDIS_CLUSTER_URL
	read -r P1 P2 P3 <<<"$CQ_REDIS_CLUSTER_PORTS"
	FIX_SLOT='' FIX_ADD='' FIX_PASS='' FIX_KEYS=''
}

# A test that changed a slot's state puts it back, even when it failed;
# one that wrote many keys (FIX_KEYS, a pattern) removes them, so that the
# masters' key counts stay near each other for the tests that compare them.
per_test_teardown() {
	local p
	if [ -n "$FIX_KEYS" ]; then
		for p in $P1 $P2 $P3; do
			ncli "$p" eval "for _, k in ipairs(redis.call('keys', ARGV[1])) do redis.call('unlink', k) end" 0 "$FIX_KEYS" >/dev/null 2>&1
		done
	fi
	if [ -n "$FIX_PASS" ]; then
		for p in $P1 $P2 $P3; do
			ncli "$p" -a "$FIX_PASS" --no-auth-warning config set requirepass '' >/dev/null 2>&1
		done
	fi
	if [ -n "$FIX_SLOT" ]; then
		for p in $P1 $P2 $P3; do ncli "$p" cluster setslot "$FIX_SLOT" stable >/dev/null 2>&1; done
	fi
	if [ -n "$FIX_ADD" ]; then
		ncli "$FIX_ADD" cluster addslots "$FIX_SLOT" >/dev/null 2>&1
		wait_for 20 cluster_ok
	fi
	return 0
}

# redis-cli on the node listening on port $1.
ncli() {
	local p=$1
	shift
	redis-cli -h 127.0.0.1 -p "$p" --raw "$@"
}

# redis-cli in cluster mode (it follows redirections itself).
ccli() { redis-cli -c -h 127.0.0.1 -p "$P1" --raw "$@"; }

cluster_ok() {
	local p
	for p in $P1 $P2 $P3; do
		ncli "$p" cluster info | grep -q 'cluster_state:ok' || return 1
	done
}

slot_of() { ncli "$P1" cluster keyslot "$1"; }

# The port of the master that serves key $1, from CLUSTER SLOTS.
owner() {
	local s
	s=$(slot_of "$1")
	ncli "$P1" cluster nodes | awk -v s="$s" '
		$3 ~ /master/ {
			for (i = 9; i <= NF; i++) {
				n = split($i, r, "-")
				if (n == 1) r[2] = r[1]
				if (s >= r[1] + 0 && s <= r[2] + 0) {
					split($2, a, "[:@]")
					print a[2]
					exit
				}
			}
		}'
}

node_id() { ncli "$1" cluster myid; }

# How many keys of this test live on the node at port $1.
keys_on() { ncli "$1" --scan --pattern "$P*" | wc -l; }

@test "set and get on a cluster: each key is written on the master that owns its slot" {
	local x k used=0
	for x in $(seq 30); do
		run -0 cachectl set "k$x" "v$x" --ttl 1h
	done
	for x in $(seq 30); do
		k="${P}k$x"
		[ "$(ncli "$(owner "$k")" get "$k")" = "v$x" ]
		run -0 cachectl get "k$x"
		assert_output "v$x"
	done
	for p in $P1 $P2 $P3; do
		[ "$(keys_on "$p")" -gt 0 ] && used=$((used + 1))
	done
	[ "$used" -eq 3 ]
	[ $(($(keys_on "$P1") + $(keys_on "$P2") + $(keys_on "$P3"))) -eq 30 ]
}

@test "get K1 K2 ... over the three masters: pipelined per node, printed in input order" {
	local x args=() want=''
	for x in $(seq 20); do
		ccli set "${P}m$x" "val $x" >/dev/null
		args+=("m$x")
		want+="val $x"$'\n'
		if [ "$x" = 10 ]; then
			args+=(nothing-here)
			want+=$'\n'
		fi
	done
	run -1 --separate-stderr cachectl get "${args[@]}"
	[ "$output" = "${want%$'\n'}" ]
	# the keys really are spread over the nodes
	[ "$(keys_on "$P1")" -gt 0 ]
	[ "$(keys_on "$P2")" -gt 0 ]
	[ "$(keys_on "$P3")" -gt 0 ]
}

@test "get K1 K2 ... over the masters: a key of another type among them is exit 65 naming it; binary values and a closed pipe as on one Redis" {
	local x args=()
	head -c 100000 /dev/zero | tr '\0' v >"$TMP/v"
	for x in $(seq 20); do
		ccli -x set "${P}m$x" <"$TMP/v" >/dev/null
		args+=("m$x")
		[ "$x" = 12 ] && args+=(lst)
	done
	ccli rpush "${P}lst" a >/dev/null
	run -65 --separate-stderr cachectl get "${args[@]}"
	assert_equal "$stderr" "cachectl: get: get 'lst': the key holds a non-string type"
	# NUL bytes and newlines, byte for byte, on whichever master
	printf 'a\0b\nc\377' >"$TMP/bin"
	cachectl set bin --ttl 1m - <"$TMP/bin"
	cachectl get -n bin | cmp - "$TMP/bin"
	# a reader that goes away (2 MB of values): 74, silently
	run -0 --separate-stderr bash -c 'cachectl get "$@" | head -c 1 >/dev/null; echo "${PIPESTATUS[0]}"' _ \
		$(seq -f 'm%g' 20)
	assert_equal "$output" 74
	assert_equal "$stderr" ""
}

@test "a URL naming one master only: MOVED sends each command to the owner, and the map is learnt" {
	local k p
	export CQ_REDIS_URL="redis://127.0.0.1:$P2/0"
	for x in $(seq 12); do
		run -0 --separate-stderr cachectl set "mv$x" "w$x" --ttl 1h
		assert_equal "$stderr" ""
	done
	for x in $(seq 12); do
		k="${P}mv$x"
		p=$(owner "$k")
		[ "$(ncli "$p" get "$k")" = "w$x" ]
		[ "$(ncli "$p" pttl "$k")" -gt 3500000 ]
	done
	# some of them were not the seed's: they came back MOVED
	[ "$(keys_on "$P1")" -gt 0 ]
	[ "$(keys_on "$P3")" -gt 0 ]
	run -0 cachectl get mv1 mv2 mv3 mv4 mv5 mv6 mv7 mv8 mv9 mv10 mv11 mv12
	assert_output "$(printf 'w%s\n' $(seq 12))"
}

@test "ASK during a slot migration done by hand: ASKING plus the command on the importing node" {
	local k="${P}{ask}old" k2="${P}{ask}new" s src dst p
	ccli set "$k" before >/dev/null
	s=$(slot_of "$k")
	src=$(owner "$k")
	for p in $P1 $P2 $P3; do [ "$p" != "$src" ] && dst=$p; done
	FIX_SLOT=$s
	[ "$(ncli "$dst" cluster setslot "$s" importing "$(node_id "$src")")" = OK ]
	[ "$(ncli "$src" cluster setslot "$s" migrating "$(node_id "$dst")")" = OK ]
	[ "$(ncli "$src" migrate 127.0.0.1 "$dst" "$k" 0 5000)" = OK ]
	# the key moved: its old node answers ASK, the client must follow it
	run ncli "$src" get "$k"
	assert_output --partial "ASK $s 127.0.0.1:$dst"
	run -0 --separate-stderr cachectl get "{ask}old"
	assert_output before
	# a new key of the migrating slot is written on the importing node
	run -0 --separate-stderr cachectl set "{ask}new" after --ttl 1h
	assert_equal "$stderr" ""
	run -0 bash -c "printf 'ASKING\nGET %s\nASKING\nPTTL %s\n' '$k2' '$k2' | redis-cli -h 127.0.0.1 -p $dst --raw"
	assert_line --index 1 after
	[ "${lines[3]}" -gt 3500000 ]
	# ASK is for that command only: the map still names the old node
	[ "$(owner "$k2")" = "$src" ]
	# finish the migration as redis-cli --cluster would
	for p in $P1 $P2 $P3; do ncli "$p" cluster setslot "$s" node "$(node_id "$dst")" >/dev/null; done
	FIX_SLOT=''
	run -0 cachectl get "{ask}old" "{ask}new"
	assert_output $'before\nafter'
}

@test "fetch on a cluster: the value, its lock and its metadata share the key's slot" {
	local k s p n=0
	echo 0 >"$TMP/runs"
	for x in 1 2; do
		run -0 --separate-stderr cachectl fetch --ttl 1h --stale 1m "f1" -- \
			sh -c 'echo $(($(cat "$1") + 1)) >"$1"; echo computed' sh "$TMP/runs"
		assert_output computed
	done
	[ "$(cat "$TMP/runs")" = 1 ]
	s=$(slot_of "${P}f1")
	p=$(owner "${P}f1")
	# the data key and its metadata, on one node, in one slot
	while read -r k; do
		[ "$(slot_of "$k")" = "$s" ]
		n=$((n + 1))
	done < <(ncli "$p" --scan --pattern "*${P}f1*")
	[ "$n" -eq 2 ]
	[ "$(ncli "$p" get "${P}f1")" = computed ]
}

@test "warm into a cluster: every key on its owner with its TTL, and the tag set complete" {
	local p total=0 nottl=0
	seq 1 6000 | awk '{ printf "w%d\tvalue %d\n", $1, $1 }' >"$TMP/in.tsv"
	run -0 --separate-stderr cachectl warm --ttl 1h --tag t1 "$TMP/in.tsv"
	assert_equal "$stderr" "warmed 6000 keys in ${stderr#warmed 6000 keys in }"
	assert_output ''
	for p in $P1 $P2 $P3; do
		total=$((total + $(ncli "$p" --scan --pattern "${P}w*" | wc -l)))
		nottl=$((nottl + $(ncli "$p" eval "local n = 0 for _, k in ipairs(redis.call('keys', ARGV[1])) do if redis.call('pttl', k) < 0 then n = n + 1 end end return n" 0 "${P}w*")))
	done
	[ "$total" -eq 6000 ]
	[ "$nottl" -eq 0 ]
	[ "$(ccli get "${P}w4321")" = "value 4321" ]
	[ "$(ccli scard "${P}cq:tag:t1")" -eq 6000 ]
}

@test "a cluster URL whose every seed is down: exit 69 naming each of them" {
	local a b
	a=$(free_port)
	b=$(free_port)
	export CQ_REDIS_URL="redis://127.0.0.1:$a,127.0.0.1:$b/0"
	run -69 --separate-stderr cachectl get k
	assert_equal "$stderr" "cachectl: get: cannot connect to any node of the Redis URL (127.0.0.1:$a, 127.0.0.1:$b): cannot connect to Redis at 127.0.0.1:$a: Connection refused"
}

@test "a list of nodes in front of a single Redis: a dead first node is skipped" {
	local a hp=${SINGLE_URL#redis://}
	a=$(free_port)
	local list="redis://127.0.0.1:$a,${hp%%/*}/0"
	export CQ_REDIS_URL=$SINGLE_URL	# for rcli
	run -0 env CQ_REDIS_URL="$list" cachectl set fb one --ttl 1h
	[ "$(rcli get "${P}fb")" = one ]
	seq 1 50 | awk '{ printf "fw%d\t%d\n", $1, $1 }' |
		CQ_REDIS_URL=$list cachectl warm --ttl 1h -q
	[ "$(rcli --scan --pattern "${P}fw*" | wc -l)" -eq 50 ]
}

@test "a slot no node serves: CLUSTERDOWN is tried again, then exit 75 naming the command" {
	local k="${P}{gone}k" s p
	s=$(slot_of "$k")
	p=$(owner "$k")
	FIX_SLOT=$s FIX_ADD=$p
	[ "$(ncli "$p" cluster delslots "$s")" = OK ]
	run -75 --separate-stderr cachectl set "{gone}k" v --ttl 1h
	assert_regex "$stderr" "^cachectl: set: SET: not done: the Redis cluster still said 'CLUSTERDOWN [^']*' after 7 tries$"
	[ "$(ccli exists "$k")" != 1 ]
}

@test "warm with one master saying CLUSTERDOWN: its lines fail after 3x --timeout whatever the others answer, theirs are written" {
	local k="${P}{gone}k" s p n=6000 failed rc=0 o t=0
	s=$(slot_of "$k")
	p=$(owner "$k")
	FIX_SLOT=$s FIX_ADD=$p FIX_KEYS="${P}w*"
	[ "$(ncli "$p" cluster delslots "$s")" = OK ]
	# with a slot of its own unserved, that master refuses everything
	wait_for 5 bash -c "redis-cli -p $p set ${P}x 1 | grep -q CLUSTERDOWN"
	seq 1 "$n" | awk '{ printf "w%d\tv\n", $1 }' >"$TMP/in.tsv"
	# its pauses and its count of tries are its own: the others' answers
	# neither hold them back nor start its 3 s again (they did: every
	# master paused with it, its lines tried again as long as another
	# master answered, 30,000 lines took 63 s; now 5 s)
	timeout 20 cachectl --timeout 1s warm --window 100 --ttl 1h "$TMP/in.tsv" 2>"$TMP/err" || rc=$?
	tail -n 1 "$TMP/err"
	assert_equal "$rc" 75
	assert_equal "$(ncli "$p" eval "return #redis.call('keys', ARGV[1])" 0 "${P}w*")" 0
	for o in $P1 $P2 $P3; do
		[ "$o" = "$p" ] || t=$((t + $(ncli "$o" eval "return #redis.call('keys', ARGV[1])" 0 "${P}w*")))
	done
	failed=$(sed -n 's/^warmed \([0-9]*\) keys in .* (0 skipped, \([0-9]*\) failed)$/\2/p' "$TMP/err")
	[ "$failed" -gt 0 ]
	assert_equal "$t" $((n - failed))
	grep -q "^cachectl: warm: line [0-9]*: write refused: CLUSTERDOWN " "$TMP/err"
}

@test "a master loading its dataset (LOADING) during get and warm: both wait for it, and everything is written" {
	local p o t=0 rc=0
	p=$(owner "${P}{ld}k")
	FIX_KEYS="$P*"
	ncli "$p" eval "for i = 1, 2000 do redis.call('SET', ARGV[1] .. i, i) end" 0 "${P}{ld}" >/dev/null
	ncli "$p" config set loading-process-events-interval-bytes 1024 >/dev/null
	ncli "$p" config set key-load-delay 1000 >/dev/null
	ncli "$p" debug reload >/dev/null 2>&1 &
	local reload=$!
	wait_for 5 bash -c "redis-cli -p $p ping | grep -q LOADING"
	cachectl --timeout 2s get "{ld}7" >"$TMP/got" 2>"$TMP/get.err" &
	BGPID=$!
	seq 1 600 | awk '{ printf "w%d\tv\n", $1 }' >"$TMP/in.tsv"
	cachectl --timeout 2s warm --ttl 1h "$TMP/in.tsv" 2>"$TMP/warm.err" &
	local warm=$!
	sleep 0.5
	kill -0 "$BGPID"	# both wait for the loading master
	kill -0 "$warm"
	ncli "$p" config set key-load-delay 0 >/dev/null
	wait "$reload"
	wait "$warm" || rc=$?
	wait "$BGPID"
	BGPID=
	cat "$TMP/get.err" "$TMP/warm.err"
	assert_equal "$(cat "$TMP/got")" 7
	assert_equal "$rc" 0
	for o in $P1 $P2 $P3; do
		t=$((t + $(ncli "$o" eval "return #redis.call('keys', ARGV[1])" 0 "${P}w*")))
	done
	assert_equal "$t" 600
}

# ---- invalidate, stats and cqstat over every master (issue 11 §3) ---------------------

# Sum of field $1 (keys or expires) of db0 over the three masters.
db0_sum() {
	local p total=0 v
	for p in $P1 $P2 $P3; do
		v=$(ncli "$p" info keyspace | tr -d '\r' | sed -n "s/^db0:.*$1=\([0-9]*\).*/\1/p")
		total=$((total + ${v:-0}))
	done
	echo "$total"
}

@test "invalidate --pattern on a cluster: SCANs every master and UNLINKs each key where it lives" {
	local p want=0 n
	seq 1 3000 | awk '{ print "k" $1 "\tv" $1 }' >"$TMP/in"
	run -0 cachectl warm -q --ttl 1h "$TMP/in"
	for p in $P1 $P2 $P3; do
		n=$(ncli "$p" --scan --pattern "${P}k1*" | wc -l)
		[ "$n" -gt 0 ]
		want=$((want + n))
	done
	[ "$want" -eq 1111 ]
	run -0 --separate-stderr cachectl invalidate --pattern 'k1*' --dry-run
	[ "$(sort -u <<<"$output" | wc -l)" -eq 1111 ]
	run -0 --separate-stderr cachectl invalidate --pattern 'k1*'
	assert_equal "$stderr" "invalidated 1111 keys in ${stderr#invalidated 1111 keys in }"
	for p in $P1 $P2 $P3; do
		[ "$(ncli "$p" --scan --pattern "${P}k1*" | wc -l)" -eq 0 ]
	done
	[ $(($(keys_on "$P1") + $(keys_on "$P2") + $(keys_on "$P3"))) -eq $((3000 - 1111)) ]
	run -1 --separate-stderr cachectl invalidate --pattern 'k1*'
}

@test "warm on a cluster: SIGTERM in the middle writes every line read to its master, exit 75" {
	warm_stopped_midway 300 matching 'w*'
}

# Keys of this test matching $1 over the three masters.
matching() {
	local p n=0
	for p in $P1 $P2 $P3; do
		n=$((n + $(ncli "$p" --scan --pattern "$P$1" | wc -l)))
	done
	echo "$n"
}
fewer_than() { [ "$(matching "$1")" -lt "$2" ]; }

@test "invalidate --pattern --rate on a cluster: SIGTERM deletes what was scanned, exit 75; a second run deletes the rest" {
	local n rc=0
	seq 1 6000 | awk '{ print "u" $1 "\tv" $1 }' | cachectl warm -q --ttl 1h
	cachectl invalidate --pattern 'u*' --rate 3000 --json >"$TMP/out" 2>"$TMP/err" &
	BGPID=$!
	wait_for 10 fewer_than 'u*' 5500
	kill -TERM "$BGPID"
	wait "$BGPID" || rc=$?
	BGPID=
	cat "$TMP/err"
	assert_equal "$rc" 75
	grep -qx "cachectl: invalidate: stopped by SIGTERM: the keys not scanned yet are left" "$TMP/err"
	[ "$(jq -r .stopped "$TMP/out")" = true ]
	n=$(jq -r .invalidated "$TMP/out")
	[ "$n" -gt 0 ]
	[ "$n" -lt 6000 ]
	[ "$(matching 'u*')" -eq $((6000 - n)) ]
	# --rate reads UNLINK replies between the masters' SCAN replies
	run -0 --separate-stderr cachectl invalidate --pattern 'u*' --rate 100000
	[[ $stderr == "invalidated $((6000 - n)) keys in "* ]]
	[ "$(matching 'u*')" -eq 0 ]
}

@test "invalidate --tag on a cluster: members on every master go, then the tag set" {
	local p tagkey
	seq 1 300 | awk '{ print "t" $1 "\tv" $1 }' >"$TMP/in"
	run -0 cachectl warm -q --ttl 1h --tag colour "$TMP/in"
	for p in $P1 $P2 $P3; do [ "$(keys_on "$p")" -gt 50 ]; done
	run -0 --separate-stderr cachectl invalidate --tag colour
	[[ $stderr == "invalidated 300 keys in "* ]]
	for p in $P1 $P2 $P3; do [ "$(keys_on "$p")" -eq 0 ]; done
}

@test "invalidate --ns on a cluster: one bump hides the namespace's keys on every master" {
	local x p
	for x in $(seq 20); do run -0 cachectl set "n$x" "v$x" --ns users --ttl 1h; done
	for p in $P1 $P2 $P3; do [ "$(keys_on "$p")" -gt 0 ]; done
	run -0 cachectl get n7 --ns users
	assert_output v7
	run -0 cachectl invalidate --ns users
	for x in $(seq 20); do run -1 cachectl get "n$x" --ns users; done
}

@test "stats on a cluster: every master's INFO summed (keys, keys without TTL, hits), each master in --json" {
	local p keys
	seq 1 900 | awk '{ print "s" $1 "\tv" $1 }' >"$TMP/in"
	run -0 cachectl warm -q --ttl 1h "$TMP/in"
	run -0 cachectl set forever x --no-ttl
	run -0 cachectl get s1 s2 s3
	run -1 cachectl get nothing-here
	run -0 cachectl stats --json
	echo "$output" >"$TMP/stats"
	[ "$(jq '.redis.keys' "$TMP/stats")" -eq "$(db0_sum keys)" ]
	[ "$(jq '.redis.keys_no_ttl' "$TMP/stats")" -eq $(($(db0_sum keys) - $(db0_sum expires))) ]
	[ "$(jq '.redis.keys_no_ttl' "$TMP/stats")" -ge 1 ]
	[ "$(jq '.redis.masters | length' "$TMP/stats")" -eq 3 ]
	for p in $P1 $P2 $P3; do
		keys=$(ncli "$p" info keyspace | tr -d '\r' | sed -n 's/^db0:keys=\([0-9]*\).*/\1/p')
		[ "$(jq --arg m "127.0.0.1:$p" '.redis.masters[] | select(.master == $m) | .keys' "$TMP/stats")" -eq "${keys:-0}" ]
	done
	# hits and misses are every master's, summed
	local hits=0 misses=0 h
	for p in $P1 $P2 $P3; do
		h=$(ncli "$p" info stats | tr -d '\r')
		hits=$((hits + $(sed -n 's/^keyspace_hits://p' <<<"$h")))
		misses=$((misses + $(sed -n 's/^keyspace_misses://p' <<<"$h")))
	done
	[ "$(jq '.redis.hits_total' "$TMP/stats")" -eq "$hits" ]
	[ "$(jq '.redis.misses_total' "$TMP/stats")" -eq "$misses" ]
	[ "$(jq '.redis.misses_total' "$TMP/stats")" -ge 1 ]
	run -0 cachectl stats
	assert_line --regexp "^master_keys\[127\.0\.0\.1:$P1\]	[0-9]+$"
}

@test "cqstat on a cluster: the redis columns are the whole cluster's; --masters adds a group per master" {
	local p
	run -0 cachectl set c1 x --ttl 1h
	run -0 cqstat --json
	[ "$(jq '.redis.keys' <<<"$output")" -eq "$(db0_sum keys)" ]
	[ "$(jq '.redis.masters | length' <<<"$output")" -eq 3 ]
	run -0 cqstat --masters
	for p in $P1 $P2 $P3; do
		[[ ${lines[0]} == *" 127.0.0.1:$p "* ]]
	done
	[ "$(grep -o keys <<<"${lines[1]}" | wc -l)" -eq 4 ]
	run -0 cqstat --prom
	assert_line --regexp "^cq_master_keys\{master=\"127\.0\.0\.1:$P1\"\} [0-9]+$"
	run -0 cqstat --check "master_keys[127.0.0.1:$P1]<0"
	run -2 cqstat --check "master_keys[127.0.0.1:$P1]>=0"
}

@test "a database other than 0 on a cluster: exit 64 saying a cluster has database 0 only" {
	export CQ_REDIS_URL="redis://127.0.0.1:$P1,127.0.0.1:$P2/3"
	run -64 --separate-stderr cachectl get k
	assert_equal "$stderr" "cachectl: get: Redis at 127.0.0.1:$P1 is a cluster node, and a cluster has database 0 only (end the URL with /0)"
}

@test "a password on every node: the connections opened later log in too, and the password is never printed" {
	local pw='s3cret,pw' p k x
	for p in $P1 $P2 $P3; do
		[ "$(ncli "$p" config set requirepass "$pw")" = OK ]
	done
	FIX_PASS=$pw
	export REDISCLI_AUTH=$pw	# for redis-cli
	export CQ_REDIS_URL="redis://:$pw@127.0.0.1:$P1,127.0.0.1:$P2/0"
	for x in $(seq 12); do
		run -0 --separate-stderr cachectl set "pw$x" "v$x" --ttl 1h
	done
	seq 1 300 | awk '{ printf "pw%d\tv%d\n", $1, $1 }' | cachectl warm -q --ttl 1h
	for x in 1 7 12 150 300; do
		k="${P}pw$x"
		[ "$(ncli "$(owner "$k")" get "$k")" = "v$x" ]
	done
	for p in $P1 $P2 $P3; do
		[ "$(ncli "$p" --scan --pattern "${P}pw*" | wc -l)" -gt 0 ]
	done
	export CQ_REDIS_URL="redis://:wrong,pw@127.0.0.1:$P1,127.0.0.1:$P2/0"
	run -77 --separate-stderr cachectl get pw1
	assert_equal "$stderr" "cachectl: get: Redis at 127.0.0.1:$P1 refused the password: wrong user name or password"
	refute_output --partial wrong
}

# ---- a master silent past --timeout, then answering again ----------------------
# CLIENT PAUSE holds a master's replies for a while (its cluster bus goes
# on, so no failover): cachectl's connection times out, the master is
# taken for lost, and it serves its slots again when asked.

# $2 keys of this test owned by the master at port $1, one per line.
keys_owned_by() {
	local x n=0
	for x in $(seq 200); do
		[ "$(owner "${P}o$x")" = "$1" ] || continue
		echo "o$x"
		n=$((n + 1))
		[ "$n" -lt "$2" ] || return 0
	done
}

@test "a master silent past --timeout during get K1 K2 on its slots: both are sent to it again, and answered" {
	local ks
	mapfile -t ks < <(keys_owned_by "$P3" 2)
	ccli set "$P${ks[0]}" one >/dev/null
	ccli set "$P${ks[1]}" two >/dev/null
	# the URL names it first: both GETs go to it before any MOVED
	export CQ_REDIS_URL="redis://127.0.0.1:$P3,127.0.0.1:$P1/0"
	[ "$(ncli "$P3" client pause 800 all)" = OK ]
	run -0 --separate-stderr cachectl --timeout 300ms get "${ks[0]}" "${ks[1]}"
	assert_output $'one\ntwo'
}

@test "stats while a master is silent past --timeout: its INFO is asked of it again, never of another master" {
	local x=0 p keys
	# the silent master holds more keys than the one the URL names first
	while [ "$(ncli "$P3" dbsize)" -le "$(ncli "$P1" dbsize)" ]; do
		x=$((x + 1))
		[ "$(owner "${P}i$x")" = "$P3" ] && ccli set "${P}i$x" v >/dev/null
	done
	[ "$(ncli "$P3" client pause 800 all)" = OK ]
	run -0 --separate-stderr cachectl --timeout 300ms stats --json
	echo "$output" >"$TMP/stats"
	for p in $P1 $P2 $P3; do
		keys=$(ncli "$p" dbsize)
		[ "$(jq --arg m "127.0.0.1:$p" '.redis.masters[] | select(.master == $m) | .keys' "$TMP/stats")" -eq "$keys" ]
	done
}

# How many times the node at port $1 has run command $2 (INFO commandstats).
calls() {
	ncli "$1" info commandstats | tr -d '\r' | sed -n "s/^cmdstat_$2:calls=\([0-9]*\),.*/\1/p" | grep . || echo 0
}

@test "warm: lines ASKed to a master held past --timeout are sent again where the map says, only its own lines to it, each once" {
	local k="${P}{mig}0" s src dst p own n asking
	s=$(slot_of "$k")
	src=$(owner "$k")
	for p in $P1 $P2 $P3; do [ "$p" != "$src" ] && dst=$p; done
	own=$(keys_owned_by "$dst" 1)
	FIX_SLOT=$s
	[ "$(ncli "$dst" cluster setslot "$s" importing "$(node_id "$src")")" = OK ]
	[ "$(ncli "$src" cluster setslot "$s" migrating "$(node_id "$dst")")" = OK ]
	# 300 new keys of the migrating slot, ASKed to dst (in its log ahead
	# of its own line), then a key dst owns
	seq 1 300 | awk '{ printf "{mig}%d\tv%d\n", $1, $1 }' >"$TMP/in"
	printf '%s\tmine\n' "$own" >>"$TMP/in"
	export CQ_REDIS_URL="redis://127.0.0.1:$src/0"
	asking=$(calls "$dst" asking)
	[ "$(ncli "$dst" client pause 1000 all)" = OK ]
	run -0 --separate-stderr cachectl --timeout 500ms warm --ttl 1h --window 1 "$TMP/in"
	[[ $stderr == "warmed 301 keys in "*" (0 skipped, 0 failed)" ]]
	n=$(ncli "$dst" eval "return #redis.call('keys', ARGV[1])" 0 "${P}{mig}*")
	[ "$n" -eq 300 ]
	[ "$(ncli "$dst" get "$P$own")" = mine ]
	# the connections cut while it was held ran nothing: each line once
	[ $(($(calls "$dst" asking) - asking)) -eq 300 ]
	for p in $P1 $P2 $P3; do ncli "$p" cluster setslot "$s" node "$(node_id "$dst")" >/dev/null; done
	FIX_SLOT=''
}

@test "a cluster node that serves no slot yet (CLUSTER SLOTS empty): stats and invalidate --pattern exit 75 saying so" {
	priv_redis_start --tcp --cluster-enabled yes --cluster-config-file "$BATS_TEST_TMPDIR/priv-redis/nodes.conf"
	export CQ_REDIS_URL=$PRIV_URL
	[ -z "$(redis-cli -p "$PRIV_PORT" cluster slots)" ]
	run -75 --separate-stderr cachectl stats
	assert_equal "$stderr" "cachectl: stats: Redis at 127.0.0.1:$PRIV_PORT is a cluster node that serves no hash slot (CLUSTER SLOTS is empty: is the cluster set up?)"
	assert_output ''
	run -75 --separate-stderr cachectl invalidate --pattern 'x*'
	[[ $stderr == *"serves no hash slot"* ]]
}

@test "a master that refuses the password the others take: warm exits 77 naming it, without waiting for a failover" {
	local pw='s3cret,pw' p
	for p in $P1 $P2 $P3; do
		[ "$(ncli "$p" config set requirepass "$pw")" = OK ]
	done
	FIX_PASS=$pw
	export CQ_REDIS_URL="redis://:$pw@127.0.0.1:$P1/0"
	seq 1 300 | awk '{ printf "np%d\tv%d\n", $1, $1 }' >"$TMP/in"
	ncli "$P3" -a "$pw" --no-auth-warning config set requirepass other >/dev/null
	run --separate-stderr cachectl --timeout 2s warm --ttl 1h "$TMP/in"
	ncli "$P3" -a other --no-auth-warning config set requirepass "$pw" >/dev/null
	[ "$status" -eq 77 ]
	[[ $stderr == *"Redis at 127.0.0.1:$P3 refused the password: wrong user name or password"* ]]
	[[ $stderr != *s3cret* ]]
}

@test "a master that alone asks for a password: get and stats name it, not the node the URL names first" {
	local k err1 rc1
	k=$(keys_owned_by "$P3" 1)
	ccli set "$P$k" v >/dev/null
	ncli "$P3" config set requirepass only3 >/dev/null
	run --separate-stderr cachectl get "$k"
	rc1=$status err1=$stderr
	run --separate-stderr cachectl stats
	ncli "$P3" -a only3 --no-auth-warning config set requirepass '' >/dev/null
	[ "$rc1" -eq 77 ]
	assert_equal "$err1" "cachectl: get: Redis at 127.0.0.1:$P3 needs a password (put it in the URL, CQ_REDIS_PASSWORD or --password-file)"
	[ "$status" -eq 77 ]
	assert_equal "$stderr" "cachectl: stats: Redis at 127.0.0.1:$P3 needs a password (put it in the URL, CQ_REDIS_PASSWORD or --password-file)"
}
