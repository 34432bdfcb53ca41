#!/usr/bin/env bats
# AMQP over TLS (issue 7): amqps:// against the sandbox's TLS listener,
# whose certificates the sandbox made at start (CQ_TLS_DIR): the right CA
# works, a wrong one is refused with exit 77 and a clear message, and
# client certificates are sent and checked.

bats_require_minimum_version 1.5.0
load test_helper

per_test_setup() {
	T=$CQ_TLS_DIR
	TLS_PORT=${CQ_AMQPS_URL##*:}
	TLS_PORT=${TLS_PORT%%/*}
	PLAIN_PORT=${CQ_AMQP_URL##*:}
	PLAIN_PORT=${PLAIN_PORT%%/*}
	export CQ_AMQP_URL=$CQ_AMQPS_URL
}

QUEUE_SUITE=1

per_test_teardown() {
	[ -n "${SPID:-}" ] && kill "$SPID" 2>/dev/null
}

declare_q() {
	qctl declare -q "$1" --cacert "$T/ca.pem" "${@:2}"
}

@test "amqps:// with --cacert: messages go through TLS and back, byte for byte" {
	run -0 declare_q "$Q"
	printf 'one\ntwo\xff\nthree\n' >"$TMP/in"
	run -0 qctl enqueue -q "$Q" --cacert "$T/ca.pem" <"$TMP/in"
	qctl consume -q "$Q" --count 3 --cacert "$T/ca.pem" >"$TMP/out"
	cmp "$TMP/in" "$TMP/out"
	run -0 qctl declare "$Q" --cacert "$T/ca.pem"
	assert_output "declared '$Q' (0 messages, 0 consumers)"
}

@test "the CA file may come from CQ_CACERT" {
	run -0 env CQ_CACERT="$T/ca.pem" qctl declare "$Q"
}

@test "a wrong CA is refused: exit 77 with a clear message, no password shown" {
	export CQ_AMQP_URL="amqps://guest:guest@localhost:$TLS_PORT/%2f"
	run -77 --separate-stderr qctl declare "$Q" --cacert "$T/other-ca.pem"
	assert_equal "$stderr" "qctl: declare: cannot connect to RabbitMQ at localhost:$TLS_PORT: SSL peer cert verification failed (is --cacert the CA that signed the server certificate, and does the certificate name 'localhost'?)"
	[[ "$stderr" != *guest:guest* ]]
	# no --cacert: the system CAs do not know the sandbox's CA either
	run -77 --separate-stderr qctl enqueue "$Q" msg
	[[ "$stderr" == *"SSL peer cert verification failed"* ]]
	# nothing was declared over the refused connections
	run -1 qctl peek "$Q" --amqp "$CQ_AMQPS_URL" --cacert "$T/ca.pem"
}

@test "--insecure skips the server check for amqps:// too, and warns" {
	run -0 --separate-stderr declare_q "$Q" --cacert "$T/other-ca.pem" --insecure
	assert_equal "$stderr" "qctl: declare: warning: --insecure: TLS server certificates are not checked"
	run -77 --separate-stderr qctl declare "$Q" --cacert "$T/other-ca.pem"
}

@test "a client certificate signed by the CA is accepted" {
	run -0 declare_q "$Q" --cert "$T/client.pem" --key "$T/client.key"
	run -0 qctl enqueue -q "$Q" hello --cacert "$T/ca.pem" --cert "$T/client.pem" --key "$T/client.key"
	run -0 qctl consume -q "$Q" --count 1 --cacert "$T/ca.pem" --cert "$T/client.pem" --key "$T/client.key"
	assert_output hello
}

@test "a client certificate from another CA is refused with exit 77" {
	run -77 --separate-stderr qctl declare "$Q" --cacert "$T/ca.pem" \
		--cert "$T/other-client.pem" --key "$T/other-client.key"
	assert_equal "$stderr" "qctl: declare: RabbitMQ at localhost:$TLS_PORT ended the TLS session at login: it refused the client certificate (is --cert signed by a CA the server trusts?)"
}

@test "a server that requires a client certificate: none is exit 77 saying so, the CA's passes" {
	# the sandbox's listener only asks for one (fail_if_no_peer_cert is
	# false there), so an openssl s_server that requires it stands in
	port=$(free_port)
	openssl s_server -quiet -accept "127.0.0.1:$port" -cert "$T/server.pem" \
		-key "$T/server.key" -CAfile "$T/ca.pem" -Verify 1 \
		</dev/null >"$TMP/s_server.log" 2>&1 &
	SPID=$!
	wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null
	run -77 --separate-stderr qctl declare "$Q" --cacert "$T/ca.pem" --timeout 5s \
		--amqp "amqps://guest:guest@localhost:$port/%2f"
	assert_equal "$stderr" "qctl: declare: RabbitMQ at localhost:$port ended the TLS session at login: does it require a client certificate (--cert, --key)?"
	# with the CA's client certificate the server verifies it and the TLS
	# session stands; s_server speaks no AMQP and hangs up at the login
	run -77 --separate-stderr qctl declare "$Q" --cacert "$T/ca.pem" --timeout 5s \
		--cert "$T/client.pem" --key "$T/client.key" \
		--amqp "amqps://guest:guest@localhost:$port/%2f"
	assert_equal "$stderr" "qctl: declare: RabbitMQ at localhost:$port refused the login for user 'guest'"
	kill "$SPID"
	wait "$SPID" 2>/dev/null || true
	grep -q 'CN = guest' "$TMP/s_server.log"
}

@test "bad TLS files are usage errors (64) naming the file" {
	run -64 --separate-stderr qctl declare "$Q" --cacert "$T/nope.pem"
	# why, as Redis's TLS says it (librabbitmq only says "a SSL error occurred")
	assert_equal "$stderr" "qctl: declare: cannot use CA file '$T/nope.pem': No such file or directory"
	run -64 --separate-stderr qctl declare "$Q" --cacert "$T/ca.pem" --cert "$T/client.pem"
	assert_equal "$stderr" "qctl: declare: --cert and --key go together"
	run -64 --separate-stderr qctl declare "$Q" --cacert "$T/ca.pem" \
		--cert "$T/client.pem" --key "$T/nope.key"
	assert_equal "$stderr" "qctl: declare: cannot use client key '$T/nope.key': No such file or directory"
	run -64 --separate-stderr qctl declare "$Q" --cacert "$T/ca.pem" \
		--cert "$T/client.pem" --key "$T/other-client.key"
	[[ "$stderr" == "qctl: declare: cannot use client certificate '$T/client.pem' / key '$T/other-client.key': "* ]]
}

@test "amqps:// to a plain AMQP port fails the handshake: exit 69" {
	run -69 --separate-stderr qctl declare "$Q" --cacert "$T/ca.pem" \
		--amqp "amqps://guest:guest@localhost:$PLAIN_PORT/%2f"
	assert_equal "$stderr" "qctl: declare: cannot connect to RabbitMQ at localhost:$PLAIN_PORT: SSL handshake failed"
}

@test "an address in the URL is checked against the certificate's IP names" {
	# librabbitmq 0.11 matches DNS names only; qctl has OpenSSL check
	# addresses, so 127.0.0.1 (named in the server certificate) works
	run -0 qctl declare "$Q" --cacert "$T/ca.pem" \
		--amqp "amqps://guest:guest@127.0.0.1:$TLS_PORT/%2f"
	assert_output "declared '$Q' (0 messages, 0 consumers)"
}

@test "an address the certificate does not name is refused: exit 77" {
	# a TLS server whose certificate, signed by the same CA, names only
	# DNS:localhost; the handshake is refused before any AMQP is spoken
	openssl req -new -newkey rsa:2048 -nodes -subj /CN=localhost \
		-keyout "$TMP/dns.key" -out "$TMP/dns.csr" 2>/dev/null
	printf 'subjectAltName=DNS:localhost\n' >"$TMP/ext"
	openssl x509 -req -in "$TMP/dns.csr" -CA "$T/ca.pem" -CAkey "$T/ca.key" \
		-CAcreateserial -CAserial "$TMP/ca.srl" -days 1 -extfile "$TMP/ext" \
		-out "$TMP/dns.pem" 2>/dev/null
	port=$(free_port)
	openssl s_server -quiet -accept "127.0.0.1:$port" -cert "$TMP/dns.pem" \
		-key "$TMP/dns.key" </dev/null >/dev/null 2>&1 &
	SPID=$!
	wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null
	run -77 --separate-stderr qctl declare "$Q" --cacert "$T/ca.pem" \
		--amqp "amqps://guest:guest@127.0.0.1:$port/%2f"
	kill "$SPID"
	assert_equal "$stderr" "qctl: declare: cannot connect to RabbitMQ at 127.0.0.1:$port: SSL peer cert verification failed (is --cacert the CA that signed the server certificate, and does the certificate name '127.0.0.1'?)"
	# by name, the same certificate is good: the handshake passes, and the
	# failure is a later one (s_server speaks no AMQP and hangs up)
	openssl s_server -quiet -accept "127.0.0.1:$port" -cert "$TMP/dns.pem" \
		-key "$TMP/dns.key" </dev/null >/dev/null 2>&1 &
	SPID=$!
	wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null
	run --separate-stderr qctl declare "$Q" --cacert "$T/ca.pem" --timeout 2s \
		--amqp "amqps://guest:guest@localhost:$port/%2f"
	kill "$SPID"
	[[ "$stderr" != *"verification failed"* ]]
	[[ "$stderr" == "qctl: declare: RabbitMQ at localhost:$port "* ]]
}

@test "a wrong password over TLS is exit 77 and not printed" {
	run -77 --separate-stderr qctl declare "$Q" --cacert "$T/ca.pem" \
		--amqp "amqps://guest:Wr0ngTlsPw@localhost:$TLS_PORT/%2f"
	assert_equal "$stderr" "qctl: declare: login to RabbitMQ at localhost:$TLS_PORT as 'guest': ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For details see the broker logfile."
	[[ "$stderr" != *Wr0ngTlsPw* ]]
}
