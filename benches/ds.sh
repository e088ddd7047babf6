#!/usr/bin/env bash
# Durable Streams (docs/durable-streams.md): agentwire's /ds on the memory store against the
# reference Node server (@durable-streams/server, in memory, pinned in
# benches/durable-streams/package-lock.json), in the same run, through one load generator
# (agentwire-bench ds). Each server is pinned to SERVER_CPU, the generator to LOAD_CPU; every
# case runs ROUNDS times, the two servers alternating on fresh processes; prints a markdown
# report with the median and range (also target/bench-ds/report.md; raw JSON lines in
# target/bench-ds/results.jsonl).
#
#   bash benches/ds.sh                  # ROUNDS=5 DURATION=5 STREAMS=50 TAILERS=1
#   RATE=2000 bash benches/ds.sh        # the open-loop case at 2000 appends/s (default: half
#                                       # of the reference's median maximum)
#
# Cases: `max` — STREAMS producers, one append in flight each, as fast as acknowledged, each
# stream tailed live (SSE) by TAILERS readers: appends/s and append → tail latency at each
# server's own maximum; `rate` — the same at RATE appends/s in total for both (open loop), so
# the latencies are compared at the same load.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-5}
STREAMS=${STREAMS:-50}
TAILERS=${TAILERS:-1}
SERVER_CPU=${SERVER_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}
PORT=${PORT:-18091}
OUT=target/bench-ds
mkdir -p "$OUT"
: >"$OUT/results.jsonl"

cargo build --release -q -p agentwire-server -p agentwire-bench
BIN=${CARGO_TARGET_DIR:-target}/release
if [ ! -d benches/durable-streams/node_modules/@durable-streams/server ]; then
  (cd benches/durable-streams && npm ci --no-audit --no-fund)
fi

# agentwire with dev auth (every request `?user=bench`) and the memory store; the per-user
# bounds (append rate, request rate, concurrent HTTP streams: one user holds all 50 streams and
# their tailers) are raised so the generator measures the server, not the limiters.
export RUST_LOG=warn AGENTWIRE_DURABLE_STREAMS__APPENDS_PER_SECOND=1000000000 \
  AGENTWIRE_DURABLE_STREAMS__APPEND_BURST=1000000000 \
  AGENTWIRE_DURABLE_STREAMS__REQUESTS_PER_SECOND=1000000000 \
  AGENTWIRE_DURABLE_STREAMS__REQUEST_BURST=1000000000 \
  AGENTWIRE_LIMITS__MAX_HTTP_STREAMS_PER_USER=1000000 \
  AGENTWIRE_LIMITS__HTTP_REQUESTS_PER_SECOND=1000000000 AGENTWIRE_LIMITS__HTTP_BURST=1000000000 \
  AGENTWIRE_LIMITS__MAX_CONNECTIONS_PER_IP=1000000
LABELS="reference agentwire"

SERVER_PID=""
cleanup() { if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; fi; }
trap cleanup EXIT

start_server() { # start_server LABEL — a fresh server on $PORT, pinned to SERVER_CPU
  case $1 in
    agentwire) taskset -c "$SERVER_CPU" "$BIN/agentwire" serve --listen "127.0.0.1:$PORT" \
      >"$OUT/$1.log" 2>&1 & ;;
    reference) taskset -c "$SERVER_CPU" node benches/durable-streams/server.mjs "$PORT" \
      >"$OUT/$1.log" 2>&1 & ;;
  esac
  SERVER_PID=$!
  for _ in $(seq 1 300); do
    if (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null; then return; fi
    sleep 0.1
  done
  echo "$1 did not start" >&2
  exit 1
}
stop_server() {
  kill "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}
target_of() { # target_of LABEL — the generator's --url and --query for LABEL
  case $1 in
    agentwire) echo "--url http://127.0.0.1:$PORT/ds --query user=bench" ;;
    reference) echo "--url http://127.0.0.1:$PORT" ;;
  esac
}
bench() { # bench CASE LABEL ARGS… — one report as a JSON line, tagged with its case
  local case=$1 label=$2; shift 2
  # shellcheck disable=SC2046
  taskset -c "$LOAD_CPU" "$BIN/agentwire-bench" --json --label "$label" \
    --server-pid "$SERVER_PID" ds $(target_of "$label") -s "$STREAMS" -t "$TAILERS" \
    -d "$DURATION" "$@" |
    python3 -c 'import json,sys; r=json.load(sys.stdin); r["case"]=sys.argv[1]; print(json.dumps(r))' "$case" \
      >>"$OUT/results.jsonl"
}
median() { # median LABEL CASE KEY
  python3 -c "import json,statistics
r=[json.loads(l) for l in open('$OUT/results.jsonl') if l.strip()]
print(statistics.median(x['metrics']['$3'] for x in r if x['label']=='$1' and x['case']=='$2'))"
}

echo "== max: $STREAMS producers (closed loop), $TAILERS SSE tailer(s) per stream, $ROUNDS rounds" >&2
for round in $(seq 1 "$ROUNDS"); do
  for label in $LABELS; do
    echo "   max round $round: $label" >&2
    start_server "$label"
    bench max "$label"
    stop_server
  done
done
RATE=${RATE:-$(python3 -c "print(round(float('$(median reference max appends_per_s)') / 2))")}
echo "== rate: $RATE appends/s in total (open loop), $ROUNDS rounds" >&2
for round in $(seq 1 "$ROUNDS"); do
  for label in $LABELS; do
    echo "   rate round $round: $label" >&2
    start_server "$label"
    bench rate "$label" --rate "$RATE"
    stop_server
  done
done

python3 - "$OUT/results.jsonl" "$ROUNDS" "$DURATION" "$STREAMS" "$TAILERS" "$RATE" \
  "$SERVER_CPU" "$LOAD_CPU" <<'EOF' | tee "$OUT/report.md"
import json, statistics, subprocess, sys
path, rounds, duration, streams, tailers, rate, server_cpu, load_cpu = sys.argv[1:]
rows = [json.loads(l) for l in open(path) if l.strip()]
def cell(label, case, key):
    v = [r["metrics"][key] for r in rows if r["label"] == label and r["case"] == case and key in r["metrics"]]
    if not v:
        return None, ""
    m = statistics.median(v)
    fmt = lambda x: f"{x:,.0f}" if abs(x) >= 10 else f"{x:.1f}"
    return m, f"{fmt(m)} ({fmt(min(v))}–{fmt(max(v))})" if len(v) > 1 else fmt(m)
def sh(cmd):
    return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
model = sh("lscpu | grep -E '^Model name' | sed 's/  */ /g'")
load = open("/proc/loadavg").read().split()[:3]
print(f"Taken {sh('date -u +%Y-%m-%dT%H:%M:%SZ')} at commit {sh('git rev-parse --short HEAD')}: "
      f"`nproc` = {sh('nproc')}; {model}; load average at the end: {' '.join(load)}.")
print()
print(f"Servers pinned to core {server_cpu}, generator to core {load_cpu}; {rounds} rounds per case "
      f"on fresh servers, reference and agentwire alternating; {duration} s measured after 0.5 s "
      f"of warm-up; {streams} streams, one producer each, {tailers} SSE tailer(s) per stream, "
      "128-byte JSON messages. Cells: median (min–max).")
print()
cases = [("max", f"max ({streams} producers, closed loop)"), ("rate", f"rate ({rate} appends/s, open loop)")]
keys = ["appends_per_s", "append_latency_p50_us", "append_latency_p99_us", "tail_latency_p50_us",
        "tail_latency_p99_us", "tail_latency_p999_us", "tail_latency_max_us", "server_cpu_pct",
        "appends_per_server_cpu_s", "not_tailed", "errors"]
print("| case | metric | reference (Node) | agentwire | agentwire / reference |")
print("|---|---|---:|---:|---:|")
for case, title in cases:
    for key in keys:
        (a, ac), (b, bc) = cell("agentwire", case, key), cell("reference", case, key)
        if a is None and b is None:
            continue
        ratio = f"{a / b:.2f}×" if a is not None and b else ""
        print(f"| {title} | {key} | {bc} | {ac} | {ratio} |")
EOF
