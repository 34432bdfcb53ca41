#!/usr/bin/env bats
# valgrind memcheck over the main verbs (issue 7): no leak (definite,
# indirect or possible) and no invalid read, write, free or use of
# uninitialised memory, on success and on the common failures.  Each run
# exits 99 on any error (--error-exitcode), so the verb's own exit code
# is pinned too.  An ASan build cannot run under valgrind: with
# SANITIZE=1, scripts/check points CQ_PLAIN_BIN_DIR at a plain build.

bats_require_minimum_version 1.5.0
load test_helper

per_test_setup() {
	local bin
	# a SANITIZE=1 run of `make check` names a plain build for this
	[ -n "${CQ_PLAIN_BIN_DIR:-}" ] && PATH="$CQ_PLAIN_BIN_DIR:$PATH"
	bin=$(command -v cachectl)
	if grep -q __asan_init "$bin"; then
		skip "an ASan build (SANITIZE=1) does this checking itself"
	fi
	VG=(valgrind -q --tool=memcheck --error-exitcode=99 --leak-check=full
		--show-leak-kinds=definite,indirect,possible
		--errors-for-leak-kinds=definite,indirect,possible
		--log-file="$TMP/vg.%p")
}

QUEUE_SUITE=1

# vg CODE PROG ARGS...: run under memcheck, expect exit CODE, and no report.
vg() {
	local want=$1
	shift
	run "${VG[@]}" "$@"
	# "==PID==" lines are memcheck's reports; "--PID--" ones are its
	# notes (such as an unhandled pidfd_open, which qctl falls back from)
	if [ "$status" -ne "$want" ] || cat "$TMP"/vg.* 2>/dev/null | grep -q '^=='; then
		echo "$* exited $status (want $want)"
		echo "$output"
		cat "$TMP"/vg.* 2>/dev/null
		rm -f "$TMP"/vg.*
		return 1
	fi
	rm -f "$TMP"/vg.*
}

@test "valgrind: cachectl get, set, invalidate, stats" {
	vg 0 cachectl set k v --ttl 1m --tag t1
	printf 'bin\0ary\xff' >"$TMP/bin"
	vg 0 cachectl set k2 --ttl 1m --nx - <"$TMP/bin"
	vg 0 cachectl get --json --ttl k k2
	vg 1 cachectl get missing
	head -c 2000 /dev/zero >"$TMP/big"
	vg 65 cachectl set k3 --ttl 1m --max-size 1k - <"$TMP/big"
	vg 0 cachectl invalidate --tag t1
	vg 0 cachectl stats --json
	vg 69 cachectl get k --redis redis://127.0.0.1:1/0
}

@test "valgrind: cachectl over rediss://, and its refusals" {
	export CQ_CACERT=$CQ_TLS_DIR/ca.pem
	vg 0 cachectl set k v --ttl 1m --redis "$CQ_REDISS_URL"
	printf 'a\t1\nb\t2\n' >"$TMP/in"
	vg 0 cachectl warm -q --ttl 1m --redis "$CQ_REDISS_URL" "$TMP/in"
	vg 0 cachectl get k a b --redis "$CQ_REDISS_URL" --cert "$CQ_TLS_DIR/client.pem" \
		--key "$CQ_TLS_DIR/client.key"
	vg 77 cachectl get k --redis "$CQ_REDISS_URL" --cacert "$CQ_TLS_DIR/other-ca.pem"
	vg 64 cachectl get k --redis "$CQ_REDISS_URL" --cacert "$TMP/none.pem"
}

@test "valgrind: cachectl warm and fetch" {
	seq 1 2000 | awk '{ printf "k%d\tv%d\n", $1, $1 }' >"$TMP/in"
	printf 'bad line\n' >>"$TMP/in"
	vg 65 cachectl warm -q --ttl 1m --jitter 10% "$TMP/in"
	printf '{"key":"j","value":{"a":1},"ttl":"5m","tags":["x"]}\n' >"$TMP/j"
	vg 0 cachectl warm -q --jsonl --ttl 1m "$TMP/j"
	vg 0 cachectl fetch f --ttl 1m --stale 1m --beta 1 -- echo computed
	vg 0 cachectl fetch f --ttl 1m -- echo not-run
	assert_output computed
	vg 0 cachectl fetch i --ttl 1m --redis redis://127.0.0.1:1/0 -- echo fail-open
}

@test "valgrind: qctl declare, enqueue, peek, consume, purge, stats" {
	vg 0 qctl declare -q "$Q" --dlq
	seq 1 500 | sed 's/^/msg-/' >"$TMP/lines"
	vg 0 qctl enqueue -q "$Q" -H k=v <"$TMP/lines"
	printf '{"body":"j","headers":{"a":"b","n":1}}\n' >"$TMP/jl"
	vg 0 qctl enqueue -q --jsonl "$Q" <"$TMP/jl"
	vg 0 qctl peek --json "$Q" --count 3
	vg 0 qctl consume -q "$Q" --count 100 --jsonl
	vg 0 qctl consume -q "$Q" --count 5 --exec 'cat >/dev/null'
	vg 0 qctl stats "$Q"
	vg 0 qctl purge -q "$Q" --yes
	vg 69 qctl declare "$Q" --amqp amqp://guest:guest@127.0.0.1:1/%2f
}

@test "valgrind: qctl consume retries and dead-letters, replay-dlq moves back" {
	qctl declare -q "$Q" --dlq
	qctl enqueue -q "$Q" a b c
	vg 0 qctl consume -q "$Q" --exec 'exit 1' --max-retries 1 --until-empty
	vg 0 qctl replay-dlq -q "$Q.dlq"
	run -0 qctl consume -q "$Q" --count 3
	[ "${#lines[@]}" -eq 3 ]
}

@test "valgrind: cqstat once and over an interval, checks, JSON, Prometheus, the API" {
	qctl declare -q "$Q" --dlq
	vg 0 cqstat --json -Q "$Q"
	vg 0 cqstat -Q "$Q" 0.2 2
	vg 2 cqstat --check 'ready[nosuch]>1' --check 'dlq>-1:crit' -Q "$Q"
	vg 0 cqstat --prom --api "$CQ_API_URL" -Q "$Q"
}
