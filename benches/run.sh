#!/usr/bin/env bash
# One command for docs/benchmarks.md: builds release binaries, then measures agentwire and the
# bare baseline (benches/baseline) in the same invocation — servers pinned to core 0, the load
# generator to core 1 — and prints a markdown report (also written to target/bench/report.md).
#
#   bash benches/run.sh                 # ROUNDS=3 DURATION=3 IDLE_N=19000 by default
#   IDLE_N=50000 bash benches/run.sh    # needs a hard fd limit above 50000 (ulimit -Hn)
#   CALLGRIND=0 bash benches/run.sh     # skip the instruction count (valgrind)
#   BEFORE_BIN=/path/to/old/agentwire bash benches/run.sh
#                                       # also an earlier build, same rounds (a before/after table)
#
# Every throughput and latency scenario runs ROUNDS times, agentwire and the baseline
# alternating within each round on fresh servers, and the report gives the median with the
# range: on a shared VM one run alone can be off by 20%.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-3}
ROUNDS=${ROUNDS:-3}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
CALLGRIND=${CALLGRIND:-1}
OUT=target/bench
mkdir -p "$OUT"
: >"$OUT/results.jsonl"

cargo build --release -q -p agentwire-server -p agentwire-bench -p agentwire-baseline
BIN=target/release

# Each idle connection is one fd in the server and one in the generator: raise the soft limit to
# the hard one. A container may cap the hard limit (this one: 20000), which caps IDLE_N below it.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FD_LIMIT=$(ulimit -n)
if [ "$FD_LIMIT" = unlimited ]; then FD_LIMIT=1048576; fi
IDLE_N=${IDLE_N:-$((FD_LIMIT - 1000 < 50000 ? FD_LIMIT - 1000 : 50000))}
if [ "$FD_LIMIT" -lt $((IDLE_N + 1000)) ]; then
  echo "warning: ulimit -n is $FD_LIMIT; IDLE_N=$IDLE_N connections will not all open" >&2
fi

# agentwire with dev auth and the in-memory broker; the per-connection inbound rate limit and the
# runs-per-user cap are raised so the generator measures delivery, not the limiter.
export RUST_LOG=warn AGENTWIRE_LIMITS__MESSAGES_PER_SECOND=1000000 AGENTWIRE_LIMITS__BURST=1000000 \
  AGENTWIRE_LIMITS__MAX_RUNS_PER_USER=1000 AGENTWIRE_LIMITS__MAX_USERS=1000000 \
  AGENTWIRE_LIMITS__MAX_CONNECTIONS_PER_IP=1000000
PORT=18081 START_PORT=18083
# agentwire on the Redis broker as well, when Redis answers (issue 4: through Redis beside memory).
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
LABELS="agentwire baseline"
if redis-cli -u "$REDIS_URL" ping >/dev/null 2>&1; then
  LABELS="$LABELS agentwire-redis"
else
  echo "no Redis at $REDIS_URL: skipping agentwire-redis" >&2
fi
# An earlier build of agentwire beside this one, alternating in every round, for a before/after
# comparison measured in the same run.
BEFORE_BIN=${BEFORE_BIN:-}
if [ -n "$BEFORE_BIN" ]; then LABELS="$LABELS agentwire-before"; fi

# And on a local Redis Cluster (issue 24): 3 primaries + 3 replicas started here (CLUSTER=0
# skips it), measured without and with the replica wait (redis.wait_replicas = 1).
CLUSTER=${CLUSTER:-1}
CLUSTER_PIDS=""
REDIS_PORT=${REDIS_URL##*:}; REDIS_PORT=${REDIS_PORT%%/*}
if [ "$CLUSTER" = 1 ] && command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
  rm -rf "$OUT/cluster"
  nodes=""
  for port in 17201 17202 17203 17204 17205 17206; do
    mkdir -p "$OUT/cluster/$port"
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
      --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000 \
      --dir "$OUT/cluster/$port" >"$OUT/cluster/$port/log" 2>&1 &
    CLUSTER_PIDS="$CLUSTER_PIDS $!"
    nodes="$nodes 127.0.0.1:$port"
  done
  for port in 17201 17202 17203 17204 17205 17206; do
    for _ in $(seq 1 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  done
  # shellcheck disable=SC2086
  redis-cli --cluster create $nodes --cluster-replicas 1 --cluster-yes >"$OUT/cluster/create.log"
  for _ in $(seq 1 100); do
    redis-cli -p 17201 cluster info | grep -q 'cluster_state:ok' && break; sleep 0.1
  done
  CLUSTER_URL="redis+cluster://127.0.0.1:17201,127.0.0.1:17202,127.0.0.1:17203"
  # Redis's counters are read from the primaries (a replica counts the replicated commands too).
  CLUSTER_PRIMARIES=$(redis-cli -p 17201 cluster nodes | awk '$3 ~ /master/ {split($2, a, "@"); print a[1]}' | paste -sd, -)
  LABELS="$LABELS agentwire-redis-cluster agentwire-redis-cluster-wait"
fi

SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; fi
  # shellcheck disable=SC2086
  if [ -n "$CLUSTER_PIDS" ]; then kill $CLUSTER_PIDS 2>/dev/null || true; fi
}
trap cleanup EXIT

server_cmd() { # server_cmd LABEL PORT — the command line of one server
  case $1 in
    agentwire) echo "$BIN/agentwire serve --listen 127.0.0.1:$2" ;;
    agentwire-redis) echo "$BIN/agentwire serve --broker $REDIS_URL --listen 127.0.0.1:$2" ;;
    # An earlier build may not know the newer limits keys (unknown keys are refused).
    agentwire-before) echo "env -u AGENTWIRE_LIMITS__MAX_CONNECTIONS_PER_IP $BEFORE_BIN serve --listen 127.0.0.1:$2" ;;
    agentwire-redis-cluster) echo "$BIN/agentwire serve --broker $CLUSTER_URL --listen 127.0.0.1:$2" ;;
    agentwire-redis-cluster-wait)
      echo "env AGENTWIRE_REDIS__WAIT_REPLICAS=1 $BIN/agentwire serve --broker $CLUSTER_URL --listen 127.0.0.1:$2" ;;
    baseline) echo "$BIN/agentwire-baseline 127.0.0.1:$2" ;;
  esac
}
start_server() { # start_server LABEL [WRAPPER…] — a fresh server on $PORT, pinned to SERVER_CPU
  local label=$1; shift
  # shellcheck disable=SC2046
  taskset -c "$SERVER_CPU" "$@" $(server_cmd "$label" $PORT) >"$OUT/$label.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 600); do
    if curl -s -o /dev/null "127.0.0.1:$PORT/health/live" 2>/dev/null || \
      (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null; then return; fi
    sleep 0.1
  done
  echo "$label did not start" >&2
  exit 1
}
stop_server() {
  kill "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}
# bench CASE LABEL SCENARIO ARGS… — one report as a JSON line, tagged with its case.
redis_of() { # redis_of LABEL — the Redis servers whose INFO the bench reads for LABEL
  case $1 in
    agentwire-redis) echo "--redis 127.0.0.1:$REDIS_PORT" ;;
    agentwire-redis-cluster*) echo "--redis $CLUSTER_PRIMARIES" ;;
  esac
}
bench() {
  local case=$1 label=$2; shift 2
  # shellcheck disable=SC2046
  taskset -c "$LOAD_CPU" "$BIN/agentwire-bench" --json --label "$label" --addr 127.0.0.1:$PORT \
    --server-pid "$SERVER_PID" $(redis_of "$label") "$@" |
    python3 -c 'import json,sys; r=json.load(sys.stdin); r["case"]=sys.argv[1]; print(json.dumps(r))' "$case" \
      >>"$OUT/results.jsonl"
}
# rounds CASE SCENARIO ARGS… — ROUNDS times, each label on a fresh server.
rounds() {
  local case=$1; shift
  for round in $(seq 1 "$ROUNDS"); do
    for label in $LABELS; do
      echo "   $case round $round: $label" >&2
      start_server "$label"
      bench "$case" "$label" "$@"
      stop_server
    done
  done
}
median() { # median LABEL CASE KEY
  python3 -c "import json,statistics
r=[json.loads(l) for l in open('$OUT/results.jsonl') if l.strip()]
print(statistics.median(x['metrics']['$3'] for x in r if x['label']=='$1' and x['case']=='$2'))"
}

echo "== startup to ready (5 starts each)" >&2
for label in agentwire baseline; do
  # shellcheck disable=SC2046
  taskset -c "$LOAD_CPU" "$BIN/agentwire-bench" --json --label "$label" --addr 127.0.0.1:$START_PORT \
    startup --repeat 5 -- taskset -c "$SERVER_CPU" $(server_cmd "$label" $START_PORT) |
    python3 -c 'import json,sys; r=json.load(sys.stdin); r["case"]="startup"; print(json.dumps(r))' \
      >>"$OUT/results.jsonl"
done

echo "== runs, max rate: 100 connections x 4 in flight, $ROUNDS rounds" >&2
rounds runs_max runs -c 100 -w 4 -d "$DURATION"
# Half of each server's own median maximum; the baseline runs at agentwire's half, so the two
# are compared at the same offered load (agentwire-redis at its own, lower, half).
half() { python3 -c "print(round(float('$(median "$1" runs_max runs_per_s)') / 2))"; }
HALF=$(half agentwire)
echo "== runs at half of agentwire's median max rate: $HALF runs/s over 100 connections" >&2
for round in $(seq 1 "$ROUNDS"); do
  for label in $LABELS; do
    rate=$HALF
    case $label in agentwire-redis*) rate=$(half "$label") ;; esac
    echo "   runs_half round $round: $label at $rate/s" >&2
    start_server "$label"
    bench runs_half "$label" runs -c 100 --rate "$rate" -d "$DURATION"
    stop_server
  done
done
echo "== fanout: 25 users x 4 connections, 4 runs in flight per user" >&2
rounds fanout fanout -u 25 -k 4 -w 4 -d "$DURATION"

echo "== idle: $IDLE_N connections (fresh servers)" >&2
for label in agentwire baseline; do
  start_server "$label"
  bench idle "$label" idle -n "$IDLE_N"
  stop_server
done

# Instructions per delivered event under the fanout load, counted by callgrind: user space only,
# but the same count for the same binaries whatever else the machine is doing. The server runs
# ~50x slower under valgrind, so the generator's load saturates it; the denominator is every
# event frame the generator received (events_total).
if [ "$CALLGRIND" = 1 ] && command -v valgrind >/dev/null; then
  echo "== callgrind: instructions per delivered event (fanout)" >&2
  for label in agentwire baseline; do
    start_server "$label" valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.$label.out"
    callgrind_control -z "$SERVER_PID" >/dev/null # count from here: not the server's startup
    bench callgrind "$label" fanout -u 25 -k 4 -w 4 -d 5
    kill -TERM "$SERVER_PID" 2>/dev/null || true # not INT: background jobs of a script ignore it
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
    ir=$(grep -E '^(summary|totals):' "$OUT/callgrind.$label.out" | head -1 | awk '{print $2}')
    python3 -c "import json; print(json.dumps({'label':'$label','case':'callgrind_ir','scenario':'callgrind','params':{},'metrics':{'instructions':$ir}}))" \
      >>"$OUT/results.jsonl"
  done
fi

python3 benches/report.py "$OUT/results.jsonl" "$DURATION" "$IDLE_N" "$ROUNDS" | tee "$OUT/report.md"
