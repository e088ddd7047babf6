#!/usr/bin/env bash
# One command for docs/benchmarks.md: builds release binaries, then measures agentwire and the
# bare baseline (benches/baseline) in the same invocation — servers pinned to core 0, the load
# generator to core 1 — and prints a markdown report (also written to target/bench/report.md).
#
#   bash benches/run.sh            # IDLE_N=10000 DURATION=3 by default
#   IDLE_N=50000 bash benches/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-3}
IDLE_N=${IDLE_N:-10000}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
OUT=target/bench
mkdir -p "$OUT"
: >"$OUT/results.jsonl"

cargo build --release -q -p agentwire-server -p agentwire-bench -p agentwire-baseline
BIN=target/release

# Each idle connection is one fd in the server and one in the generator: raise the soft limit to
# the hard one (a container may cap the hard limit, e.g. at 20000, which caps IDLE_N below it).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((IDLE_N + 1024)) ]; then
  echo "warning: ulimit -n is $(ulimit -n); IDLE_N=$IDLE_N connections will not all open" >&2
fi

# agentwire with dev auth and the in-memory broker; the per-connection inbound rate limit and the
# runs-per-user cap are raised so the generator measures delivery, not the limiter.
export RUST_LOG=warn AGENTWIRE_LIMITS__MESSAGES_PER_SECOND=1000000 AGENTWIRE_LIMITS__BURST=1000000 \
  AGENTWIRE_LIMITS__MAX_RUNS_PER_USER=1000 AGENTWIRE_LIMITS__MAX_USERS=1000000
AW_PORT=18081 BL_PORT=18082 START_PORT=18083 AWR_PORT=18084
# agentwire on the Redis broker as well, when Redis answers (issue 4: through Redis beside memory).
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
if redis-cli -u "$REDIS_URL" ping >/dev/null 2>&1; then WITH_REDIS=1; else WITH_REDIS=0; echo "no Redis at $REDIS_URL: skipping agentwire-redis" >&2; fi
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

start_servers() {
  taskset -c "$SERVER_CPU" "$BIN/agentwire" serve --listen 127.0.0.1:$AW_PORT >"$OUT/agentwire.log" 2>&1 &
  AW_PID=$!
  taskset -c "$SERVER_CPU" "$BIN/agentwire-baseline" 127.0.0.1:$BL_PORT >"$OUT/baseline.log" 2>&1 &
  BL_PID=$!
  PIDS+=("$AW_PID" "$BL_PID")
  AWR_PID=""
  if [ "$WITH_REDIS" = 1 ] && [ "${1:-}" != no-redis ]; then
    taskset -c "$SERVER_CPU" "$BIN/agentwire" serve --broker "$REDIS_URL" --listen 127.0.0.1:$AWR_PORT >"$OUT/agentwire-redis.log" 2>&1 &
    AWR_PID=$!
    PIDS+=("$AWR_PID")
  fi
  sleep 0.5
}
stop_servers() {
  kill "$AW_PID" "$BL_PID" $AWR_PID 2>/dev/null || true
  wait "$AW_PID" "$BL_PID" $AWR_PID 2>/dev/null || true
}
# Redis itself runs unpinned (it is the machine's service); with one core per side, the Redis
# figures show the extra round trip and the Redis CPU sharing the machine.
bench_redis() { if [ -n "$AWR_PID" ]; then bench agentwire-redis $AWR_PORT "$AWR_PID" "$@"; fi; }

# bench LABEL PORT PID SCENARIO ARGS… — one report as a JSON line.
bench() {
  local label=$1 port=$2 pid=$3; shift 3
  taskset -c "$LOAD_CPU" "$BIN/agentwire-bench" --json --label "$label" --addr 127.0.0.1:$port \
    --server-pid "$pid" "$@" | tee -a "$OUT/results.jsonl" >/dev/null
}
metric() { # metric LABEL SCENARIO KEY — from the last matching report
  python3 -c "import json,sys
r=[json.loads(l) for l in open('$OUT/results.jsonl') if l.strip()]
r=[x for x in r if x['label']=='$1' and x['scenario']=='$2']
print(r[-1]['metrics']['$3'])"
}

echo "== startup to ready (5 starts each)" >&2
taskset -c "$LOAD_CPU" "$BIN/agentwire-bench" --json --label agentwire --addr 127.0.0.1:$START_PORT startup --repeat 5 -- \
  taskset -c "$SERVER_CPU" "$BIN/agentwire" serve --listen 127.0.0.1:$START_PORT >>"$OUT/results.jsonl"
taskset -c "$LOAD_CPU" "$BIN/agentwire-bench" --json --label baseline --addr 127.0.0.1:$START_PORT startup --repeat 5 -- \
  taskset -c "$SERVER_CPU" "$BIN/agentwire-baseline" 127.0.0.1:$START_PORT >>"$OUT/results.jsonl"

start_servers
echo "== runs, max rate: 100 connections x 4 in flight" >&2
bench agentwire $AW_PORT $AW_PID runs -c 100 -w 4 -d "$DURATION"
bench baseline $BL_PORT $BL_PID runs -c 100 -w 4 -d "$DURATION"
bench_redis runs -c 100 -w 4 -d "$DURATION"
HALF=$(python3 -c "print(round(float('$(metric agentwire runs runs_per_s)') / 2))")
echo "== runs at half of agentwire's max rate: $HALF runs/s over 100 connections" >&2
bench agentwire $AW_PORT $AW_PID runs -c 100 --rate "$HALF" -d "$DURATION"
bench baseline $BL_PORT $BL_PID runs -c 100 --rate "$HALF" -d "$DURATION"
bench_redis runs -c 100 --rate "$HALF" -d "$DURATION"
echo "== fanout: 25 users x 4 connections, 4 runs in flight per user" >&2
bench agentwire $AW_PORT $AW_PID fanout -u 25 -k 4 -w 4 -d "$DURATION"
bench baseline $BL_PORT $BL_PID fanout -u 25 -k 4 -w 4 -d "$DURATION"
bench_redis fanout -u 25 -k 4 -w 4 -d "$DURATION"
stop_servers

echo "== idle: $IDLE_N connections (fresh servers)" >&2
start_servers no-redis
bench agentwire $AW_PORT $AW_PID idle -n "$IDLE_N"
bench baseline $BL_PORT $BL_PID idle -n "$IDLE_N"
stop_servers

python3 benches/report.py "$OUT/results.jsonl" "$DURATION" "$IDLE_N" | tee "$OUT/report.md"
