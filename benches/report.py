#!/usr/bin/env python3
"""Turns benches/run.sh's JSON lines into the markdown of docs/benchmarks.md."""
import json
import subprocess
import sys

path, duration, idle_n = sys.argv[1], sys.argv[2], sys.argv[3]
reports = [json.loads(l) for l in open(path) if l.strip()]


def sh(cmd):
    return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()


def find(label, scenario, nth=0):
    rows = [r for r in reports if r["label"] == label and r["scenario"] == scenario]
    return rows[nth] if len(rows) > nth else None


def fmt(v):
    if isinstance(v, float):
        return f"{v:,.1f}" if abs(v) < 100 else f"{v:,.0f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


print(f"Taken {sh('date -u +%Y-%m-%dT%H:%M:%SZ')} on a shared, busy machine (other builds were running):")
print(f"`nproc` = {sh('nproc')}; {sh('free -h | sed -n 2p')}; kernel {sh('uname -r')}.")
print("```")
print(sh("lscpu | head -n 15"))
print("```")
print(f"Servers pinned to core 0, generator to core 1; measured {duration} s after 0.5 s of warm-up; idle N = {idle_n}.")
print()
print("| scenario | metric | agentwire | baseline | agentwire / baseline |")
print("|---|---|---:|---:|---:|")
rows = [
    ("startup", 0, ["ready_min_ms", "ready_median_ms", "ready_max_ms"]),
    ("runs", 0, ["runs_per_s", "events_per_s", "latency_p50_us", "latency_p99_us", "latency_p999_us", "latency_max_us", "server_cpu_pct", "events_per_server_cpu_s", "error_frames"]),
    ("runs", 1, ["runs_per_s", "events_per_s", "latency_p50_us", "latency_p99_us", "latency_p999_us", "latency_max_us", "server_cpu_pct", "events_per_server_cpu_s", "error_frames"]),
    ("fanout", 0, ["runs_per_s", "events_per_s", "latency_p50_us", "latency_p99_us", "latency_p999_us", "latency_max_us", "server_cpu_pct", "events_per_server_cpu_s", "error_frames"]),
    ("idle", 0, ["held", "connect_per_s", "rss_before_kib", "rss_after_kib", "rss_per_conn_bytes", "first_error"]),
]
for scenario, nth, keys in rows:
    a, b = find("agentwire", scenario, nth), find("baseline", scenario, nth)
    if not a or not b:
        continue
    name = scenario
    if scenario == "runs":
        name = "runs (max, 100×4 in flight)" if nth == 0 else f"runs (open loop, {a['params']['rate_per_s']}/s, 100 conns)"
    elif scenario == "fanout":
        p = a["params"]
        name = f"fanout ({p['users']} users × {p['connections_per_user']} conns, {p['inflight_per_user']} in flight)"
    for k in keys:
        va, vb = a["metrics"].get(k), b["metrics"].get(k)
        if va is None and vb is None:
            continue
        ratio = ""
        if isinstance(va, (int, float)) and isinstance(vb, (int, float)) and vb:
            ratio = f"{va / vb:.2f}×"
        print(f"| {name} | {k} | {fmt(va if va is not None else '')} | {fmt(vb if vb is not None else '')} | {ratio} |")

redis_rows = [r for r in reports if r["label"] == "agentwire-redis"]
if redis_rows:
    print()
    print("Through Redis (`--broker redis://127.0.0.1:6379`), same invocation, same generator:")
    print()
    print("| scenario | metric | agentwire (memory) | agentwire (Redis) | Redis / memory |")
    print("|---|---|---:|---:|---:|")
    for scenario, nth in [("runs", 0), ("runs", 1), ("fanout", 0)]:
        a, b = find("agentwire", scenario, nth), find("agentwire-redis", scenario, nth)
        if not a or not b:
            continue
        name = scenario
        if scenario == "runs":
            name = "runs (max, 100×4 in flight)" if nth == 0 else f"runs (open loop, {b['params']['rate_per_s']}/s, 100 conns)"
        elif scenario == "fanout":
            p = b["params"]
            name = f"fanout ({p['users']} users × {p['connections_per_user']} conns, {p['inflight_per_user']} in flight)"
        for k in ["runs_per_s", "events_per_s", "latency_p50_us", "latency_p99_us", "latency_max_us", "server_cpu_pct", "error_frames"]:
            va, vb = a["metrics"].get(k), b["metrics"].get(k)
            if va is None and vb is None:
                continue
            ratio = f"{vb / va:.2f}×" if isinstance(va, (int, float)) and isinstance(vb, (int, float)) and va else ""
            print(f"| {name} | {k} | {fmt(va if va is not None else '')} | {fmt(vb if vb is not None else '')} | {ratio} |")
