#!/usr/bin/env python3
"""Turns the raw runs of benches/compare.sh (one JSON object per line) into benches/RESULTS.md.

Medians over repetitions per (scenario, proxy); ratios against nginx and against the direct backend measured
in the same run. Everything after the line `<!-- manual -->` in an existing RESULTS.md is kept (hand-written
notes: wrk cross-check, profile, micro-benchmarks).

usage: report.py RAW.jsonl OUT.md MACHINE VERSIONS WORKDIR ARGS
"""
import datetime
import json
import os
import statistics
import sys
from collections import defaultdict

raw, out, machine, versions, work, args = sys.argv[1:7]
runs = [json.loads(l) for l in open(raw) if l.strip()]
by = defaultdict(list)
for r in runs:
    by[(r["scenario"], r["proxy"])].append(r)

ORDER = ["rr", "sticky", "h2", "routers-10k", "tls-ka", "tls-resume", "tls-full", "connections",
         "scale-1", "scale-2", "scale-4", "scale-8"]
PROXIES = ["direct", "swarmgate", "nginx", "haproxy", "caddy"]


def med(rs, key):
    v = [r[key] for r in rs if r.get(key) is not None]
    return statistics.median(v) if v else None


def fmt_us(us):
    if us is None:
        return "–"
    return f"{us / 1000:.2f} ms" if us >= 1000 else f"{us:.0f} µs"


def fmt(v, spec):
    return "–" if v is None else format(v, spec)


def reference(scenario, proxy):
    """The run a row is compared with in the `× direct` column."""
    if scenario.startswith("scale-"):
        return by.get(("scale-1", proxy))
    if (scenario, "direct") in by:
        return by[(scenario, "direct")]
    if scenario in ("sticky", "routers-10k"):
        return by.get(("rr", "direct"))
    return None


scenarios = [s for s in ORDER if any(k[0] == s for k in by)] + sorted({k[0] for k in by} - set(ORDER))
lines = []
lines.append("| scenario | proxy | req/s | × nginx | × direct | p50 | p99 | proxy CPU µs/req | RSS MiB | errors |")
lines.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for s in scenarios:
    nginx = med(by.get((s, "nginx"), []), "req_per_s")
    for p in PROXIES:
        rs = by.get((s, p))
        if not rs:
            if p == "swarmgate" and s.startswith("tls"):
                lines.append(f"| {s} | swarmgate | n/a | | | | | | | |")
            continue
        rps = med(rs, "req_per_s")
        ref = reference(s, p)
        xd = rps / med(ref, "req_per_s") if ref and p != "direct" else None
        xn = rps / nginx if nginx and p != "direct" else None
        errs = sum(r["errors"] for r in rs)
        lines.append(
            f"| {s} | {p} | {rps:,.0f} | {fmt(xn, '.2f')} | {fmt(xd, '.2f')} | {fmt_us(med(rs, 'p50_us'))} | "
            f"{fmt_us(med(rs, 'p99_us'))} | {fmt(med(rs, 'cpu_us_per_req'), '.1f')} | {fmt(med(rs, 'rss_mib'), '.1f')} | "
            f"{errs} |")

share = [r["harness_cpu_share"] for r in runs]
notes = []
np = os.path.join(work, "notes.txt")
if os.path.exists(np):
    notes = [l.strip() for l in open(np) if l.strip()]
h2load = []
for p in PROXIES:
    f = os.path.join(work, f"h2load-{p}.txt")
    if os.path.exists(f):
        for l in open(f):
            if l.startswith("finished in"):
                h2load.append(f"{p}: {l.strip()}")
cmds = []
cp = os.path.join(work, "commands.txt")
if os.path.exists(cp):
    seen = set()
    for l in open(cp):
        l = l.strip().replace(work + "/bin/load", "load")
        if l not in seen:
            seen.add(l)
            cmds.append(l)

manual = ""
if os.path.exists(out):
    text = open(out).read()
    if "<!-- manual -->" in text:
        manual = text[text.index("<!-- manual -->"):]

reps = max((r["rep"] for r in runs), default=0)
with open(out, "w") as f:
    f.write("# swarmgate load comparison\n\n")
    f.write(f"- Date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}\n")
    f.write(f"- Machine: {machine}\n")
    f.write(f"- Versions: {versions}\n")
    f.write(f"- Command: `benches/compare.sh {args}`".rstrip() + " with "
            f"`DURATION={os.environ.get('DURATION', '10s')} WARMUP={os.environ.get('WARMUP', '2s')} "
            f"REPS={os.environ.get('REPS', '3')}`; medians of {reps} interleaved repetitions.\n")
    f.write("- Load generator: `benches/load.rs`; everything (generator, proxies, backends) shares the same "
            "2 cores, so absolute numbers are low and ratios are what carries over.\n")
    if share:
        f.write(f"- Load generator CPU: median {statistics.median(share) * 100:.0f} % of one core "
                f"(max {max(share) * 100:.0f} %).\n")
    loads = [r["loadavg"] for r in runs if r.get("loadavg") is not None]
    if loads:
        f.write(f"- Machine load (1-min load average during the runs, includes this benchmark's own ~4-5): median "
                f"{statistics.median(loads):.1f}, max {max(loads):.1f}. Other work on the machine skews a run; "
                "interleaving and medians reduce that.\n")
    f.write("\n")
    f.write("\n".join(lines) + "\n\n")
    f.write("Columns: req/s and latency from the load generator (p50/p99 of requests completed in the window); "
            "× nginx against nginx in the same scenario; × direct against one backend without a proxy "
            "(scale rows: against the same proxy with 1 replica); proxy CPU = utime+stime of the proxy's "
            "process tree over the measured window / requests; RSS = peak resident memory of the process tree "
            "sampled every 0.5 s; errors = connect+read+write+timeout+non-2xx over all repetitions.\n\n")
    for s_ in ("tls-ka", "tls-resume", "tls-full"):
        for p in PROXIES:
            hs = [r["tls_handshakes"] for r in by.get((s_, p), []) if r.get("tls_handshakes")]
            full = sum(h["full"] for h in hs)
            resumed = sum(h["resumed"] for h in hs)
            if full + resumed:
                notes.append(f"{s_} {p}: {full:,} full and {resumed:,} resumed TLS handshakes (all repetitions)")
    if notes or h2load:
        f.write("Notes from the run:\n\n")
        for n in notes:
            f.write(f"- {n}\n")
        for h in h2load:
            f.write(f"- h2load cross-check (`h2load -t2 -c16 -m10 -D 5 --warm-up-time 1`), {h}\n")
        f.write("\n")
    if cmds:
        f.write("Load commands (per proxy port):\n\n```\n" + "\n".join(cmds) + "\n```\n\n")
    f.write("<details><summary>All runs</summary>\n\n| scenario | proxy | rep | req/s | p50 | p99 | CPU µs/req | "
            "RSS MiB | errors | generator CPU |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
    for r in runs:
        f.write(f"| {r['scenario']} | {r['proxy']} | {r['rep']} | {r['req_per_s']:,.0f} | {fmt_us(r['p50_us'])} | "
                f"{fmt_us(r['p99_us'])} | {fmt(r['cpu_us_per_req'], '.1f')} | {fmt(r['rss_mib'], '.1f')} | "
                f"{r['errors']} | {r['harness_cpu_share'] * 100:.0f} % |\n")
    f.write("\n</details>\n\n")
    f.write(manual if manual else "<!-- manual -->\n")
