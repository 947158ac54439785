#!/usr/bin/env python3
"""Runs midatlas_bench with progress output, then prints the comparison table, checks the
targets and draws the plots. Standard library only; plots need gnuplot.

  report.py run BINARY OUTDIR [benchmark args...]   run, then table + plots
  report.py table JSON [OUTDIR]                      table (+ plots into OUTDIR) from a JSON
  report.py compare ROUNDS FILTER BEFORE AFTER       the rows FILTER selects, of two builds of
                                                     the binary, run in turn ROUNDS times; the
                                                     fastest time of each, and the 5% verdicts
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

# Column order: midatlas first, then the peers, then the two references the ratios use.
IMPLS = ["midatlas", "midatlas-c", "urcu-lfht", "tbb-map", "absl-map", "classic+mutex",
         "flat-atomic"]
HASH_PEERS = ["urcu-lfht", "tbb-map", "absl-map"]
# Peers midatlas must beat (midatlas-c is midatlas; flat-atomic is the floor, not a peer).
PEERS = HASH_PEERS + ["classic+mutex"]

# Google Benchmark name -> (group key, title). The BM_ names are kept from the first
# single-threaded suite: BM_Map is lookup, BM_Pair is churn.
WORKLOADS = {
    "Map": "lookup",
    "Pair": "churn",
    "Rpc": "rpc",
    "ReadMostly": "read-mostly",
    "Growth": "growth",
    "LateDuplicate": "late-duplicate",
    "MidsInUse": "mids-in-use",
    "MapChain": "lookup-chain",
    "Refusal": "refusal",
    "WaitAsync": "wait-async",
    "WaitBlocking": "wait-blocking",
}
# The waiting workloads have their own table (wait_bench.cc): requests/s, wait and hand-off
# times, overtakes; ratios are to WAIT_BASELINE.
WAIT_WORKLOADS = ("WaitAsync", "WaitBlocking")
WAIT_IMPLS = ["midatlas-c", "midatlas", "mutex+fifo", "mutex+cv", "ring-ceiling"]
WAIT_BASELINE = "mutex+fifo"
# Targets: completed requests/s at least this multiple of the baseline's.
WAIT_TARGETS = {"WaitAsync": 3.0, "WaitBlocking": 1.5}
GROUP_TITLES = {
    "lookup/50": "lookup, 50 in use (Map of a random in-use MID)",
    "lookup/2000": "lookup, 2,000 in use",
    "lookup/60000": "lookup, 60,000 in use",
    "churn": "churn: dissociate + associate, 50 in flight in all",
    "rpc": "rpc: associate, 3 maps, dissociate (one item = one request)",
    "read-mostly": "read-mostly, readers (2,000 in use; threads include the writer)",
    "read-mostly-writer": "read-mostly, the writer's dissociate+associate pairs",
    "late-duplicate": "late duplicate: map-and-dissociate of a MID not in use (1 thread)",
    "growth": "growth: start 1 -> 65,535 in use -> 0 (one item = one associate or dissociate)",
    "refusal": "associate until refused, max 50, start 1 (one item = one associate)",
    "refusal/start:50": "associate until refused, max 50, start 50",
}
NAME_RE = re.compile(r"^BM_(\w+)/([^/]+)(?:/(.*))?$")


def parse_name(name):
    """(workload, impl, params dict) of a benchmark name, or None."""
    base = name.split("/real_time")[0].split("/iterations:")[0]
    base = re.sub(r"_(mean|median|stddev|cv)$", "", base)
    m = NAME_RE.match(base)
    if not m:
        return None
    params = {}
    for part in (m.group(3) or "").split("/"):
        if ":" in part:
            k, v = part.split(":", 1)
            params[k] = v
        elif part:
            params[part] = ""
    return m.group(1), m.group(2), params


def describe(name):
    parsed = parse_name(name)
    if not parsed:
        return name
    workload, impl, params = parsed
    threads = re.search(r"threads:(\d+)", name)
    label = WORKLOADS.get(workload, workload.lower())
    if "in_use" in params and workload == "Map":
        label += " in_use:" + params["in_use"]
    if workload in WAIT_WORKLOADS:
        label += " " + "/".join(k + (":" + v if v else "") for k, v in params.items())
    if workload == "Memory":
        label = "memory " + "/".join(k + (":" + v if v else "") for k, v in params.items())
    if threads:
        t = int(threads.group(1)) + (1 if workload == "ReadMostly" else 0)
        label += f" threads:{t}"
    return f"{label:<28} {impl}"


def run(binary, outdir, args):
    os.makedirs(outdir, exist_ok=True)
    listed = subprocess.run([binary, "--benchmark_list_tests=true"] + args, check=True,
                            capture_output=True, text=True).stdout.split()
    names = set(listed)
    reps = 1
    for a in args:
        if a.startswith("--benchmark_repetitions="):
            reps = int(a.split("=", 1)[1])
    total = len(listed) * reps
    json_path = os.path.join(outdir, "latest.json")
    loadavg = open("/proc/loadavg").read().split()[:3]
    cmd = [binary, "--benchmark_color=false", "--benchmark_out=" + json_path,
           "--benchmark_out_format=json",
           "--benchmark_context=loadavg_before=" + " ".join(loadavg)] + args
    print(f"running {total} benchmarks ({len(listed)} x {reps}), load average {' '.join(loadavg)}",
          flush=True)
    done = 0
    start = time.time()
    last_workload = None
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          bufsize=1) as proc:
        for line in proc.stdout:
            token = line.split(" ", 1)[0]
            if token in names:
                done += 1
                workload = parse_name(token)
                if workload and workload[0] != last_workload:
                    last_workload = workload[0]
                    print(f"-- {WORKLOADS.get(last_workload, last_workload.lower())}", flush=True)
                rate = re.search(r"items_per_second=(\S+)", line)
                err = "ERROR" in line
                extra = ("  " + rate.group(1)) if rate else ""
                if err:
                    extra = "  " + line.split("ERROR OCCURRED:", 1)[-1].strip()
                elapsed = time.time() - start
                print(f"[{done:3d}/{total}] {elapsed:5.0f}s  {describe(token)}{extra}", flush=True)
            elif line.startswith("skipped:") or "ERROR" in line:
                print(line.rstrip(), flush=True)
        rc = proc.wait()
    if rc != 0:
        sys.exit(f"midatlas_bench failed with exit status {rc}")
    return json_path


def load(json_path):
    with open(json_path) as f:
        data = json.load(f)
    # With repetitions, the median of each benchmark; otherwise its one run.
    with_median = {b.get("run_name") for b in data["benchmarks"]
                   if b.get("aggregate_name") == "median"}
    rows = []
    for b in data["benchmarks"]:
        run_name = b.get("run_name", b["name"])
        if run_name in with_median:
            if b.get("aggregate_name") != "median":
                continue
        elif b.get("run_type") == "aggregate":
            continue
        if b.get("error_occurred"):
            continue
        parsed = parse_name(run_name)
        if not parsed:
            continue
        rows.append((parsed, b))
    return data["context"], rows


# (workload, parameters) -> impl -> [the counters of each round's row] (wait_bench.cc).
WAITS = {}


def collect(rows):
    """groups[group][threads][impl] = Mops/s; memory[impl][phase] = bytes."""
    groups = {}
    memory = {}
    for (workload, impl, params), b in rows:
        if workload in WAIT_WORKLOADS:
            key = (workload, "/".join(k + (":" + v if v else "") for k, v in params.items()
                                      if k != "round"))
            WAITS.setdefault(key, {}).setdefault(impl, []).append(b)
            continue
        if workload == "Memory":
            phase = "/".join(k + (":" + v if v else "") for k, v in params.items())
            memory.setdefault(impl, {})[phase] = (b.get("bytes"), b.get("bytes_attached"))
            continue
        threads = int(b.get("threads", 1))
        key = WORKLOADS.get(workload, workload.lower())
        if workload in ("Map", "MapChain", "MidsInUse"):
            key += "/" + params.get("in_use", "")
        if workload in ("Growth", "MidsInUse", "Refusal") and params.get("start", "1") != "1":
            key += "/start:" + params["start"]
        if workload == "ReadMostly":
            threads += 1  # the writer
            if "writer_ops" in b:
                groups.setdefault("read-mostly-writer", {}).setdefault(threads, {})[impl] = (
                    b["writer_ops"] / 1e6)
        if "items_per_second" in b:
            groups.setdefault(key, {}).setdefault(threads, {})[impl] = b["items_per_second"] / 1e6
        if workload == "LateDuplicate" and "allocs_per_call" in b:
            LATE_DUPLICATE_ALLOCS[impl] = b["allocs_per_call"]
    return groups, memory


# impl -> heap allocations per map-and-dissociate of a MID not in use (BM_LateDuplicate).
LATE_DUPLICATE_ALLOCS = {}


def fmt(v):
    if v is None:
        return "-"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def table(context, groups, memory):
    impls = [i for i in IMPLS if any(i in t for g in groups.values() for t in g.values())]
    out = []
    out.append("midatlas benchmark comparison: Mops/s (higher is better); "
               "x-cls = midatlas / classic+mutex, x-flat = midatlas / flat-atomic")
    ctx = [f"{k}={context[k]}" for k in ("date", "host_name", "num_cpus", "mhz_per_cpu",
                                          "loadavg_before", "library_build_type") if k in context]
    out.append("  ".join(ctx))
    for k in ("absl_mutex_deadlock_detection", "urcu_flavor", "tbb_allocator", "skipped"):
        if k in context:
            out.append(f"{k}: {context[k]}")
    head = f"{'threads':>7} " + "".join(f"{i:>14}" for i in impls) + f"{'x-cls':>8}{'x-flat':>8}"
    for key in [k for k in GROUP_TITLES if k in groups] + [k for k in groups if k not in GROUP_TITLES]:
        out.append("")
        out.append(GROUP_TITLES.get(key, key))
        out.append(head)
        for threads in sorted(groups[key]):
            row = groups[key][threads]
            line = f"{threads:>7} " + "".join(f"{fmt(row.get(i)):>14}" for i in impls)
            m = row.get("midatlas")
            for ref in ("classic+mutex", "flat-atomic"):
                r = row.get(ref)
                line += f"{(f'{m / r:.2f}x' if m and r else '-'):>8}"
            out.append(line)
    if memory:
        phases = ["fresh", "in_use:50", "in_use:60000", "drained"]
        out.append("")
        out.append("memory: heap bytes held (KiB); midatlas's own count of attached maps "
                   "in brackets")
        out.append(f"{'':>14}" + "".join(f"{p:>20}" for p in phases))
        for impl in [i for i in IMPLS if i in memory]:
            cells = []
            for p in phases:
                heap, attached = memory[impl].get(p, (None, None))
                cell = "-" if heap is None else f"{heap / 1024:.1f}"
                if attached is not None:
                    cell += f" [{attached / 1024:.1f}]"
                cells.append(f"{cell:>20}")
            out.append(f"{impl:>14}" + "".join(cells))
    out += wait_table()
    return "\n".join(out)


def fmt_rate(v):
    if v is None:
        return "-"
    return f"{v / 1e6:.2f}M" if v >= 1e6 else f"{v / 1e3:.0f}k"


def median(values):
    values = sorted(values)
    n = len(values)
    if n == 0:
        return None
    return values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2


def wait_figures(runs):
    """One implementation's figures over its rounds: medians of the rates and times, the
    slowest and fastest round, and the overtakes summed (one is one too many)."""
    rates = [r["items_per_second"] for r in runs if "items_per_second" in r]
    figures = {k: median([r[k] for r in runs if k in r])
               for k in ("wait_p50_us", "wait_p99_us", "handoff_p50_us", "handoff_p99_us")}
    figures.update(rate=median(rates), slowest=min(rates, default=None),
                   fastest=max(rates, default=None), rounds=len(runs),
                   overtakes=sum(r.get("overtakes", 0) for r in runs),
                   candidates=sum(r.get("overtake_candidates", 0) for r in runs))
    return figures


def wait_rows():
    """[(label, workload, {impl: figures})] in a fixed order."""
    out = []
    for (workload, params) in sorted(WAITS):
        by_impl = WAITS[(workload, params)]
        impls = [i for i in WAIT_IMPLS if i in by_impl] + [i for i in by_impl if i not in WAIT_IMPLS]
        out.append((f"{WORKLOADS[workload]} {params}", workload,
                    {i: wait_figures(by_impl[i]) for i in impls}))
    return out


def wait_table():
    if not WAITS:
        return []
    out = ["", "waiting for a free MID: max 64 MIDs, 256 requests (async) or threads (blocking); "
           f"medians over the rounds; x-base = requests/s / {WAIT_BASELINE}'s; times in us; "
           "overtakes summed over the rounds"]
    out.append(f"  {'':<14}{'requests/s':>11}{'slowest-fastest':>17}{'x-base':>8}{'wait p50':>10}"
               f"{'wait p99':>10}{'handoff p50':>13}{'p99':>9}{'overtakes':>11}{'of known':>10}")
    for label, _, figures in wait_rows():
        out.append(f"{label} ({max(f['rounds'] for f in figures.values())} rounds)")
        base = figures.get(WAIT_BASELINE, {}).get("rate")
        for impl, f in figures.items():
            ratio = f"{f['rate'] / base:.2f}x" if f["rate"] and base else "-"
            spread = f"{fmt_rate(f['slowest'])}-{fmt_rate(f['fastest'])}"
            out.append(f"  {impl:<14}{fmt_rate(f['rate']):>11}{spread:>17}{ratio:>8}"
                       f"{fmt(f['wait_p50_us']):>10}{fmt(f['wait_p99_us']):>10}"
                       f"{fmt(f['handoff_p50_us']):>13}{fmt(f['handoff_p99_us']):>9}"
                       f"{f['overtakes']:>11.0f}{f['candidates']:>10.0f}")
    return out


def wait_verdicts(verdict):
    for label, workload, figures in wait_rows():
        base = figures.get(WAIT_BASELINE)
        for impl in ("midatlas-c", "midatlas"):
            m = figures.get(impl)
            if not m:
                continue
            if base and base["rate"] and m["rate"]:
                need = WAIT_TARGETS[workload]
                r = m["rate"] / base["rate"]
                verdict(r >= need, f"{label} ({impl}): >= {need:g}x {WAIT_BASELINE}'s completed "
                                   f"requests/s ({r:.2f}x: {fmt_rate(m['rate'])} vs "
                                   f"{fmt_rate(base['rate'])}/s, medians)")
                mp, bp = m["wait_p99_us"], base["wait_p99_us"]
                if mp is not None and bp is not None:
                    verdict(mp <= bp, f"{label} ({impl}): p99 wait no worse than "
                                      f"{WAIT_BASELINE}'s ({fmt(mp)} us vs {fmt(bp)} us, medians)")
            others = ", ".join(f"{i} {f['overtakes']:.0f}" for i, f in figures.items() if i != impl)
            verdict(m["overtakes"] == 0 and m["candidates"] > 0,
                    f"{label} ({impl}): FIFO, 0 overtakes ({m['overtakes']:.0f} among "
                    f"{m['candidates']:.0f} requests whose queueing is known; {others})")
        ceiling = figures.get("ring-ceiling")
        if ceiling and base and base["rate"] and ceiling["rate"]:
            verdict(None, f"{label}: the ceiling of a FIFO hand-off on this machine (ring-ceiling, "
                          f"a bare lock-free ring, no table): {ceiling['rate'] / base['rate']:.2f}x "
                          f"{WAIT_BASELINE}'s requests/s ({fmt_rate(ceiling['rate'])} vs "
                          f"{fmt_rate(base['rate'])}/s)")
        handoffs = ", ".join(f"{i} {fmt(f['handoff_p50_us'])}/{fmt(f['handoff_p99_us'])}"
                             for i, f in figures.items())
        verdict(None, f"{label}: hand-off latency, free -> waiter running, p50/p99 us: {handoffs}")


def verdicts(groups):
    out = ["", "targets (ratios from this run):"]

    def verdict(ok, text):
        mark = "info" if ok is None else ("met" if ok else "MISSED")
        out.append(f"  [{mark}] {text}")

    for occ in ("50", "2000", "60000"):
        g = groups.get("lookup/" + occ, {})
        worst_peer, worst_hash = None, None
        for t, row in sorted(g.items()):
            m = row.get("midatlas")
            if not m:
                continue
            peers = {p: row[p] for p in PEERS if p in row}
            hashes = {p: row[p] for p in HASH_PEERS if p in row}
            if peers:
                p, v = max(peers.items(), key=lambda kv: kv[1])
                r = m / v
                if worst_peer is None or r < worst_peer[0]:
                    worst_peer = (r, t, p)
            if hashes:
                p, v = max(hashes.items(), key=lambda kv: kv[1])
                r = m / v
                if worst_hash is None or r < worst_hash[0]:
                    worst_hash = (r, t, p)
        if worst_peer:
            r, t, p = worst_peer
            verdict(r > 1, f"lookup @{occ}: ahead of every peer but flat-atomic at every thread "
                           f"count (closest: {r:.2f}x {p} at {t} threads)")
        if worst_hash:
            r, t, p = worst_hash
            verdict(r >= 3, f"lookup @{occ}: >= 3x the best hash-map peer "
                            f"(lowest: {r:.2f}x {p} at {t} threads)")
    g = groups.get("lookup/50", {})
    ratios = [(row["midatlas"] / row["flat-atomic"], t) for t, row in sorted(g.items())
              if "midatlas" in row and "flat-atomic" in row]
    if ratios:
        r, t = min(ratios)
        verdict(r >= 0.5, f"lookup @50: within 2x of flat-atomic (lowest: {r:.2f}x at {t} "
                          f"threads, i.e. flat-atomic {1 / r:.2f}x faster)")
    row = groups.get("read-mostly", {}).get(8, {})
    if "midatlas" in row:
        for ref, need in (("classic+mutex", 10), ("flat-atomic", 0.5)):
            if ref in row:
                r = row["midatlas"] / row[ref]
                verdict(r >= need, f"read-mostly @8 threads: readers >= {need}x {ref} "
                                   f"({r:.2f}x: {fmt(row['midatlas'])} vs {fmt(row[ref])} Mops/s)")
    row = groups.get("rpc", {}).get(8, {})
    if "midatlas" in row:
        if "classic+mutex" in row:
            r = row["midatlas"] / row["classic+mutex"]
            verdict(r >= 3, f"rpc @8 threads: >= 3x classic+mutex ({r:.2f}x)")
        hashes = {p: row[p] for p in HASH_PEERS if p in row}
        if hashes:
            p, v = max(hashes.items(), key=lambda kv: kv[1])
            verdict(row["midatlas"] > v, f"rpc @8 threads: ahead of every hash-map peer "
                                         f"({row['midatlas'] / v:.2f}x the best, {p})")
    # The physical-limit targets: time per call against flat-atomic (and classic+mutex for
    # growth), 1 thread unless said otherwise; a ratio is midatlas's time / the reference's.
    for api in ("midatlas", "midatlas-c"):
        for kind, prefix in (("independent", "lookup/"), ("dependent", "lookup-chain/")):
            for occ in ("50", "2000", "60000"):
                row = groups.get(prefix + occ, {}).get(1, {})
                if api in row and "flat-atomic" in row:
                    r = row["flat-atomic"] / row[api]
                    verdict(r <= 2, f"Map {kind} @{occ} ({api}): within 2x of flat-atomic's "
                                    f"time ({r:.2f}x)")
    for threads in (2, 8):
        row = groups.get("read-mostly", {}).get(threads, {})
        if "midatlas" in row and "flat-atomic" in row:
            r = row["midatlas"] / row["flat-atomic"]
            verdict(r >= 0.7, f"read-mostly @{threads} threads: readers >= 0.7x flat-atomic's "
                              f"throughput ({r:.2f}x)")
    worst = None
    for key, g in groups.items():
        if not key.startswith("mids-in-use/"):
            continue
        for api, mops in g.get(1, {}).items():
            ns = 1e3 / mops
            if worst is None or ns > worst[0]:
                worst = (ns, key, api)
    if worst:
        verdict(worst[0] <= 50, f"mids_in_use <= 50 ns at every occupancy and start "
                                f"(slowest: {worst[0]:.1f} ns, {worst[1]}, {worst[2]})")
    for api in ("midatlas", "midatlas-c"):
        full = groups.get("growth/start:65535", {}).get(1, {}).get(api)
        cls = groups.get("growth", {}).get(1, {}).get("classic+mutex")
        for key, label in (("growth", "start 1"), ("growth/start:50", "start 50")):
            v = groups.get(key, {}).get(1, {}).get(api)
            if v and full:
                verdict(full / v <= 1.5, f"growth {label} ({api}): within 1.5x of a full-size "
                                         f"atlas's time per call ({full / v:.2f}x)")
            if v and cls and key == "growth":
                verdict(cls / v <= 2, f"growth {label} ({api}): within 2x of classic+mutex's "
                                      f"time per call ({cls / v:.2f}x)")
        for key, label in (("refusal", "start 1"), ("refusal/start:50", "start 50")):
            row = groups.get(key, {}).get(1, {})
            if api in row and "flat-atomic" in row:
                r = row["flat-atomic"] / row[api]
                verdict(r <= 1.3, f"associate until refused, max 50, {label} ({api}): within "
                                  f"1.3x of flat-atomic's time ({r:.2f}x)")
    for impl in ("midatlas", "midatlas-c"):
        if impl in LATE_DUPLICATE_ALLOCS:
            a = LATE_DUPLICATE_ALLOCS[impl]
            verdict(a == 0, f"late duplicate ({impl}): no allocation on the not-in-use path "
                            f"({a:g} allocations per call)")
    wait_verdicts(verdict)
    if groups.get("churn") or groups.get("rpc"):
        verdict(None, "zero cost when nobody waits: the churn and rpc rows above against the "
                      "build before waiting: scripts/bench --against=dae2fed")
    return "\n".join(out)


def plots(groups, outdir):
    gnuplot = shutil.which("gnuplot")
    if not gnuplot:
        print("skipped: plots (gnuplot not installed; package gnuplot-nox)")
        return []
    made = []
    with tempfile.TemporaryDirectory() as tmp:
        script = []
        for key, by_threads in groups.items():
            if len(by_threads) < 2:
                continue  # one thread count: the table says it all
            impls = [i for i in IMPLS if any(i in row for row in by_threads.values())]
            data = os.path.join(tmp, key.replace("/", "-") + ".dat")
            with open(data, "w") as f:
                f.write("threads " + " ".join(f'"{i}"' for i in impls) + "\n")
                for t in sorted(by_threads):
                    f.write(f"{t} " + " ".join(
                        str(by_threads[t].get(i, "NaN")) for i in impls) + "\n")
            stem = os.path.join(outdir, key.replace("/", "-"))
            title = GROUP_TITLES.get(key, key).replace("_", "\\_")
            for term, ext in (("pngcairo size 900,560 font ',10'", "png"),
                              ("svg size 900,560 font 'sans,11'", "svg")):
                script += [
                    f"set terminal {term}",
                    f"set output '{stem}.{ext}'",
                    f"set title \"{title}\"",
                    "set xlabel 'threads (2 cores: above 2 the threads share cores)'",
                    "set ylabel 'Mops/s (log scale)'",
                    "set logscale xy", "set xrange [0.8:20]", "set xtics (1, 2, 4, 8, 16)",
                    "set grid",
                    "set key outside right", "set datafile missing 'NaN'",
                    f"plot for [i=2:{len(impls) + 1}] '{data}' using 1:i with linespoints "
                    "lw 2 pt 7 title columnheader(i)",
                    "unset output",
                ]
                made.append(f"{stem}.{ext}")
        subprocess.run([gnuplot], input="\n".join(script), text=True, check=True)
    return made


def report(json_path, outdir):
    context, rows = load(json_path)
    groups, memory = collect(rows)
    text = table(context, groups, memory) + "\n" + verdicts(groups)
    loadavg = " ".join(open("/proc/loadavg").read().split()[:3])
    text += f"\n\nload average after the run: {loadavg}\n"
    print(text)
    if outdir:
        with open(os.path.join(outdir, "latest.txt"), "w") as f:
            f.write(text)
        for path in plots(groups, outdir):
            print("plot:", path)


# How much slower than the build before a change a row may be and still count as unchanged.
COMPARE_TOLERANCE = 0.05


def compare(rounds, pattern, before, after):
    """Runs the rows `pattern` selects of both binaries in turn, `rounds` times. Per row: the
    least CPU time per item of each binary (the least disturbed run; CPU time, so that time
    the machine gave to other processes does not count) and their change, and the median of
    the rounds' own after/before ratios (each round runs both back to back). Per workload and
    API, the verdict is on the geometric mean of the rows' changes over the thread counts;
    the worst row is named too."""
    bins = [("before", before), ("after", after)]
    times = {}  # name -> label -> [real_time per round]
    order = []
    loadavg = " ".join(open("/proc/loadavg").read().split()[:3])
    print(f"compare: {rounds} rounds of {pattern!r}, load average {loadavg}", flush=True)
    print(f"  before: {before}\n  after:  {after}", flush=True)
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(1, rounds + 1):
            for label, binary in bins:
                out = os.path.join(tmp, f"{r}-{label}.json")
                subprocess.run([binary, "--benchmark_filter=" + pattern,
                                "--benchmark_min_time=0.1", "--benchmark_format=json",
                                "--benchmark_out=" + out, "--benchmark_out_format=json"],
                               check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                with open(out) as f:
                    for b in json.load(f)["benchmarks"]:
                        if b.get("error_occurred") or b.get("run_type") == "aggregate":
                            continue
                        name = b["name"]
                        if name not in times:
                            times[name] = {"before": [], "after": []}
                            order.append(name)
                        times[name][label].append(b["cpu_time"])
            print(f"  round {r}/{rounds} done, {time.time() - start:.0f}s", flush=True)
    print("")
    print("CPU time per item (ns), the least over the rounds")
    print(f"{'benchmark':<58}{'before':>11}{'after':>11}{'change':>9}{'paired':>9}")
    per_key = {}
    for name in order:
        row = times[name]
        if not row["before"] or not row["after"]:
            print(f"{name:<58}{'(only in one build)':>31}")
            continue
        fast_before, fast_after = min(row["before"]), min(row["after"])
        change = fast_after / fast_before - 1
        paired = median([a / b for a, b in zip(row["after"], row["before"])])
        print(f"{name:<58}{fast_before:>11.2f}{fast_after:>11.2f}{change * 100:>+8.1f}%"
              f"{(paired - 1) * 100:>+8.1f}%")
        parsed = parse_name(name)
        if parsed:
            workload, impl, _ = parsed
            key = (WORKLOADS.get(workload, workload.lower()), impl)
            threads = re.search(r"threads:(\d+)", name)
            per_key.setdefault(key, []).append(
                (change, int(threads.group(1)) if threads else 1))
    print("")
    print("change: least after / least before - 1; paired: median over the rounds of "
          "after / before - 1")
    print(f"targets (time per item; within {COMPARE_TOLERANCE:.0%} of before is unchanged; "
          "geometric mean over the thread counts):")
    for (workload, impl), changes in sorted(per_key.items()):
        product = 1.0
        for change, _ in changes:
            product *= 1 + change
        mean = product ** (1 / len(changes)) - 1
        worst, worst_threads = max(changes)
        counts = ",".join(str(t) for _, t in sorted(changes, key=lambda c: c[1]))
        print(f"  [{'met' if mean <= COMPARE_TOLERANCE else 'MISSED'}] {workload} ({impl}): "
              f"within {COMPARE_TOLERANCE:.0%} of before ({mean * 100:+.1f}% over threads "
              f"{counts}; worst row {worst * 100:+.1f}% at {worst_threads} threads)")
    loadavg = " ".join(open("/proc/loadavg").read().split()[:3])
    print(f"\nload average after the comparison: {loadavg}")


def main(argv):
    if len(argv) >= 3 and argv[1] == "run":
        binary, outdir = argv[2], argv[3]
        json_path = run(binary, outdir, argv[4:])
        report(json_path, outdir)
    elif len(argv) == 6 and argv[1] == "compare":
        compare(int(argv[2]), argv[3], argv[4], argv[5])
    elif len(argv) >= 3 and argv[1] == "table":
        report(argv[2], argv[3] if len(argv) > 3 else None)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
