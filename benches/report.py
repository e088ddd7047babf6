#!/usr/bin/env python3
"""Turns benches/run.sh's JSON lines into the markdown of docs/benchmarks.md.

Each case ran ROUNDS times per server; a cell is the median, with the range (min–max) for the
figures the targets are about.
"""
import json
import statistics
import subprocess
import sys

path, duration, idle_n, rounds = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
reports = [json.loads(l) for l in open(path) if l.strip()]


def sh(cmd):
    return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()


def runs_of(label, case):
    return [r for r in reports if r["label"] == label and r.get("case") == case]


def values(label, case, key):
    return [r["metrics"][key] for r in runs_of(label, case) if isinstance(r["metrics"].get(key), (int, float))]


def fmt(v):
    if isinstance(v, float):
        return f"{v:,.1f}" if abs(v) < 100 else f"{v:,.0f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


RANGED = {"events_per_s", "runs_per_s", "latency_p99_us", "events_per_server_cpu_s"}


def cell(label, case, key):
    vs = values(label, case, key)
    if not vs:
        texts = [r["metrics"].get(key) for r in runs_of(label, case) if key in r["metrics"]]
        return None, (str(texts[0]) if texts else "")
    m = statistics.median(vs)
    text = fmt(m)
    if key in RANGED and len(vs) > 1:
        text += f" ({fmt(min(vs))}–{fmt(max(vs))})"
    return m, text


def table(cases, left, right, header):
    print(header)
    print("|---|---|---:|---:|---:|")
    for case, name, keys in cases:
        if not runs_of(left, case) or not runs_of(right, case):
            continue
        for k in keys:
            a, ta = cell(left, case, k)
            b, tb = cell(right, case, k)
            if not ta and not tb:
                continue
            ratio = f"{a / b:.2f}×" if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else ""
            print(f"| {name} | {k} | {ta} | {tb} | {ratio} |")


half = runs_of("agentwire", "runs_half")
rate = half[0]["params"]["rate_per_s"] if half else "?"
LOAD = ["runs_per_s", "events_per_s", "latency_p50_us", "latency_p99_us", "latency_p999_us", "latency_max_us",
        "server_cpu_pct", "events_per_server_cpu_s", "error_frames",
        "redis_commands_per_event", "redis_cpu_us_per_event"]
CASES = [
    ("startup", "startup", ["ready_min_ms", "ready_median_ms", "ready_max_ms"]),
    ("runs_max", "runs (max, 100×4 in flight)", LOAD),
    ("runs_half", f"runs (open loop, {rate}/s, 100 conns)", LOAD),
    ("fanout", "fanout (25 users × 4 conns, 4 in flight)", LOAD),
    ("idle", "idle", ["held", "connect_per_s", "rss_before_kib", "rss_after_kib", "rss_per_conn_bytes", "first_error"]),
]

print(f"Taken {sh('date -u +%Y-%m-%dT%H:%M:%SZ')}:")
fd_limit = sh("bash -c 'ulimit -Hn'")
print(f"`nproc` = {sh('nproc')}; {sh('free -h | sed -n 2p')}; kernel {sh('uname -r')}; "
      f"`ulimit -Hn` = {fd_limit}.")
print("```")
print(sh("lscpu | head -n 15"))
print("```")
print(f"Servers pinned to core 0, generator to core 1; each case {rounds} rounds on fresh servers, "
      f"agentwire and baseline alternating; measured {duration} s after 0.5 s of warm-up; "
      f"idle N = {idle_n}. Cells: median (min–max).")
print()
table(CASES, "agentwire", "baseline", "| scenario | metric | agentwire | baseline | agentwire / baseline |")

ir = {}
for label in ("agentwire", "baseline"):
    cg = runs_of(label, "callgrind")
    count = runs_of(label, "callgrind_ir")
    if cg and count and cg[0]["metrics"].get("events_total"):
        ir[label] = count[0]["metrics"]["instructions"] / cg[0]["metrics"]["events_total"]
if len(ir) == 2:
    print()
    print("Instructions per delivered event (callgrind, user space, fanout 25 × 4, counted after startup):")
    print()
    print("| | agentwire | baseline | agentwire / baseline |")
    print("|---|---:|---:|---:|")
    print(f"| instructions / event | {ir['agentwire']:,.0f} | {ir['baseline']:,.0f} | "
          f"{ir['agentwire'] / ir['baseline']:.2f}× |")

if runs_of("agentwire-before", "fanout"):
    print()
    print("This build beside the earlier one (`BEFORE_BIN`), same rounds, same generator, memory broker:")
    print()
    table(CASES[1:4], "agentwire", "agentwire-before",
          "| scenario | metric | agentwire (now) | agentwire (before) | now / before |")

if runs_of("agentwire-redis", "fanout"):
    print()
    print("Through Redis (`--broker redis://127.0.0.1:6379`, Redis itself unpinned), same rounds, "
          "same generator:")
    print()
    redis_half = runs_of("agentwire-redis", "runs_half")
    redis_rate = redis_half[0]["params"]["rate_per_s"] if redis_half else "?"
    print(f"The open-loop row runs each at half of its own maximum: Redis at {redis_rate}/s, "
          f"memory at {rate}/s.")
    print()
    table(CASES[1:4], "agentwire-redis", "agentwire",
          "| scenario | metric | agentwire (Redis) | agentwire (memory) | Redis / memory |")

for label, what in (("agentwire-redis-cluster", "a local Redis Cluster, 3 primaries + 3 replicas"),
                    ("agentwire-redis-cluster-wait", "the same cluster with `redis.wait_replicas = 1`")):
    if not runs_of(label, "runs_max"):
        continue
    print()
    half_runs = runs_of(label, "runs_half")
    label_rate = half_runs[0]["params"]["rate_per_s"] if half_runs else "?"
    print(f"Through {what} (Redis unpinned); the open-loop row at half of its own maximum, "
          f"{label_rate}/s:")
    print()
    table(CASES[1:4], label, "agentwire",
          f"| scenario | metric | {label} | agentwire (memory) | {label} / memory |")
