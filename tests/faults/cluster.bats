#!/usr/bin/env bats
# A RabbitMQ node dying under qctl (issue 15): a private 3-node cluster,
# started once for this file (about 15-25 s); quorum queues; kill -9 of a
# node in the middle of a job.  Everything is counted by draining with
# bench/qtool (librabbitmq, no cq code), never with qctl.
#
# qctl always gets the list of the three nodes, node 1 first, so it is
# connected to node 1.  Queues are declared through node 2, which makes
# node 2 their leader: killing node 2 kills the leader of the queue qctl
# is using, through a node qctl is not connected to.

bats_require_minimum_version 1.5.0
load fault_helper

setup_file() { cluster_setup_file; }
teardown_file() { fault_teardown_file; }

per_test_teardown() {
	if [ -e "$TMP/alarm" ]; then
		"$SANDBOX" --dir "$SB" cluster-ctl "$(cat "$TMP/alarm")" set_vm_memory_high_watermark 0.4 >/dev/null 2>&1 || true
	fi
	# (after the file's last test teardown_file stops every node anyway)
	if [ "$BATS_TEST_NUMBER" -lt "${#BATS_TEST_NAMES[@]}" ]; then
		cluster_heal
	fi
	local q
	for q in "$Q" "$Q.dlq"; do
		amqp-delete-queue -u "$CQ_CLUSTER_AMQP_URL_3" -q "$q" >/dev/null 2>&1 || true
	done
}

# Sizes: large enough that the kill lands mid-job on a loaded CI machine,
# small enough to keep this file near two minutes.
N=${CQ_FAULT_ENQUEUE_N:-50000}
C=${CQ_FAULT_CONSUME_N:-2000}
R=${CQ_FAULT_REPLAY_N:-20000}

# kill_when PID CONDITION...: once CONDITION holds, kill -9 node $KILL;
# fail if the job had already finished (the kill would prove nothing).
kill_when() {
	local pid=$1
	shift
	wait_for 120 "$@" || { echo "never: $*"; return 1; }
	kill -0 "$pid" 2>/dev/null || { echo "the job ended before the kill"; return 1; }
	sb kill-node "$KILL"
}


@test "cluster: the sandbox runs three clustered nodes, distribution on loopback only" {
	run -0 "$SANDBOX" --dir "$SB" cluster-ctl 1 cluster_status --formatter json
	[ "$(jq '.running_nodes | length' <<<"$output")" = 3 ]
	[ "$(jq -r '.running_nodes | sort | join(" ")' <<<"$output")" = \
		"$(printf '%s\n' "$CQ_CLUSTER_NODE_1" "$CQ_CLUSTER_NODE_2" "$CQ_CLUSTER_NODE_3" | sort | paste -sd' ')" ]
	# every port the nodes and their epmd listen on is bound to 127.0.0.1
	for n in 1 2 3; do
		p=$(cat "$SB/cluster/n$n/rabbitmq.pid")
		ss -Hltnp | grep "pid=$p," | awk '{ print $4 }' > "$TMP/addrs"
		[ -s "$TMP/addrs" ]
		! grep -v '^127\.0\.0\.1:' "$TMP/addrs" || false
	done
	# each node has the management API
	for n in 1 2 3; do
		v=CQ_CLUSTER_API_URL_$n
		curl -sf "${!v}/api/overview" | jq -e '.cluster_name == "cq-sandbox"'
	done
}

@test "cluster: enqueue to a quorum queue while its leader's node (not qctl's) is killed: exit 0, exactly N" {
	qctl declare -q --quorum --amqp "$CQ_CLUSTER_AMQP_URL_2" "$Q"
	seq 1 "$N" > "$TMP/in"
	qctl enqueue "$Q" < "$TMP/in" 2> "$TMP/err" &
	pid=$!
	KILL=2 kill_when "$pid" has_at_least_on 1 "$Q" $((N / 5))
	status=0
	wait "$pid" || status=$?
	[ "$status" = 0 ] || { echo "status $status"; cat "$TMP/err"; false; }
	grep -q "^enqueued $N messages" "$TMP/err"
	qt 1 drain "$Q" > "$TMP/out"
	note "drained $(wc -l < "$TMP/out") of $N"
	sort -n "$TMP/out" | cmp - "$TMP/in"
}

@test "cluster: consume --exec while the queue leader's node (not qctl's) is killed: exit 0, each handled, none left" {
	qctl declare -q --quorum --amqp "$CQ_CLUSTER_AMQP_URL_2" "$Q"
	seq 1 "$C" | qctl enqueue -q --amqp "$CQ_CLUSTER_AMQP_URL_2" "$Q"
	export OUT="$TMP/handled"
	# one write per message (O_APPEND): body and whether it was redelivered
	qctl consume -q -j 4 --idle-timeout 3s --exec 'printf "%s %s\n" "$(cat)" "$CQ_REDELIVERED" >> "$OUT"' \
		"$Q" 2> "$TMP/err" &
	pid=$!
	KILL=2 kill_when "$pid" lines_at_least "$OUT" $((C / 5))
	status=0
	wait "$pid" || status=$?
	[ "$status" = 0 ] || { echo "status $status"; cat "$TMP/err"; false; }
	note "handled $(wc -l < "$OUT") for $C messages"
	# every message handled; a body handled twice only if redelivered
	cut -d' ' -f1 "$OUT" | sort -n -u | cmp - <(seq 1 "$C")
	awk '{ n[$1]++; if ($2 == 1) r[$1] = 1 } END { for (b in n) if (n[b] > 1 && !r[b]) { print "duplicate not flagged: " b; bad = 1 } exit bad }' "$OUT"
	# nothing left in the queue, and nothing unacked came back to it
	qt 1 drain "$Q" 1 > "$TMP/left"
	[ ! -s "$TMP/left" ]
}

@test "cluster: consume --exec while qctl's own node is killed: it reconnects (stderr, --json), each acked once after success, none left" {
	qctl declare -q --quorum --amqp "$CQ_CLUSTER_AMQP_URL_2" "$Q"
	seq 1 "$C" | qctl enqueue -q --amqp "$CQ_CLUSTER_AMQP_URL_2" "$Q"
	export OUT="$TMP/handled"
	qctl consume --json -j 4 --idle-timeout 3s --exec 'printf "%s %s\n" "$(cat)" "$CQ_REDELIVERED" >> "$OUT"' \
		"$Q" > "$TMP/events" 2> "$TMP/err" &
	pid=$!
	KILL=1 kill_when "$pid" lines_at_least "$OUT" $((C / 5))
	status=0
	wait "$pid" || status=$?
	[ "$status" = 0 ] || { echo "status $status"; cat "$TMP/err"; false; }
	# the reconnect, said on stderr and as an event on stdout
	grep -q "^qctl: consume: connection to RabbitMQ at 127.0.0.1:$(node_port 1) lost (.*): reconnected to 127.0.0.1:$(node_port 2) in [0-9.]*s (reconnect 1)" "$TMP/err" || { cat "$TMP/err"; false; }
	[ "$(jq -c 'select(.event == "reconnected") | [.from, .to, .reconnect]' "$TMP/events")" = \
		"[\"127.0.0.1:$(node_port 1)\",\"127.0.0.1:$(node_port 2)\",1]" ]
	# counted once each: messages whose ack the dead node lost are acked
	# again, not counted again
	grep -q "consumed $C messages in .*($C acked, 0 retried, 0 dead-lettered, 1 reconnect" "$TMP/err" || { cat "$TMP/err"; false; }
	note "handled $(wc -l < "$OUT") for $C messages, $(awk '$2 == 1' "$OUT" | wc -l) flagged redelivered"
	cut -d' ' -f1 "$OUT" | sort -n -u | cmp - <(seq 1 "$C")
	awk '{ n[$1]++; if ($2 == 1) r[$1] = 1 } END { for (b in n) if (n[b] > 1 && !r[b]) { print "duplicate not flagged: " b; bad = 1 } exit bad }' "$OUT"
	qt 2 drain "$Q" 1 > "$TMP/left"
	[ ! -s "$TMP/left" ]
}

@test "cluster: replay-dlq from a quorum DLQ while the queues' leader node (not qctl's) is killed: exit 0, zero loss" {
	qctl declare -q --quorum --dlq --amqp "$CQ_CLUSTER_AMQP_URL_2" "$Q"
	seq 1 "$R" | qctl enqueue -q --amqp "$CQ_CLUSTER_AMQP_URL_2" "$Q.dlq"
	qctl replay-dlq "$Q.dlq" 2> "$TMP/err" &
	pid=$!
	KILL=2 kill_when "$pid" has_at_least_on 1 "$Q" $((R / 5))
	status=0
	wait "$pid" || status=$?
	[ "$status" = 0 ] || { echo "status $status"; cat "$TMP/err"; false; }
	grep -q "^replayed $R to '$Q' (0 skipped, 0 failed)" "$TMP/err" || { cat "$TMP/err"; false; }
	qt 1 drain "$Q" > "$TMP/moved"
	qt 1 drain "$Q.dlq" 1 > "$TMP/left"
	note "moved $(wc -l < "$TMP/moved"), left $(wc -l < "$TMP/left")"
	[ ! -s "$TMP/left" ]
	sort -n "$TMP/moved" | cmp - <(seq 1 "$R")
}

@test "cluster: enqueue while qctl's own node is killed: it reconnects and finishes, exit 75 naming the exact lines; re-sent, N distinct" {
	qctl declare -q --quorum --amqp "$CQ_CLUSTER_AMQP_URL_2" "$Q"
	seq 1 "$N" > "$TMP/in"
	qctl enqueue --json "$Q" < "$TMP/in" > "$TMP/failed.jsonl" 2> "$TMP/err" &
	pid=$!
	KILL=1 kill_when "$pid" has_at_least_on 2 "$Q" $((N / 5))
	status=0
	wait "$pid" || status=$?
	[ "$status" = 75 ] || { echo "status $status"; cat "$TMP/err"; false; }
	grep -q "^qctl: enqueue: connection to RabbitMQ at 127.0.0.1:$(node_port 1) lost (.*): reconnected to 127.0.0.1:$(node_port 2) in [0-9.]*s (reconnect 1); [0-9]* lines not confirmed (named above): the rest goes on$" "$TMP/err" || { cat "$TMP/err"; false; }
	[ "$(jq -c 'select(.event == "reconnected") | [.from, .to]' "$TMP/failed.jsonl")" = \
		"[\"127.0.0.1:$(node_port 1)\",\"127.0.0.1:$(node_port 2)\"]" ]
	grep -q "not confirmed: connection lost\|not confirmed: channel closed" "$TMP/err"
	# the input was read to its end: nothing left unsent
	! grep -q "not sent" "$TMP/err" || false
	confirmed=$(sed -n 's/^enqueued \([0-9]*\) messages.*, 1 reconnect)$/\1/p' "$TMP/err")
	# the lines named, re-sent through node 2
	resend_lines "$TMP/failed.jsonl" "$TMP/in" > "$TMP/resend"
	[ -s "$TMP/resend" ]
	[ $((confirmed + $(wc -l < "$TMP/resend"))) = "$N" ]
	qctl enqueue -q --amqp "$CQ_CLUSTER_AMQP_URL_2" "$Q" < "$TMP/resend"
	qt 2 drain "$Q" > "$TMP/stored"
	note "confirmed $confirmed, named and re-sent $(wc -l < "$TMP/resend"), stored $(wc -l < "$TMP/stored")"
	# exactly the N bodies; duplicates only among the lines re-sent
	sort -n -u "$TMP/stored" | cmp - "$TMP/in"
	[ "$(wc -l < "$TMP/stored")" -le $((N + $(wc -l < "$TMP/resend"))) ]
}

@test "cluster: replay-dlq from a quorum DLQ while qctl's own node is killed: it reconnects, exit 0, zero loss, counted once" {
	qctl declare -q --quorum --dlq --amqp "$CQ_CLUSTER_AMQP_URL_2" "$Q"
	seq 1 "$R" | qctl enqueue -q --amqp "$CQ_CLUSTER_AMQP_URL_2" "$Q.dlq"
	qctl replay-dlq --json "$Q.dlq" > "$TMP/events" 2> "$TMP/err" &
	pid=$!
	KILL=1 kill_when "$pid" has_at_least_on 2 "$Q" $((R / 5))
	status=0
	wait "$pid" || status=$?
	[ "$status" = 0 ] || { echo "status $status"; cat "$TMP/err"; false; }
	grep -q "^qctl: replay-dlq: connection to RabbitMQ at 127.0.0.1:$(node_port 1) lost (.*): reconnected to 127.0.0.1:$(node_port 2) in [0-9.]*s (reconnect 1); " "$TMP/err" || { cat "$TMP/err"; false; }
	[ "$(jq -c 'select(.event == "reconnected") | .reconnect' "$TMP/events")" = 1 ]
	grep -q "^replayed $R to '$Q' (0 skipped, 0 failed, 1 reconnect)" "$TMP/err" || { cat "$TMP/err"; false; }
	qt 2 drain "$Q" > "$TMP/moved"
	qt 2 drain "$Q.dlq" 1 > "$TMP/left"
	note "moved $(wc -l < "$TMP/moved") ($(sort -u "$TMP/moved" | wc -l) distinct), left $(wc -l < "$TMP/left")"
	[ ! -s "$TMP/left" ]
	sort -n -u "$TMP/moved" | cmp - <(seq 1 "$R")
}

@test "cluster: a memory alarm that outlasts --timeout blocks every node: enqueue does not reconnect, exit 75 naming the lines" {
	qctl declare -q --quorum --amqp "$CQ_CLUSTER_AMQP_URL_2" "$Q"
	echo 3 > "$TMP/alarm"
	"$SANDBOX" --dir "$SB" cluster-ctl 3 set_vm_memory_high_watermark absolute 1MB >/dev/null
	wait_for 30 bash -c '! cqstat --no-cache --api "$CQ_CLUSTER_API_URL_1" --check "alarms>0:crit" >/dev/null'
	status=0
	{ echo a; sleep 1; echo b; echo c; } |
		qctl enqueue --json --timeout 2s "$Q" > "$TMP/out" 2> "$TMP/err" || status=$?
	[ "$status" = 75 ] || { echo "status $status"; cat "$TMP/err"; false; }
	! grep -q "reconnect" "$TMP/err" || { cat "$TMP/err"; false; }
	[ "$(jq -c 'select(.line or .from_line) | [.line // .from_line, .error]' "$TMP/out" | paste -sd' ')" = \
		'[1,"publishing blocked by a resource alarm past the timeout"] [2,"publishing blocked by a resource alarm past the timeout"] [3,"not sent"]' ] || { cat "$TMP/out" "$TMP/err"; false; }
}

@test "cluster: a poison message that kills its consumer reaches the DLQ through the delivery limit; peek says why" {
	qctl declare -q --quorum --dlq --delivery-limit 2 "$Q"
	qctl enqueue -q "$Q" poison
	export SEEN="$TMP/seen"
	# each consumer dies on it; the broker counts the returns, and past
	# the limit dead-letters it (at-least-once: the DLQ confirmed it)
	for i in 1 2 3 4 5; do
		qctl consume -q -n 1 --idle-timeout 2s \
			--exec 'echo "$CQ_RETRIES $CQ_DELIVERY_COUNT" >> "$SEEN"; kill -9 $PPID; sleep 5' "$Q" || true
		has_at_least_on 1 "$Q.dlq" 1 && break
	done
	wait_for 10 has_at_least_on 1 "$Q.dlq" 1
	[ "$(paste -sd, "$SEEN")" = "0 0,0 1,0 2" ]
	run -0 --separate-stderr qctl peek "$Q.dlq"
	[[ "$output" == *"died: delivery_limit (count 1), queue '$Q'"* ]] || { echo "$output"; false; }
	[ "$(qt 1 drain "$Q" 1)" = "" ]
	# replayed, it is a new message: the broker's count starts again
	run -0 --separate-stderr qctl replay-dlq "$Q.dlq"
	run -0 qctl consume -q -n 1 \
		--exec 'printf "%s %s %s\n" "$CQ_DELIVERY_COUNT" "${CQ_HEADER_X_DELIVERY_COUNT:-none}" "$(cat)"' "$Q"
	[ "$output" = "0 none poison" ] || { echo "got: $output"; false; }
	[ "$(qt 1 drain "$Q.dlq" 1)" = "" ]
}

# cqstat against node 1's management API, quorum queue $Q
cq_stat() { cqstat --no-cache --api "$CQ_CLUSTER_API_URL_1" "$@"; }

@test "cluster: cqstat --nodes shows the nodes, alarms and partitions; a quorum queue's leader and members" {
	qctl declare -q --quorum --amqp "$CQ_CLUSTER_AMQP_URL_2" "$Q"
	run -0 --separate-stderr cq_stat --nodes -Q "$Q" --json
	j=$output
	[ "$(jq -c '.cluster | [.nodes_running, .nodes_down, .alarms, .partitions, (.nodes | length)]' <<<"$j")" = "[3,0,0,0,3]" ]
	[ "$(jq -r '[.cluster.nodes[] | select(.running == 1 and .mem_alarm == 0 and .disk_alarm == 0) | .node] | sort | join(" ")' <<<"$j")" = \
		"$(printf '%s\n' "$CQ_CLUSTER_NODE_1" "$CQ_CLUSTER_NODE_2" "$CQ_CLUSTER_NODE_3" | sort | paste -sd' ')" ]
	# the leader and members as rabbitmqctl reports them
	rabbit=$("$SANDBOX" --dir "$SB" cluster-ctl 1 list_queues -q name leader members --formatter json |
		jq -c --arg q "$Q" '.[] | select(.name == $q) | [.leader, (.members | sort)]')
	[ "$(jq -c '.queues[0] | [.leader, ([.member_nodes[].node] | sort)]' <<<"$j")" = "$rabbit" ]
	[ "$(jq -r '.queues[0].leader' <<<"$j")" = "$CQ_CLUSTER_NODE_2" ]
	[ "$(jq -c '.queues[0] | [.members, .members_total, ([.member_nodes[] | select(.online)] | length)]' <<<"$j")" = "[3,3,3]" ]
	# the table: a cluster group
	run -0 --separate-stderr cq_stat --nodes
	[[ "${lines[0]}" == *" cluster "* ]]
	[ "$(echo "${lines[1]}" | tr -s ' ')" = " nodes down alarms parts" ]
	[ "$(echo "${lines[2]}" | tr -s ' ')" = " 3 0 0 0" ]
}

@test "cluster: cqstat --check 'alarms>0:crit' sees a memory alarm, 'members<3:warn' a quorum member down" {
	qctl declare -q --quorum --amqp "$CQ_CLUSTER_AMQP_URL_2" "$Q"
	run -0 cq_stat -Q "$Q" --check 'alarms>0:crit' --check 'members<3:warn'
	[ "$output" = "CQ OK - alarms=0 members=3" ]
	# a memory alarm on node 3: publishing blocked cluster-wide
	echo 3 > "$TMP/alarm"
	"$SANDBOX" --dir "$SB" cluster-ctl 3 set_vm_memory_high_watermark absolute 1MB >/dev/null
	wait_for 30 bash -c '! cqstat --no-cache --api "$CQ_CLUSTER_API_URL_1" --check "alarms>0:crit" >/dev/null'
	run -2 cq_stat --check 'alarms>0:crit' --check "mem_alarm[$CQ_CLUSTER_NODE_3]>0:crit"
	[ "$output" = "CQ CRITICAL - alarms=1 (>0) mem_alarm[$CQ_CLUSTER_NODE_3]=1 (>0)" ]
	"$SANDBOX" --dir "$SB" cluster-ctl 3 set_vm_memory_high_watermark 0.4 >/dev/null
	rm -f "$TMP/alarm"
	wait_for 30 cq_stat --check 'alarms>0:crit'
	# node 3 killed: the queue has a member down, and the cluster a node
	sb kill-node 3
	# (the API sees the member and the node go at moments of its own)
	wait_for 30 bash -c '[ "$(cqstat --no-cache --api "$CQ_CLUSTER_API_URL_1" -Q "$Q" --check "members<3:warn" --check "nodes_down>0:warn")" = \
		"CQ WARNING - members=2 (<3) nodes_down=1 (>0)" ]'
	run -1 cq_stat -Q "$Q" --check 'members<3:warn' --check 'nodes_down>0:warn'
	[ "$output" = "CQ WARNING - members=2 (<3) nodes_down=1 (>0)" ] || { echo "got: $output"; false; }
	run -0 --separate-stderr cq_stat -Q "$Q" --json
	[ "$(jq -c --arg n "$CQ_CLUSTER_NODE_3" '.queues[0].member_nodes[] | select(.node == $n) | .online' <<<"$output")" = false ]
}
