#!/usr/bin/env bats
# Signals on large runs (issue 13): SIGINT or SIGTERM at a random point of
# an enqueue of 300,000 lines, a replay of 20,000 dead letters and a warm
# of 1M keys.  Counted from outside (rabbitmqctl, redis-cli): what the
# summary says was done is what the servers hold, nothing is lost, and the
# rest can be sent again exactly.  The quick cases are in tests/signals.bats.

bats_require_minimum_version 1.5.0
load fault_helper

QUEUE_SUITE=1

# A random delay between $1 and $2 milliseconds, as seconds for sleep.
random_delay() {
	printf '0.%03d' $(( $1 + RANDOM % ($2 - $1) ))
}

random_signal() {
	if ((RANDOM % 2)); then echo INT; else echo TERM; fi
}

@test "enqueue of 300,000 lines: a signal mid-run confirms what was sent, names the rest; re-sending it completes the queue exactly" {
	qctl declare -q "$Q"
	seq 1 300000 >"$TMP/batch.txt"
	sig=$(random_signal)
	qctl enqueue --json "$Q" <"$TMP/batch.txt" >"$TMP/failed.jsonl" 2>"$TMP/err" &
	pid=$!
	sleep "$(random_delay 300 900)"
	kill "-$sig" "$pid"
	status=0
	wait "$pid" || status=$?
	note "SIG$sig: $(tail -1 "$TMP/err")"
	[ "$status" = 75 ]
	grep -qx "qctl: enqueue: stopped by SIG$sig" "$TMP/err"
	from=$(jq -r '.from_line // empty' "$TMP/failed.jsonl")
	sent=$(sed -n 's/^enqueued \([0-9]*\) messages\{0,1\} in.*/\1/p' "$TMP/err")
	[ "$sent" = $((from - 1)) ]
	[ "$(ready "$Q")" = "$sent" ]
	# the man page's recipe
	resend_lines "$TMP/failed.jsonl" "$TMP/batch.txt" |
		qctl enqueue -q "$Q"
	[ "$(ready "$Q")" = 300000 ]
}

# 20,000 dead letters in $Q.dlq that name $Q as their queue.
dead_letters() {
	qctl declare -q "$Q"
	qctl declare -q "$Q.dlq"
	seq 1 20000 | qctl enqueue -q -H "x-original-queue=$Q" "$Q.dlq"
	[ "$(ready "$Q.dlq")" = 20000 ]
}

@test "replay of 20,000: a signal mid-run settles the window; the queues hold the summary's count and nothing is lost" {
	dead_letters
	sig=$(random_signal)
	qctl replay-dlq --rate 8000 "$Q.dlq" 2>"$TMP/err" &
	pid=$!
	sleep "$(random_delay 300 1500)"
	kill "-$sig" "$pid"
	status=0
	wait "$pid" || status=$?
	note "SIG$sig: $(tail -1 "$TMP/err")"
	[ "$status" = 75 ]
	grep -q "qctl: replay-dlq: stopped by SIG$sig" "$TMP/err"
	moved=$(sed -n "s/^replayed \([0-9]*\) to .*/\1/p" "$TMP/err")
	[ "$moved" -gt 0 ]
	[ "$moved" -lt 20000 ]
	wait_for 20 depth_at_least "$Q.dlq" $((20000 - moved))
	[ "$(ready "$Q")" = "$moved" ]
	[ "$(ready "$Q.dlq")" = $((20000 - moved)) ]
}

@test "replay of 20,000: a second signal hurries it; duplicates stay within the window, none is lost" {
	dead_letters
	qctl replay-dlq --window 500 "$Q.dlq" 2>"$TMP/err" &
	pid=$!
	sleep "$(random_delay 200 800)"
	kill -TERM "$pid"
	kill -INT "$pid"
	status=0
	wait "$pid" || status=$?
	note "$(tail -1 "$TMP/err")"
	[ "$status" = 75 ]
	sleep 2	# the broker's counts settle
	total=$(( $(ready "$Q") + $(ready "$Q.dlq") ))
	note "$total messages in both queues"
	[ "$total" -ge 20000 ]
	[ "$total" -le 20500 ]
	[ "$( (take_bodies "$Q"; take_bodies "$Q.dlq") | sort -un | wc -l)" = 20000 ]
}

@test "warm of 1M keys: a signal mid-run writes every line read, says where to go on, releases --once; a re-run from there completes it" {
	rcli flushall >/dev/null
	awk 'BEGIN { for (i = 1; i <= 1000000; i++) printf "k%d\t%d\n", i, i }' >"$TMP/in.tsv"
	sig=$(random_signal)
	cachectl warm --ttl 1h --once big --json "$TMP/in.tsv" >"$TMP/out" 2>"$TMP/err" &
	pid=$!
	sleep "$(random_delay 200 600)"
	kill "-$sig" "$pid"
	status=0
	wait "$pid" || status=$?
	note "SIG$sig: $(cat "$TMP/out")"
	[ "$status" = 75 ]
	grep -qx "cachectl: warm: stopped by SIG$sig" "$TMP/err"
	warmed=$(jq -r .warmed "$TMP/out")
	[ "$(jq -r .stopped "$TMP/out")" = true ]
	[ "$(jq -r .records "$TMP/out")" = "$warmed" ]
	from=$(sed -n 's/.*lines from \([0-9]*\) on not read/\1/p' "$TMP/err")
	[ "$from" = $((warmed + 1)) ]
	[ "$(rcli exists "${P}cq:once:big")" = 0 ]
	[ "$(rcli dbsize)" = "$warmed" ]
	tail -n "+$from" "$TMP/in.tsv" | cachectl warm -q --ttl 1h --once big
	[ "$(rcli dbsize)" = 1000000 ]
}

# Is the entry of stream $1 pending in group qctl idle at least $2 ms?
pending_idle_at_least() {
	local idle
	idle=$(rcli XPENDING "$1" qctl - + 10 | sed -n 3p)
	[ -n "$idle" ] || return 1
	[ "$idle" -ge "$2" ]
}

@test "consume on each backend: a second SIGTERM kills the running handler's process group; its message goes back at once, exit 0" {
	local b rc pids
	for b in amqp list stream; do
		[ "$b" = list ] || qctl declare -q --backend "$b" "$Q.$b"
		qctl enqueue -q --backend "$b" "$Q.$b" one two
		rm -f "$TMP/pids"
		qctl consume --backend "$b" --prefetch 1 \
			-e "sleep 300 & echo \$\$ \$! >'$TMP/pids'; wait" "$Q.$b" 2>"$TMP/err" 3>&- &
		BGPID=$!
		wait_for 20 test -s "$TMP/pids"
		pids=$(cat "$TMP/pids")
		kill -TERM "$BGPID"
		sleep 0.3
		# the first lets the handler finish...
		kill -0 "$BGPID"
		for p in $pids; do kill -0 "$p"; done
		# ...the second stops it
		kill -TERM "$BGPID"
		rc=0
		wait "$BGPID" || rc=$?
		BGPID=
		cat "$TMP/err"
		[ "$rc" = 0 ]
		grep -q "consumed 1 message in .*(0 acked, 1 retried, 0 dead-lettered)" "$TMP/err"
		for p in $pids; do wait_for 5 gone "$p"; done
		case $b in
		amqp) wait_for 10 ready_is "$Q.$b" 2 ;;
		list)
			[ "$(rcli LLEN "$P$Q.$b")" = 2 ]
			# no processing list or lease left: the queue and the
			# failure's record only
			[ "$(rcli --scan --pattern "*$Q.$b*" | sort | paste -sd' ')" = "$P$Q.$b $P{$P$Q.$b}|cq:meta" ] ;;
		stream)
			# released: idle past the default 5m visibility timeout,
			# so the next consumer claims it at once
			[ "$(rcli XLEN "$P$Q.$b")" = 2 ]
			pending_idle_at_least "$P$Q.$b" 300000 ;;
		esac
	done
}

@test "consume printing 100,000 from a list and a stream: a signal mid-run; what was printed is acked, the rest back in the queue or unread, none twice" {
	local b sig rc printed pending
	for b in list stream; do
		[ "$b" = list ] || qctl declare -q --backend "$b" "$Q.$b"
		seq 1 100000 | qctl enqueue -q --backend "$b" "$Q.$b"
		sig=$(random_signal)
		qctl consume --backend "$b" "$Q.$b" >"$TMP/out" 2>"$TMP/err" &
		pid=$!
		wait_for 20 lines_at_least "$TMP/out" 1000
		kill "-$sig" "$pid"
		rc=0
		wait "$pid" || rc=$?
		note "$b, SIG$sig: $(tail -1 "$TMP/err")"
		[ "$rc" = 0 ]
		printed=$(wc -l <"$TMP/out")
		grep -q "consumed $printed messages in .* ($printed acked, 0 retried, 0 dead-lettered)" "$TMP/err"
		[ "$(sort -u "$TMP/out" | wc -l)" = "$printed" ]
		if [ "$b" = list ]; then
			[ "$(rcli LLEN "$P$Q.$b")" = $((100000 - printed)) ]
			# no processing list or lease left
			[ "$(rcli --scan --pattern "*$Q.$b*" | paste -sd' ')" = "$P$Q.$b" ] ||
				[ "$printed" = 100000 ]
		else
			# read and not printed: pending, released (claimable at
			# once); the rest not read
			pending=$(rcli XPENDING "$P$Q.$b" qctl | head -1)
			[ "$pending" = 0 ] || pending_idle_at_least "$P$Q.$b" 300000
			[ "$(group_field "$P$Q.$b" entries-read)" = $((printed + pending)) ]
		fi
	done
}
