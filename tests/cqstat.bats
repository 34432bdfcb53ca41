#!/usr/bin/env bats
# cqstat: cache figures over a private redis-server, the table, --json,
# --prom, --track, servers that are down, usage errors.

load test_helper
load cqstat_helper

per_test_setup() {
	priv_redis_start
	export CQ_REDIS_URL=$PRIV_URL
}

# 3 hits and 1 miss through cachectl.
hits3_miss1() {
	cachectl get a >/dev/null && cachectl get b >/dev/null &&
		cachectl get a >/dev/null && ! cachectl get -q nope >/dev/null
}

@test "the first line gives the hit rate since start: 3 hits 1 miss is 0.75" {
	cachectl set --ttl 60 a 1
	cachectl set --ttl 60 b 2
	hits3_miss1
	run -0 cqstat --json
	assert_equal "$(jq -r .redis.hit_rate <<<"$output")" 0.75
	assert_equal "$(jq -r .redis.hits <<<"$output")" 3
	assert_equal "$(jq -r .redis.misses <<<"$output")" 1
	assert_equal "$(jq -r .interval <<<"$output")" 0
	run -0 cqstat
	assert_line -n 1 --regexp '^ +hitrate +ops/s +used +max +evict/s +exp/s +keys +nottl$'
	assert_line -n 2 --regexp '^ +0\.75 '
}

@test "an interval line counts only the lookups made in that interval" {
	cachectl set --ttl 60 a 1
	cachectl set --ttl 60 b 2
	for i in 1 2 3 4 5 6 7 8 9 10; do cachectl get -q "miss$i" || true; done
	cqstat --json 2 2 >"$TMP/out" &
	BGPID=$!
	wait_lines "$TMP/out" 1
	hits3_miss1
	wait "$BGPID"
	BGPID=
	assert_equal "$(jline "$TMP/out" 1 .redis.hit_rate)" 0
	assert_equal "$(jline "$TMP/out" 1 .redis.misses)" 10
	assert_equal "$(jline "$TMP/out" 2 .redis.hit_rate)" 0.75
	assert_equal "$(jline "$TMP/out" 2 .redis.hits)" 3
	assert_equal "$(jline "$TMP/out" 2 .redis.misses)" 1
	# since start: 3 hits out of 14 lookups
	assert_equal "$(jline "$TMP/out" 2 .redis.hit_rate_total)" 0.2143
	run jline "$TMP/out" 2 '.interval > 1.9 and .interval < 2.5'
	assert_output true
}

@test "ops/s over an interval counts the commands made in it" {
	for i in $(seq 400); do echo "SET k$i v"; done >"$TMP/cmds"
	cqstat --json 2 2 >"$TMP/out" &
	BGPID=$!
	wait_lines "$TMP/out" 1
	pcli --pipe <"$TMP/cmds" >/dev/null
	wait "$BGPID"
	BGPID=
	# 400 commands (plus cqstat's own INFO) over the interval
	run jline "$TMP/out" 2 '.redis.ops * .interval | round'
	[ "$output" -ge 400 ] && [ "$output" -le 405 ] || fail "ops x interval: $output"
}

@test "evictions: a private server over its maxmemory evicts, cqstat counts them" {
	pcli config set maxmemory 3mb >/dev/null
	pcli config set maxmemory-policy allkeys-random >/dev/null
	v=$(head -c 1000 /dev/zero | tr '\0' x)
	for i in $(seq 6000); do echo "SET k$i $v"; done >"$TMP/cmds"
	cqstat --json 3 2 >"$TMP/out" &
	BGPID=$!
	wait_lines "$TMP/out" 1
	e1=$(pinfo evicted_keys)
	pcli --pipe <"$TMP/cmds" >/dev/null
	e2=$(pinfo evicted_keys)
	wait "$BGPID"
	BGPID=
	e3=$(pinfo evicted_keys)
	[ "$e2" -gt "$e1" ]
	# any command over maxmemory may evict a few more: bracket the figure
	n=$(jline "$TMP/out" 2 .redis.evicted_keys)
	[ "$n" -ge $((e2 - e1)) ] && [ "$n" -le $((e3 - e1)) ] || fail "$n not in [$((e2 - e1)), $((e3 - e1))]"
	assert_equal "$(jline "$TMP/out" 2 .redis.evicted_total)" $((e1 + n))
	assert_equal "$(jline "$TMP/out" 2 .redis.maxmemory)" 3145728
	# per second over the interval, within 1% (clocks read a moment apart)
	run jline "$TMP/out" 2 "(.redis.evicted * .interval / $n - 1) | fabs < 0.01"
	assert_output true
}

@test "keys without TTL are counted per db and in all" {
	cachectl set --ttl 60 a 1
	cachectl set --ttl 60 b 1
	cachectl set --no-ttl c 1
	pcli set d 1 >/dev/null
	pcli -n 2 set e 1 >/dev/null
	run -0 cqstat --json
	assert_equal "$(jq -r .redis.keys <<<"$output")" 5
	assert_equal "$(jq -r .redis.keys_no_ttl <<<"$output")" 3
	assert_equal "$(jq -c '.redis.dbs' <<<"$output")" \
		'[{"db":0,"keys":4,"keys_no_ttl":2},{"db":2,"keys":1,"keys_no_ttl":1}]'
}

@test "the table: a header, then one aligned line per interval" {
	run -0 cqstat 0.2 3
	assert_equal "${#lines[@]}" 5
	assert_line -n 0 --regexp '^ -+ redis -+$'
	for i in 1 2 3 4; do
		assert_equal "${#lines[$i]}" "${#lines[1]}"
	done
}

@test "--json prints one object per sample, flushed as it goes" {
	run -0 cqstat --json 0.1 3
	assert_equal "${#lines[@]}" 3
	for l in "${lines[@]}"; do jq -e '.redis.up == true' <<<"$l" >/dev/null; done
}

@test "--prom: a strict exposition, unknown values left out, ready for a textfile collector" {
	cachectl set --ttl 60 a 1
	cachectl get a >/dev/null
	run -0 cqstat --prom
	help='^# HELP cq_[a-z_]+ [^ ].*$'
	type='^# TYPE cq_[a-z_]+ (gauge|counter)$'
	sample='^cq_[a-z_]+(\{[a-z_]+="([^"\\]|\\["\\n])*"\})? -?[0-9]+(\.[0-9]+)?(e[-+][0-9]+)?$'
	for l in "${lines[@]}"; do
		[[ $l =~ $help || $l =~ $type || $l =~ $sample ]] || fail "bad line: $l"
	done
	assert_line 'cq_up{server="redis"} 1'
	assert_line 'cq_hit_ratio 1'
	assert_line 'cq_keyspace_hits_total 1'
	assert_line '# TYPE cq_keyspace_hits_total counter'
	assert_line 'cq_db_keys{db="0"} 1'
	# every metric has its HELP and TYPE once, before its samples
	run bash -c "cqstat --prom | grep -c '^# TYPE cq_hit_ratio '"
	assert_output 1
	# an unknown hit rate (no lookups yet in a fresh server) is left out
	priv_redis_stop
	priv_redis_start
	export CQ_REDIS_URL=$PRIV_URL
	run -0 cqstat --prom
	refute_line --partial 'cq_hit_ratio '
	refute_output --partial NaN
}

@test "--prom with INTERVAL measures over it and prints one exposition" {
	run -0 cqstat --prom 0.3
	run -0 bash -c "cqstat --prom 0.3 | grep -c '^cq_up{server=\"redis\"} 1$'"
	assert_output 1
}

@test "--track: cachectl get counts per prefix, cqstat shows the prefix's hit rate" {
	CQ_PREFIX=app: cachectl set --ttl 60 a 1
	CQ_PREFIX=app: cachectl get --track a >/dev/null
	CQ_PREFIX=app: CQ_TRACK=1 cachectl get a x y >/dev/null || true
	CQ_PREFIX=other: cachectl get --track -q nope || true
	assert_equal "$(pcli hget cq:track hits:app:)" 2
	assert_equal "$(pcli hget cq:track misses:app:)" 2
	assert_equal "$(pcli hget cq:track misses:other:)" 1
	run -0 cqstat --track --json
	assert_equal "$(jq -c '.redis.prefixes[] | select(.prefix == "app:") | [.hit_rate, .hits_total, .misses_total]' <<<"$output")" '[0.5,2,2]'
	run -0 cqstat --track --prefix app:
	assert_line -n 1 --regexp ' pfxhit$'
	assert_line -n 2 --regexp ' 0\.50$'
}

@test "--track costs the server no lookup: keyspace hits count only the GETs" {
	cachectl set --ttl 60 a 1
	h0=$(pinfo keyspace_hits)
	m0=$(pinfo keyspace_misses)
	cachectl get --track a >/dev/null
	cachectl get --track -q nope || true
	assert_equal "$(pinfo keyspace_hits)" $((h0 + 1))
	assert_equal "$(pinfo keyspace_misses)" $((m0 + 1))
}

@test "--track in an interval: cqstat's own read of the counters is not counted" {
	cachectl set --ttl 60 a 1
	cachectl set --ttl 60 b 1
	cachectl get --track a >/dev/null
	CQ_TRACK=1 cqstat --json 2 2 >"$TMP/out" &
	BGPID=$!
	wait_lines "$TMP/out" 1
	export CQ_TRACK=1
	hits3_miss1
	unset CQ_TRACK
	wait "$BGPID"
	BGPID=
	assert_equal "$(jline "$TMP/out" 2 .redis.hit_rate)" 0.75
	assert_equal "$(jline "$TMP/out" 2 '.redis.prefixes[0].hits')" 3
	assert_equal "$(jline "$TMP/out" 2 '.redis.prefixes[0].misses')" 1
}

@test "a Redis that is down shows as down; nothing read at all exits 69" {
	run --separate-stderr -69 cqstat --redis "$DOWN_REDIS"
	assert_line -n 2 --regexp '^ +down +- +- '
	[[ $stderr == "cqstat: redis down: cannot connect to Redis at 127.0.0.1:1: Connection refused" ]]
	run --separate-stderr -69 cqstat --redis "$DOWN_REDIS" --json
	assert_equal "$(jq -c .redis <<<"$output")" \
		'{"up":false,"error":"cannot connect to Redis at 127.0.0.1:1: Connection refused","dbs":[],"prefixes":[]}'
	run --separate-stderr -69 cqstat --redis "$DOWN_REDIS" --prom
	assert_output $'# HELP cq_up 1 when the server could be read for this sample, else 0\n# TYPE cq_up gauge\ncq_up{server="redis"} 0'
}

@test "the man page's node_exporter recipe publishes a down state, and keeps the last file on a usage error" {
	recipe=$(grep -- 'prom 10 >cq.tmp' "$TOP/man/cqstat.1" | sed -e 's/\\-/-/g' -e 's/\\e/\\/g')
	[ -n "$recipe" ]
	recipe=${recipe#\* \* \* \* \* }
	recipe=${recipe//\/var\/lib\/node_exporter/$TMP/ne}
	mkdir "$TMP/ne"
	echo 'cq_up{server="redis"} 1' >"$TMP/ne/cq.prom"
	# every server down: cqstat exits 69, and cq_up 0 still reaches the file
	export CQ_REDIS_URL=$DOWN_REDIS CQ_AMQP_URL=$DOWN_AMQP CQ_API_URL=
	run --separate-stderr -69 cqstat -Q jobs --prom
	run --separate-stderr -0 sh -c "$recipe"
	assert_equal "$(cat "$TMP/ne/cq.prom")" '# HELP cq_up 1 when the server could be read for this sample, else 0
# TYPE cq_up gauge
cq_up{server="redis"} 0
cq_up{server="amqp"} 0'
	[ ! -e "$TMP/ne/cq.tmp" ]
	# a usage error prints nothing: the last file stays
	CQ_TIMEOUT=x run --separate-stderr sh -c "$recipe"
	[[ $stderr == "cqstat: CQ_TIMEOUT: bad duration 'x'"* ]]
	assert_equal "$(tail -1 "$TMP/ne/cq.prom")" 'cq_up{server="amqp"} 0'
}

@test "a Redis that goes down between samples: the next line says down, then it is back" {
	cqstat --json 1 4 >"$TMP/out" 2>"$TMP/err" &
	BGPID=$!
	wait_lines "$TMP/out" 1
	priv_redis_stop
	wait_lines "$TMP/out" 2
	priv_redis_start
	wait "$BGPID"
	rc=$?
	BGPID=
	assert_equal "$rc" 0
	assert_equal "$(jline "$TMP/out" 1 .redis.up)" true
	assert_equal "$(jline "$TMP/out" 2 .redis.up)" false
	assert_equal "$(jline "$TMP/out" 4 .redis.up)" true
	# said once when it went down
	assert_equal "$(grep -c 'redis down' "$TMP/err")" 1
}

@test "a wrong Redis password is shown as down with its reason, exit 77" {
	priv_redis_stop
	priv_redis_start --requirepass s3cret
	export CQ_REDIS_URL=unix://$PRIV_SOCK
	run --separate-stderr -77 cqstat --json
	assert_equal "$(jq -r .redis.up <<<"$output")" false
	[[ $stderr == *"needs a password"* ]]
	CQ_REDIS_PASSWORD=Xpw9zzq run --separate-stderr -77 cqstat
	[[ $stderr == *"refused the password"* ]]
	[[ $stderr != *Xpw9zzq* ]]
	CQ_REDIS_PASSWORD=s3cret run -0 cqstat --json
}

@test "usage errors exit 64 with a message" {
	run --separate-stderr -64 cqstat 0
	[[ $stderr == "cqstat: bad INTERVAL '0' (want e.g. 1, 500ms, 1m)"* ]]
	run --separate-stderr -64 cqstat 1x
	run --separate-stderr -64 cqstat 1 0
	[[ $stderr == "cqstat: bad COUNT '0'"* ]]
	run --separate-stderr -64 cqstat 1 2 3
	[[ $stderr == "cqstat: too many arguments ('3')"* ]]
	run --separate-stderr -64 cqstat --prom 1 2
	[[ $stderr == "cqstat: --prom measures over one INTERVAL: no COUNT"* ]]
	CQ_API_URL= run --separate-stderr -64 cqstat --match 'x*'
	[[ $stderr == "cqstat: --match needs --api URL (or CQ_API_URL)"* ]]
	run --separate-stderr -64 cqstat --no-cache
	run --separate-stderr -64 cqstat --json --prom
	[[ $stderr == "cqstat: --json and --prom exclude each other"* ]]
	run --separate-stderr -64 cqstat --bogus
	[[ $stderr == "cqstat: unknown option '--bogus'"* ]]
	run --separate-stderr -64 cqstat --c
	[[ $stderr == "cqstat: ambiguous option '--c'"* ]]
	run --separate-stderr -64 cqstat --json=yes
	[[ $stderr == "cqstat: --json takes no argument"* ]]
	run --separate-stderr -64 cqstat -Q
	[[ $stderr == "cqstat: -Q needs an argument"* ]]
	run --separate-stderr -64 cqstat --timeout 0
	run --separate-stderr -64 cqstat -Q ''
	CQ_TIMEOUT=x run --separate-stderr -64 cqstat
	# no status line without --check
	[ -z "$output" ]
}

@test "-q is --quiet as in cachectl and qctl; the old -q QUEUE is a usage error that says so" {
	hint="; -q is --quiet now, as in cachectl and qctl: a queue is -Q QUEUE or --queue QUEUE"
	run --separate-stderr -64 cqstat -q jobs
	[ -z "$output" ]
	assert_equal "$stderr" "cqstat: bad INTERVAL 'jobs' (want e.g. 1, 500ms, 1m)$hint
Try 'cqstat --help'."
	run --separate-stderr -64 cqstat 5 -q jobs
	[[ $stderr == "cqstat: bad COUNT 'jobs' (want 1-1000000000)$hint"* ]]
	run --separate-stderr -3 cqstat -q jobs --check 'dlq>0:crit'
	assert_output "CQ UNKNOWN - bad INTERVAL 'jobs' (want e.g. 1, 500ms, 1m)$hint"
	# -q leaves out the notices; the figures and the exit code stay
	run --separate-stderr -1 cqstat --no-cache -Q "$Q.nosuch"
	assert_equal "$stderr" "cqstat: no queue '$Q.nosuch'"
	run --separate-stderr -1 cqstat -q --no-cache -Q "$Q.nosuch"
	[ -z "$stderr" ]
	[[ ${lines[2]} == *none* ]]
	CQ_API_URL= run --separate-stderr -69 cqstat --queue "$Q" --redis "$DOWN_REDIS" --amqp "$DOWN_AMQP"
	[[ $stderr == *"redis down: "* ]]
	CQ_API_URL= run --separate-stderr -69 cqstat --quiet --queue "$Q" --redis "$DOWN_REDIS" --amqp "$DOWN_AMQP"
	[ -z "$stderr" ]
	# the shared help: -q, --quiet among the common options, exit 0
	run -0 --separate-stderr cqstat --help
	assert_line '  -q, --quiet        no progress, summary or notice lines'
	assert_line '  -Q, --queue QUEUE  show QUEUE: ready messages and consumers (from a'
}

@test "a bad common option under --check is a status line too (the shared option code returns, never exits)" {
	run --separate-stderr -3 cqstat --check 'dlq>0' --timeout 5x
	assert_output "CQ UNKNOWN - --timeout: bad duration '5x' (want e.g. 250ms, 30s, 5m, 2h, 1d)"
	[[ $stderr == "cqstat: --timeout: bad duration '5x'"* ]]
	run --separate-stderr -3 cqstat --timeout 0 --check 'dlq>0'
	assert_output "CQ UNKNOWN - --timeout must be positive"
	run --separate-stderr -64 cqstat --timeout 5x
	[ -z "$output" ]
}

@test "options may follow INTERVAL and COUNT" {
	run --separate-stderr -0 cqstat 0.1 2 --json
	assert_equal "${#lines[@]}" 2
	jq -e '.redis.up == true' <<<"${lines[1]}" >/dev/null
	run --separate-stderr -64 cqstat 0.1 2 --prom
	[[ $stderr == "cqstat: --prom measures over one INTERVAL: no COUNT"* ]]
	# after --, a word is INTERVAL even when it looks like an option
	run --separate-stderr -64 cqstat -- --json
	[[ $stderr == "cqstat: bad INTERVAL '--json'"* ]]
}

@test "--help and --metrics print to stdout and exit 0" {
	run -0 cqstat --help
	assert_line -n 0 'usage: cqstat [OPTIONS] [INTERVAL [COUNT]]'
	run -0 cqstat --metrics
	assert_line --regexp '^hit_rate +Keyspace hits'
	assert_line --regexp '^ready +queue +Messages ready'
	run -0 cqstat --version
	assert_output --regexp '^cqstat [0-9]+\.[0-9]+\.[0-9]+$'
}

@test "--help, --version, --metrics, --list-commands on a full disk: exit 74 with a message" {
	for opt in --help --version --metrics --list-commands; do
		run --separate-stderr -74 bash -c "cqstat $opt >/dev/full"
		assert_equal "$stderr" "cqstat: cannot write output: No space left on device"
	done
	# under --check, UNKNOWN
	run --separate-stderr -3 bash -c "cqstat --check 'up<1' >/dev/full"
	assert_equal "$stderr" "cqstat: cannot write output: No space left on device"
}

@test "a closed stdout ends a run that would go on forever" {
	run -0 timeout 10 bash -c 'cqstat 0.05 | head -n 3 >/dev/null; echo "${PIPESTATUS[0]}"'
	assert_output 74
	run -0 timeout 10 bash -c 'cqstat --json 0.05 | head -c 1 >/dev/null; echo "${PIPESTATUS[0]}"'
	assert_output 74
}

# Is process $1 in nanosleep() (the kernel's word for where it waits)?
sleeping() { [ "$(cat "/proc/$1/wchan" 2>/dev/null)" = hrtimer_nanosleep ]; }

@test "with an INTERVAL, SIGTERM ends the run between samples: forever is exit 0, short of COUNT 75 saying so, --prom still whole, --check UNKNOWN" {
	local pid ppid cpid rc n
	cqstat 100ms >"$TMP/out" 2>"$TMP/err" &
	pid=$!
	cqstat 100ms 1000 >"$TMP/out.n" 2>"$TMP/err.n" &
	cpid=$!
	cqstat --prom 10s >"$TMP/out.prom" 2>"$TMP/err.prom" &
	ppid=$!
	cqstat --check 'hit_rate<0:warn' 10s >"$TMP/out.check" 2>/dev/null &
	wait_for 10 lines_at_least "$TMP/out" 4
	wait_for 10 lines_at_least "$TMP/out.n" 4
	# the two that print at the end have taken their first sample
	wait_for 10 sleeping "$ppid"
	wait_for 10 sleeping $!
	kill -TERM "$pid" "$cpid" "$ppid" $!
	# without COUNT a signal is how it ends; the lines are whole
	rc=0
	wait "$pid" || rc=$?
	assert_equal "$rc" 0
	[ ! -s "$TMP/err" ]
	[ -z "$(awk 'NR > 2 && NF != 8' "$TMP/out")" ]
	[ "$(tail -c 1 "$TMP/out" | od -An -c | tr -d ' ')" = '\n' ]
	rc=0
	wait "$cpid" || rc=$?
	assert_equal "$rc" 75
	n=$(($(wc -l <"$TMP/out.n") - 2))
	assert_equal "$(cat "$TMP/err.n")" "cqstat: stopped by SIGTERM after $n of 1000 samples"
	# --prom: the first sample's exposition, the same metrics as a run
	# of one sample (but the rates: a first sample has them over the
	# server's uptime, and none while that is under a second)
	rc=0
	wait "$ppid" || rc=$?
	assert_equal "$rc" 75
	assert_equal "$(cat "$TMP/err.prom")" "cqstat: stopped by SIGTERM after 1 of 2 samples"
	run -0 cqstat --prom
	assert_equal "$(grep -v -e '^#' -e '_per_second' "$TMP/out.prom" | cut -d' ' -f1)" \
		"$(grep -v -e '^#' -e '_per_second' <<<"$output" | cut -d' ' -f1)"
	rc=0
	wait $! || rc=$?
	assert_equal "$rc" 3
	assert_equal "$(cat "$TMP/out.check")" "CQ UNKNOWN - stopped by SIGTERM after 1 of 2 samples"
}

@test "the man page and the completions know every option of --help" {
	opts=$(cqstat --help | grep -oE -- '--[a-z][a-z-]+' | sort -u)
	[ -n "$opts" ]
	got=$(bash -c "
		source '$TOP/completions/cqstat.bash'
		COMP_WORDS=(cqstat --); COMP_CWORD=1
		_cqstat
		printf '%s\n' \"\${COMPREPLY[@]}\"
	")
	for o in $opts; do
		grep -qx -- "$o" <<<"$got" || fail "cqstat.bash lacks $o"
		grep -q -- "'[(*]*[^']*$o\[\|,$o}\|{$o," "$TOP/completions/_cqstat" ||
			grep -q -- "$o\[" "$TOP/completions/_cqstat" || fail "_cqstat lacks $o"
		grep -q -- "-l ${o#--}\b" "$TOP/completions/cqstat.fish" || fail "cqstat.fish lacks $o"
		grep -q -- "${o//-/\\\\-}" "$TOP/man/cqstat.1" || fail "cqstat.1 lacks $o"
	done
	# --check completes metric names
	got=$(bash -c "
		source '$TOP/completions/cqstat.bash'
		COMP_WORDS=(cqstat --check hit); COMP_CWORD=2
		_cqstat
		printf '%s\n' \"\${COMPREPLY[@]}\"
	")
	assert_equal "$got" $'hit_rate\nhit_rate_total\nhits\nhits_total'
}

# The long options a completion file offers, one a line, sorted.
bash_options() {
	bash --norc --noprofile -c '
		source "$1" || exit
		COMP_WORDS=(cqstat --); COMP_CWORD=1
		_cqstat
		printf "%s\n" "${COMPREPLY[@]}"' _ "$TOP/completions/cqstat.bash" |
		grep -- '^--' | sort
}
zsh_options() {	# the option specs of _arguments: '--opt[', {-o,--opt}
	grep -oE -- "--[a-z][a-z-]*(\[|\})" "$TOP/completions/_cqstat" | tr -d '[}' | sort -u
}
fish_options() {
	mkdir -p "$TMP/empty"
	(cd "$TMP/empty" && fish --no-config -c 'source $argv[1]; and complete -C "cqstat --"' \
		"$TOP/completions/cqstat.fish") | cut -f1 | sort
}

@test "--list-commands: every completion offers exactly cqstat's long options" {
	want=$(cqstat --list-commands | sort)
	grep -qx -- --check <<<"$want"
	grep -qx -- --queue <<<"$want"
	# hidden: neither listed, nor in --help, nor offered
	if grep -q list-commands <<<"$want"; then fail "it lists itself"; fi
	run -0 cqstat --help
	refute_output --partial list-commands
	rc=0
	for shell in bash zsh fish; do
		got=$("${shell}_options")
		[ "$got" = "$want" ] && continue
		echo "the $shell completion offers the options on the left, --list-commands those on the right:"
		diff <(echo "$got") <(echo "$want") || true
		rc=1
	done
	return $rc
}
