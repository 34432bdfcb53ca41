# report.awk - turn bench/work/results.tsv into the markdown table of
# RESULTS.md.  Run by bench/run as: awk -F'\t' -v S=SAMPLES_DIR -f report.awk
#
# Each input line: id, label, peer, cq samples, peer samples, kind, goal,
# records, peer scale, note.  A samples file S/NAME holds one
# "WALL_US MAXRSS_KB STATUS" line per run (S/NAME.lat: one max latency in
# microseconds per run); S/NAME.bad, when present, says why a run's work
# could not be verified, and the row is then INVALID whatever its times.

# col: a column number, or "cpu" for columns 4 + 5 (user + system)
function median(file, col,    n, a, i, j, t, line, f) {
	n = 0
	while ((getline line < file) > 0) {
		split(line, f, " ")
		if (col == "cpu")
			a[++n] = f[4] + f[5]
		else if (f[col] != "" && f[col] + 0 >= 0)
			a[++n] = f[col] + 0
	}
	close(file)
	if (n == 0)
		return -1
	for (i = 2; i <= n; i++) {
		t = a[i]
		for (j = i - 1; j >= 1 && a[j] > t; j--)
			a[j + 1] = a[j]
		a[j + 1] = t
	}
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}

# the largest value of column col over all runs
function worst(file, col,    m, line, f) {
	m = -1
	while ((getline line < file) > 0) {
		split(line, f, " ")
		if (f[col] + 0 > m)
			m = f[col] + 0
	}
	close(file)
	return m
}

# "max 3.1 ms, p99 0.4 ms, server 2 ms"
function flat(max, p99, server) {
	if (max < 0)
		return "–"
	return sprintf("max %.1f ms, p99 %.1f ms, server %d ms", max / 1000, p99 / 1000, server)
}

function bad(file,    line, why) {
	why = ""
	if ((getline line < file) > 0)
		why = line
	close(file)
	return why
}

function ftime(us, n) {
	if (us < 0)
		return "–"
	s = us >= 1000000 ? sprintf("%.2f s", us / 1e6) : sprintf("%.1f ms", us / 1e3)
	if (n > 1)
		s = s sprintf(" (%s/s)", frate(n / (us / 1e6)))
	return s
}

function frate(r) {
	return r >= 1e6 ? sprintf("%.2fM", r / 1e6) : r >= 1e3 ? sprintf("%.0fk", r / 1e3) : sprintf("%.0f", r)
}

function frss(kb) {
	return kb < 0 ? "–" : sprintf("%.1f MiB", kb / 1024)
}

function fratio(a, b) {
	return (a < 0 || b <= 0) ? "–" : sprintf("%.2f", a / b)
}

# Remember a bulk run for the "where the time goes" table (once per file).
function where(label, file, who) {
	if (file in seen)
		return
	seen[file] = 1
	wn++
	wlabel[wn] = label; wfile[wn] = file; wwho[wn] = who
}

function pct(a, b) {
	return (a < 0 || b <= 0) ? "–" : sprintf("%.0f%%", 100 * a / b)
}

END {
	if (wn == 0)
		exit
	print ""
	print "### Where the time goes"
	print ""
	print "Medians per run: the process's own CPU time (user + system, its children"
	print "included) and the server's CPU time meanwhile (redis-server's INFO cpu, or"
	print "the RabbitMQ node's beam.smp, all threads), each also as a share of the wall"
	print "time.  A client near 100% is bound by its own CPU; a server near 100%"
	print "(redis-server is one thread) bounds every client equally."
	print ""
	print "| benchmark | run | wall | own CPU | own CPU / wall | server CPU | server CPU / wall |"
	print "|---|---|---|---|---|---|---|"
	for (i = 1; i <= wn; i++) {
		f = S "/" wfile[i]
		w = median(f, 1); c = median(f, "cpu"); sv = median(f, 6)
		if (w < 0)
			continue
		printf "| %s | %s | %s | %s | %s | %s | %s |\n", wlabel[i], wwho[i],
			ftime(w, 0), ftime(c, 0), pct(c, w),
			sv < 0 ? "–" : ftime(sv * 1000, 0), pct(sv * 1000, w)
	}
}

BEGIN {
	print "| benchmark | peer | cq time | peer time | cq/peer time | speed-up | cq RSS | peer RSS | cq/peer RSS | goal | result |"
	print "|---|---|---|---|---|---|---|---|---|---|---|"
}

{
	id = $1; label = $2; peer = $3; cqf = $4; pf = $5; kind = $6; goal = $7
	n = $8 + 0; scale = $9 + 0; note = $10
	if (scale < 1)
		scale = 1
	gsub(/\|/, "\\|", label)
	gsub(/\|/, "\\|", peer)
	if (kind == "na") {
		printf "| %s | %s | – | – | – | – | – | – | – | – | n/a: %s |\n", label, peer, note
		next
	}
	why = bad(S "/" cqf ".bad")
	if (why == "")
		why = bad(S "/" pf ".bad")

	if (kind == "latency") {
		# samples: "MAX_US P99_US SERVER_MS" per run; the worst run counts
		cm = worst(S "/" cqf, 1); pm = worst(S "/" pf, 1)
		c99 = worst(S "/" cqf, 2); p99 = worst(S "/" pf, 2)
		csv = worst(S "/" cqf, 3); psv = worst(S "/" pf, 3)
		g = goal == "-" ? "–" : sprintf("< %s ms", goal)
		# The verdict uses the server's own latency monitor: on a loaded
		# 2-core machine a client's PING round trips also measure the
		# scheduler (see the idle row), the server's events do not as much.
		res = sprintf("%s: server max %d ms", (csv >= 0 && csv < goal + 0) ? "PASS" : "SHORT", csv)
		if (goal == "-")
			res = "info"
		if (why != "")
			res = "INVALID: " why
		printf "| %s | %s | %s | %s | %s | – | – | – | – | %s | %s |\n",
			label, peer, flat(cm, c99, csv), flat(pm, p99, psv), fratio(cm, pm), g, res
		next
	}

	ct = median(S "/" cqf, 1); pt = median(S "/" pf, 1)
	cr = median(S "/" cqf, 2); pr = median(S "/" pf, 2)
	if (pt >= 0)
		pt *= scale
	su = (ct > 0 && pt >= 0) ? pt / ct : -1
	sus = su < 0 ? "–" : sprintf("%.2fx", su)

	if (kind == "speedup") {
		g = goal + 0 == 1 ? "no slower (≥ 1x)" : sprintf("≥ %sx faster", goal)
		res = sprintf("%s: %s", su >= goal + 0 ? "PASS" : "SHORT", sus)
	} else if (kind == "fraction") {
		frac = sprintf("%.0f%% of ceiling", su * 100)
		if (goal == "-") {
			g = "–"
			res = "info: " frac
		} else {
			g = sprintf("≥ %.0f%% of ceiling", goal * 100)
			res = sprintf("%s: %s", su >= goal + 0 ? "PASS" : "SHORT", frac)
		}
	} else if (kind == "rss") {
		g = sprintf("flat (≤ 1.10x), < %s MiB", goal)
		ok = cr >= 0 && pr > 0 && cr < goal * 1024 && cr <= pr * 1.10
		res = sprintf("%s: %s, %.2fx", ok ? "PASS" : "SHORT", frss(cr), pr > 0 ? cr / pr : 0)
	} else {
		g = "–"
		res = "info"
	}
	if (why != "")
		res = "INVALID: " why
	if (scale > 1)
		peer = peer sprintf(" (×%d)", scale)
	if (note != "")
		res = res " (" note ")"
	if (n > 1) {
		where(label, cqf, "cq")
		where(label, pf, scale > 1 ? peer sprintf(": one run of %d, unscaled", n / scale) : peer)
	}
	# an RSS row compares sizes of input, not speeds: its times are
	# shown, their ratio means nothing
	printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
		label, peer, ftime(ct, n), ftime(pt, n),
		kind == "rss" ? "–" : fratio(ct, pt), kind == "rss" ? "–" : sus,
		frss(cr), frss(pr), fratio(cr, pr), g, res
}
