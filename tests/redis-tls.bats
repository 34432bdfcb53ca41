#!/usr/bin/env bats
# Redis over TLS (issue 11): rediss:// against the sandbox redis-server's
# TLS port (CQ_REDISS_URL, certificates from CQ_TLS_DIR), for every verb
# of cachectl, cqstat and qctl consume --dedupe; the server certificate
# checked against the name or address typed; client certificates; and the
# refusals, each exit 77 with a message naming the fix.  What is written
# is counted on the plain port of the same server, with redis-cli.

bats_require_minimum_version 1.5.0
load test_helper

per_test_setup() {
	T=$CQ_TLS_DIR
	PLAIN_URL=$CQ_REDIS_URL
	PLAIN_PORT=${CQ_REDIS_URL##*:}
	PLAIN_PORT=${PLAIN_PORT%%/*}
	TLS_PORT=${CQ_REDISS_URL##*:}
	TLS_PORT=${TLS_PORT%%/*}
	export CQ_REDIS_URL=$CQ_REDISS_URL
	export CQ_CACERT=$T/ca.pem
	unset CQ_CERT CQ_KEY_FILE
	SRV_PID=
}

per_test_teardown() {
	[ -n "$SRV_PID" ] && kill "$SRV_PID" 2>/dev/null
	[ -n "${QD:-}" ] && drop_queues "$QD"
	return 0
}

# The plain port of the same server: the independent count.
rcli() {
	redis-cli --no-auth-warning -h 127.0.0.1 -p "$PLAIN_PORT" --raw "$@"
}

# A private TLS-only redis-server on a free port ($PORT): CERT (a path
# without .pem/.key), then redis-server options (client certificates are
# not asked for unless they say so).
private_tls() {
	local cert=$1
	shift
	PORT=$(free_port)
	mkdir -p "$TMP/srv"
	redis-server --port 0 --tls-port "$PORT" --bind 127.0.0.1 \
		--tls-cert-file "$cert.pem" --tls-key-file "$cert.key" \
		--tls-ca-cert-file "$T/ca.pem" --save '' --appendonly no \
		--daemonize yes --pidfile "$TMP/srv/pid" --logfile "$TMP/srv/log" \
		--dir "$TMP/srv" --tls-auth-clients no "$@"
	wait_for 5 test -s "$TMP/srv/pid"
	SRV_PID=$(cat "$TMP/srv/pid")
	wait_for 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT" 2>/dev/null
}

# A server certificate signed by the sandbox CA: NAME DAYS SAN.
leaf_cert() {
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
		-nodes -subj /CN=localhost -keyout "$TMP/$1.key" \
		-out "$TMP/$1.csr" 2>/dev/null
	printf 'subjectAltName=%s\n' "$3" >"$TMP/$1.ext"
	openssl x509 -req -in "$TMP/$1.csr" -CA "$T/ca.pem" -CAkey "$T/ca.key" \
		-CAcreateserial -CAserial "$TMP/ca.srl" -days "$2" \
		-extfile "$TMP/$1.ext" -out "$TMP/$1.pem" 2>/dev/null
}

# Two messages with one id through qctl consume --dedupe: the second is
# skipped, through the id that consume keeps in Redis.
consume_dedupe() {
	QD=$Q
	qctl declare -q "$Q" --amqp "$CQ_AMQP_URL"
	qctl enqueue -q "$Q" --message-id same first
	qctl enqueue -q "$Q" --message-id same second
	run -0 --separate-stderr qctl consume --dedupe --until-empty "$Q"
	assert_output first
}

# ---- every verb over TLS -------------------------------------------------------

@test "set and get over rediss://, byte for byte; redis-cli --tls reads the same" {
	printf 'v\x01\xff\n' >"$TMP/v"
	run -0 cachectl set k - --ttl 1m <"$TMP/v"
	cachectl get -n k >"$TMP/got"
	cmp "$TMP/v" "$TMP/got"
	redis-cli --tls --cacert "$T/ca.pem" -h localhost -p "$TLS_PORT" \
		--raw GET "${P}k" >"$TMP/cli"
	cmp <(cat "$TMP/v"; echo) "$TMP/cli"
	run -0 rcli TTL "${P}k"
	((output > 0 && output <= 60))
	run -1 cachectl get missing
}

@test "a 50 MB value holding NUL bytes over rediss://, both ways; a wrong password is 77 and not shown" {
	head -c 50000000 /dev/urandom >"$TMP/big"
	run -0 cachectl set big - --ttl 1m <"$TMP/big"
	rcli GET "${P}big" | head -c 50000000 | cmp - "$TMP/big"
	cachectl get -n big | cmp - "$TMP/big"
	rcli UNLINK "${P}big" >/dev/null
	run -77 --separate-stderr cachectl get k --redis "rediss://cq:S3cr3t-tls@${CQ_REDISS_URL#rediss://}"
	assert_equal "$stderr" "cachectl: get: Redis at localhost:$TLS_PORT refused the user name or password: wrong user name or password"
}

@test "warm over rediss:// writes every line with its TTL" {
	seq 1 20000 | awk '{ printf "k%d\tvalue-%d\n", $1, $1 }' >"$TMP/in"
	run -0 --separate-stderr cachectl warm --ttl 1h "$TMP/in"
	assert_equal "$stderr" "$(printf '%s' "$stderr" | grep '^warmed 20000 keys in ')"
	run -0 rcli --scan --pattern "${P}k*"
	assert_equal "$(printf '%s\n' "$output" | wc -l)" 20000
	run -0 rcli GET "${P}k12345"
	assert_output value-12345
	run -0 rcli TTL "${P}k20000"
	((output > 3500))
}

@test "warm over rediss://: SIGTERM in the middle writes every line read, exit 75" {
	warm_stopped_midway 300 tls_w_keys
}
tls_w_keys() { rcli --scan --pattern "${P}w*" | wc -l; }

@test "invalidate by key, pattern and tag over rediss://" {
	cachectl set a 1 --ttl 1m --tag t
	cachectl set b 2 --ttl 1m --tag t
	cachectl set p:1 1 --ttl 1m
	cachectl set p:2 2 --ttl 1m
	cachectl set c 3 --ttl 1m
	run -0 cachectl invalidate -q --tag t
	run -0 cachectl invalidate -q --pattern 'p:*'
	run -0 cachectl invalidate c
	run -0 rcli --scan --pattern "${P}*"
	assert_output ""
}

@test "fetch over rediss://: a miss runs the command and caches it, a hit does not" {
	run -0 cachectl fetch f --ttl 1m -- sh -c 'echo computed; echo x >>"$TMP/runs"'
	assert_output computed
	run -0 cachectl fetch f --ttl 1m -- sh -c 'echo again; echo x >>"$TMP/runs"'
	assert_output computed
	assert_equal "$(wc -l <"$TMP/runs")" 1
	run -0 rcli GET "${P}f"
	assert_output computed
}

@test "stats and cqstat over rediss://" {
	run -0 cachectl stats --json
	[[ $output == *'"used_memory":'* ]]
	run -0 cqstat --json
	[[ $output == *'"redis":{"up":true'* ]]
}

@test "qctl consume --dedupe keeps its ids in Redis over rediss://" {
	consume_dedupe
	run -0 rcli EXISTS "${P}qctl:done:$Q:same"
	assert_output 1
}

# ---- the server certificate ------------------------------------------------------

@test "the CA may come from CQ_CACERT or --cacert; an address is checked against IP names" {
	cachectl set k v --ttl 1m
	unset CQ_CACERT
	run -0 cachectl get k --cacert "$T/ca.pem"
	# the sandbox certificate names DNS:localhost and IP:127.0.0.1
	run -0 cachectl get k --cacert "$T/ca.pem" --redis "rediss://127.0.0.1:$TLS_PORT/0"
	assert_output v
}

@test "a wrong CA, or none (the system CAs), is exit 77 naming --cacert" {
	run -77 --separate-stderr cachectl get k --cacert "$T/other-ca.pem"
	assert_equal "$stderr" "cachectl: get: Redis at localhost:$TLS_PORT: the server certificate is not trusted (self-signed certificate in certificate chain): give the CA that signed it with --cacert"
	unset CQ_CACERT
	run -77 --separate-stderr cachectl set k v --ttl 1m
	[[ $stderr == *"the server certificate is not trusted ("*"): give the CA that signed it with --cacert" ]]
	run -0 rcli EXISTS "${P}k"
	assert_output 0
}

@test "a certificate that does not name the host typed is exit 77, the name it has works" {
	leaf_cert dns 1 DNS:localhost
	private_tls "$TMP/dns"
	run -77 --separate-stderr cachectl get k --redis "rediss://127.0.0.1:$PORT"
	assert_equal "$stderr" "cachectl: get: Redis at 127.0.0.1:$PORT: the server certificate does not name '127.0.0.1': connect by a name it lists"
	run -1 cachectl get k --redis "rediss://localhost:$PORT"
}

@test "an expired server certificate is exit 77 saying so" {
	leaf_cert old -1 DNS:localhost
	private_tls "$TMP/old"
	run -77 --separate-stderr cachectl get k --redis "rediss://localhost:$PORT"
	assert_equal "$stderr" "cachectl: get: Redis at localhost:$PORT: the server certificate is not valid now (certificate has expired): renew it on the server, or check this machine's clock"
}

@test "--insecure skips the check and warns on every run" {
	cachectl set k v --ttl 1m
	for i in 1 2; do
		run -0 --separate-stderr cachectl get k --cacert "$T/other-ca.pem" --insecure
		assert_output v
		assert_equal "$stderr" "cachectl: get: warning: --insecure: TLS server certificates are not checked"
	done
	run -0 --separate-stderr cqstat --json --insecure --cacert "$T/other-ca.pem"
	assert_equal "$stderr" "cqstat: warning: --insecure: TLS server certificates are not checked"
}

# ---- client certificates -----------------------------------------------------------

@test "a server that requires a client certificate: none or another CA's is 77, the CA's works" {
	private_tls "$T/server" --tls-auth-clients yes
	export CQ_REDIS_URL="rediss://localhost:$PORT"
	run -77 --separate-stderr cachectl set k v --ttl 1m
	assert_equal "$stderr" "cachectl: set: Redis at localhost:$PORT ended the TLS session before answering: it requires a client certificate: give --cert and --key (or CQ_CERT and CQ_KEY_FILE)"
	run -77 --separate-stderr cachectl set k v --ttl 1m \
		--cert "$T/other-client.pem" --key "$T/other-client.key"
	assert_equal "$stderr" "cachectl: set: Redis at localhost:$PORT refused the client certificate: is --cert signed by a CA the server trusts?"
	run -0 cachectl set k v --ttl 1m --cert "$T/client.pem" --key "$T/client.key"
	export CQ_CERT=$T/client.pem CQ_KEY_FILE=$T/client.key
	run -0 cachectl get k
	assert_output v
	printf 'a\t1\nb\t2\n' | cachectl warm -q --ttl 1m
	run -0 cachectl get a b
	run -0 cachectl invalidate a b
	run -0 cachectl fetch f --ttl 1m -- echo computed
	run -0 cachectl stats --json
	run -0 cqstat --json
	[[ $output == *'"redis":{"up":true'* ]]
	run -0 redis-cli --tls --cacert "$T/ca.pem" --cert "$T/client.pem" \
		--key "$T/client.key" -h localhost -p "$PORT" --raw GET "${P}f"
	assert_output computed
	consume_dedupe
	run -0 redis-cli --tls --cacert "$T/ca.pem" --cert "$T/client.pem" \
		--key "$T/client.key" -h localhost -p "$PORT" --raw EXISTS "${P}qctl:done:$Q:same"
	assert_output 1
}

# ---- bad input ------------------------------------------------------------------------

@test "a TLS port given as redis:// is exit 75 naming rediss://" {
	# the server hangs up on plain text: from the client's side the same
	# as a server that dies, hence 75 and a hint rather than a verdict
	run -75 --separate-stderr cachectl get k --redis "redis://127.0.0.1:$TLS_PORT"
	assert_equal "$stderr" "cachectl: get: Redis at 127.0.0.1:$TLS_PORT reset the connection before its first reply (a TLS port? then use rediss://)"
}

@test "a plain port given as rediss:// is refused naming redis://" {
	run -75 --separate-stderr cachectl get k --timeout 1s --redis "rediss://localhost:$PLAIN_PORT"
	assert_equal "$stderr" "cachectl: get: Redis at localhost:$PLAIN_PORT did not answer the TLS handshake (--timeout 1000ms): is it a plain port? use redis:// for it"
}

@test "an AMQP port given as Redis, plain or TLS, is exit 69" {
	local ap=${CQ_AMQP_URL##*:} tp=${CQ_AMQPS_URL##*:}
	ap=${ap%%/*} tp=${tp%%/*}
	run -69 --separate-stderr cachectl get k --redis "redis://localhost:$ap"
	assert_equal "$stderr" "cachectl: get: localhost:$ap does not speak the Redis protocol (Protocol error, got \"A\" as reply type byte): is the port right?"
	run -69 --separate-stderr cachectl get k --redis "rediss://localhost:$tp"
	assert_equal "$stderr" "cachectl: get: localhost:$tp does not speak the Redis protocol (Protocol error, got \"A\" as reply type byte): is the port right?"
	run -69 --separate-stderr cachectl get k --redis "rediss://localhost:$ap"
	assert_equal "$stderr" "cachectl: get: cannot connect to Redis at localhost:$ap: no TLS there (wrong version number): is it a plain port? use redis:// for it"
}

@test "a missing or unreadable certificate file is exit 64 naming it" {
	run -64 --separate-stderr cachectl get k --cacert "$TMP/nope.pem"
	assert_equal "$stderr" "cachectl: get: cannot use CA file '$TMP/nope.pem': No such file or directory"
	run -64 --separate-stderr cachectl get k --cacert "$TMP"
	[[ $stderr == "cachectl: get: cannot use CA file '$TMP': "* ]]
	run -64 --separate-stderr cachectl get k --cert "$T/client.pem" --key "$TMP/nope.key"
	assert_equal "$stderr" "cachectl: get: cannot use client key '$TMP/nope.key': No such file or directory"
	run -64 --separate-stderr cachectl get k --cert "$T/client.pem"
	assert_equal "$stderr" "cachectl: get: --cert and --key go together"
	run -64 --separate-stderr cachectl get k --cert "$T/client.pem" --key "$T/other-client.key"
	[[ $stderr == "cachectl: get: cannot use client certificate '$T/client.pem' / key '$T/other-client.key': "* ]]
}

@test "a file that holds no certificate or key is exit 64 naming it and what it is used for" {
	echo 'not a PEM file' >"$TMP/junk.pem"
	run -64 --separate-stderr cachectl get k --cacert "$TMP/junk.pem"
	assert_equal "$stderr" "cachectl: get: cannot use CA file '$TMP/junk.pem': no certificate or crl found"
	run -64 --separate-stderr cachectl get k --cert "$TMP/junk.pem" --key "$T/client.key"
	assert_equal "$stderr" "cachectl: get: cannot use client certificate '$TMP/junk.pem' / key '$T/client.key': no start line"
	run -64 --separate-stderr cachectl get k --cert "$T/client.pem" --key "$TMP/junk.pem"
	[[ $stderr == "cachectl: get: cannot use client certificate '$T/client.pem' / key '$TMP/junk.pem': "* ]]
	run -64 --separate-stderr cqstat --cacert "$TMP/junk.pem"
	[[ $stderr == *"cannot use CA file '$TMP/junk.pem': no certificate or crl found"* ]]
}

@test "cqstat: an AMQP port given as redis:// is 69, a TLS port 75, each naming the cause" {
	local ap=${CQ_AMQP_URL##*:}
	ap=${ap%%/*}
	run -69 --separate-stderr cqstat --redis "redis://127.0.0.1:$ap"
	assert_equal "$stderr" "cqstat: redis down: 127.0.0.1:$ap does not speak the Redis protocol (Protocol error, got \"A\" as reply type byte): is the port right?"
	run -75 --separate-stderr cqstat --redis "redis://127.0.0.1:$TLS_PORT"
	assert_equal "$stderr" "cqstat: redis down: Redis at 127.0.0.1:$TLS_PORT reset the connection before its first reply (a TLS port? then use rediss://)"
}
