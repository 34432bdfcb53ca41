#!/usr/bin/env bats
# Redis behind Sentinel (issue 11): redis-sentinel:// URLs against a
# private master, replica and 3 sentinels (scripts/sandbox start-sentinel,
# started for this suite only).  What is written is counted with redis-cli
# on the master the sentinels name.

bats_require_minimum_version 1.5.0
load test_helper
load sentinel_helper

@test "set and get through the sentinels; the value is on the master the sentinels name" {
	run -0 cachectl set k 'hello sentinel' --ttl 1h
	run -0 cachectl get k
	assert_output 'hello sentinel'
	run -0 on "$(master_port)" GET "${P}k"
	assert_output 'hello sentinel'
	run -0 on "$(master_port)" TTL "${P}k"
	[ "$output" -gt 3500 ]
	[ "$output" -le 3600 ]
}

@test "warm through the sentinels writes every line on the master the sentinels name" {
	seq 1 20000 | awk '{ print "w" $1 "\tv" $1 }' >"$TMP/in"
	run -0 --separate-stderr cachectl warm --ttl 1h "$TMP/in"
	[[ $stderr == "warmed 20000 keys in "*" (0 skipped, 0 failed)" ]]
	[ "$(count_on "$(master_port)")" -eq 20000 ]
	run -0 on "$(master_port)" GET "${P}w19999"
	assert_output v19999
}

@test "warm through the sentinels: SIGTERM in the middle writes every line read, exit 75" {
	warm_stopped_midway 300 count_on "$(master_port)"
}

@test "stats, cqstat and invalidate through the sentinels" {
	cachectl set a 1 --ttl 1h
	cachectl set b 2 --ttl 1h
	cachectl get a
	run -0 cachectl stats --json
	jq -e '.redis.up and .redis.keys >= 2 and .redis.hits >= 1' <<<"$output" >/dev/null
	run -0 cqstat --json
	jq -e '.redis.up and .redis.keys >= 2' <<<"$output" >/dev/null
	run -0 cachectl invalidate --pattern '*'
	[ "$(count_on "$(master_port)")" -eq 0 ]
}

@test "the URL's /db and password are the master's: db 3 is selected, a wrong password is 77" {
	run -0 cachectl set k in-db-3 --ttl 1h --redis "${CQ_REDIS_SENTINEL_URL/\/0#//3#}"
	run -0 redis-cli -p "$(master_port)" -n 3 --raw GET "${P}k"
	assert_output in-db-3
	run -0 redis-cli -p "$(master_port)" -n 0 --raw EXISTS "${P}k"
	assert_output 0
	run -77 --separate-stderr cachectl get k --redis "redis-sentinel://:s3cret@127.0.0.1:$S1#$CQ_SENTINEL_MASTER"
	[[ $stderr == "cachectl: get: Redis at 127.0.0.1:$(master_port) refused the password: "* ]]
	refute [ "${stderr//s3cret/}" != "$stderr" ]
}

@test "the sentinels are asked in order: the first down, the next one answers" {
	local port
	port=$(free_port)
	run -0 cachectl set k v --ttl 1m --redis "redis-sentinel://127.0.0.1:$port,127.0.0.1:$S1#$CQ_SENTINEL_MASTER"
	run -0 on "$(master_port)" GET "${P}k"
	assert_output v
}

@test "a master name no sentinel knows is exit 64 naming it and the sentinels asked" {
	local s2 s3
	read -r _ s2 s3 <<<"$CQ_SENTINEL_PORTS"
	run -64 --separate-stderr cachectl get k --redis "${CQ_REDIS_SENTINEL_URL%#*}#nosuch"
	assert_equal "$stderr" "cachectl: get: no sentinel knows a master named 'nosuch' (asked 127.0.0.1:$S1, 127.0.0.1:$s2, 127.0.0.1:$s3; see the URL's #MASTERNAME)"
	run -64 --separate-stderr cqstat --redis "${CQ_REDIS_SENTINEL_URL%#*}#nosuch"
	[[ $stderr == *"no sentinel knows a master named 'nosuch'"* ]]
}

@test "every sentinel down is exit 69 naming them; an AMQP port or a plain Redis given as a sentinel too" {
	local p1 p2 ap rp
	p1=$(free_port)
	p2=$(free_port)
	run -69 --separate-stderr cachectl get k --redis "redis-sentinel://127.0.0.1:$p1,127.0.0.1:$p2#$CQ_SENTINEL_MASTER"
	assert_equal "$stderr" "cachectl: get: no sentinel answered (asked 127.0.0.1:$p1, 127.0.0.1:$p2): cannot connect to Redis at 127.0.0.1:$p2: Connection refused"
	ap=${CQ_AMQP_URL##*:}
	ap=${ap%%/*}
	run -69 --separate-stderr cachectl get k --redis "redis-sentinel://127.0.0.1:$ap#$CQ_SENTINEL_MASTER"
	assert_equal "$stderr" "cachectl: get: no sentinel answered (asked 127.0.0.1:$ap): 127.0.0.1:$ap does not speak the Redis protocol (Protocol error, got \"A\" as reply type byte): is the port right?"
	rp=$(master_port)
	run -69 --separate-stderr cachectl get k --redis "redis-sentinel://127.0.0.1:$rp#$CQ_SENTINEL_MASTER"
	[[ $stderr == "cachectl: get: no sentinel answered (asked 127.0.0.1:$rp): 127.0.0.1:$rp is not a Redis Sentinel (SENTINEL: Redis said: ERR unknown command 'SENTINEL'"* ]]
}

@test "bad redis-sentinel:// URLs are exit 64; the port defaults to 26379" {
	run -64 --separate-stderr cachectl get k --redis "redis-sentinel://127.0.0.1:$S1"
	assert_equal "$stderr" "cachectl: get: bad Redis URL 'redis-sentinel://127.0.0.1:$S1': missing #MASTERNAME (the name the sentinels monitor) at the end"
	run -64 --separate-stderr cachectl get k --redis "redis-sentinel://127.0.0.1:$S1,#m"
	assert_equal "$stderr" "cachectl: get: bad Redis URL 'redis-sentinel://127.0.0.1:$S1,#m': empty sentinel address in the list"
	run -64 --separate-stderr cachectl get k --redis "redis-sentinel://u:pw@127.0.0.1:99999#m"
	assert_equal "$stderr" "cachectl: get: bad Redis URL 'redis-sentinel://u:***@127.0.0.1:99999#m': bad port (want 1-65535)"
	run -64 --separate-stderr cachectl get k --redis "redis-sentinel://127.0.0.1/x#m"
	assert_equal "$stderr" "cachectl: get: bad Redis URL 'redis-sentinel://127.0.0.1/x#m': bad database number after '/'"
	# no port: 26379, where nothing listens here
	run -69 --separate-stderr cachectl get k --redis "redis-sentinel://127.0.0.1#m"
	assert_equal "$stderr" "cachectl: get: no sentinel answered (asked 127.0.0.1:26379): cannot connect to Redis at 127.0.0.1:26379: Connection refused"
}

@test "a master silent past --timeout that the sentinels still name: the command is sent to it again" {
	local m
	m=$(master_port)
	# shorter than down-after-milliseconds: no failover
	[ "$(on "$m" CLIENT PAUSE 800 WRITE)" = OK ]
	run -0 --separate-stderr cachectl --timeout 300ms set slow v --ttl 1h
	run -0 on "$(master_port)" GET "${P}slow"
	assert_output v
}

@test "bad input through the sentinels: a 50 MB value holding NUL bytes both ways, a key of another type is 65, a closed pipe 74" {
	head -c 50000000 /dev/urandom >"$TMP/big"
	run -0 cachectl set big - --ttl 1m <"$TMP/big"
	on "$(master_port)" GET "${P}big" | head -c 50000000 | cmp - "$TMP/big"
	cachectl get -n big | cmp - "$TMP/big"
	run -0 bash -c 'cachectl get big big | head -c 1 >/dev/null; echo "${PIPESTATUS[0]}"'
	assert_output 74
	on "$(master_port)" UNLINK "${P}big" >/dev/null
	on "$(master_port)" RPUSH "${P}l" x >/dev/null
	run -65 --separate-stderr cachectl get l
	assert_equal "$stderr" "cachectl: get: get 'l': the key holds a non-string type"
}
