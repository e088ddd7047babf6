#!/usr/bin/env bash
# Redis's cost of the Redis broker's append script at a fixed batch size, without agentwire:
# redis-benchmark calls the APPEND script of crates/agentwire-redis/src/scripts.rs (as of the git
# revision REV, default the work tree) on one user's stream with B realistic events per call, on a
# private redis-server this script starts on a free port (and stops by PID). Prints, per event,
# Redis CPU (`INFO cpu`, user + sys, so the server's network I/O is included), time in scripts
# (`INFO commandstats`) and commands (calls of every command the script runs, from commandstats).
# Counts are exact; CPU is a measurement, noisy on a busy machine: compare revisions in
# alternating rounds. With CALLGRIND=1 the server runs under valgrind's callgrind and the script
# also prints Redis's user-space instructions per event, which load on the machine does not
# change (use fewer events: EVENTS=2000).
#
#   bash benches/redis-append.sh [REV] [B ...]      e.g. bash benches/redis-append.sh main 1 4 16
set -euo pipefail
cd "$(dirname "$0")/.."
REV=${1:-}
shift || true
SIZES=${*:-1 4 16}
EVENTS=${EVENTS:-32000}   # per batch size; 32,000 frames of ~230 bytes stay under history.max_bytes
TMP=$(mktemp -d)
if [ -n "$REV" ]; then git show "$REV:crates/agentwire-redis/src/scripts.rs" >"$TMP/scripts.rs"
else cp crates/agentwire-redis/src/scripts.rs "$TMP/scripts.rs"; fi
python3 - "$TMP/scripts.rs" "$TMP/append.lua" <<'PY'
import re, sys
src = open(sys.argv[1]).read()
shared = re.search(r'macro_rules! age_trim_lua \{.*?r#"(.*?)"#', src, re.S)
m = re.search(r'const APPEND: &str = (concat!\(\s*age_trim_lua!\(\),\s*)?r#"(.*?)"#', src, re.S)
open(sys.argv[2], 'w').write((shared.group(1) if m.group(1) else '') + m.group(2))
PY
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
SERVER=(redis-server --port "$PORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize no)
if [ "${CALLGRIND:-0}" = 1 ]; then
  SERVER=(valgrind --tool=callgrind --callgrind-out-file="$TMP/cg.out" "${SERVER[@]}")
fi
"${SERVER[@]}" >"$TMP/redis.log" 2>&1 &
PID=$!
trap 'kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; rm -rf "$TMP"' EXIT
for _ in $(seq 1 100); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
# Instructions since the last call (callgrind's counters are zeroed after each dump).
instructions() {
  [ "${CALLGRIND:-0}" = 1 ] || { echo 0; return; }
  rm -f "$TMP"/cg.out.*
  callgrind_control -d "$PID" >/dev/null 2>&1
  for _ in $(seq 1 50); do ls "$TMP"/cg.out.* >/dev/null 2>&1 && break; sleep 0.1; done
  sleep 0.2
  awk '/^summary:/ {print $2}' "$TMP"/cg.out.*
}
PRE='{"type":"event","seq":'
SUF=',"event":{"type":"agent_message_delta","run_id":"run_01JABCDEFGHJKMNPQRSTVWXYZ","thread_id":"th_01JABCDEFGHJKMNPQRSTVWXYZ","agent":"echo","ts":1765091234567,"message_id":"m","delta":"hello world"}}'
# The script's keys and header (max_events 1000, max_bytes 8 MiB, no refresh, no seq jump): the
# layout with one stream entry per event took four keys and the byte floor as an 11th argument.
if grep -q "KEYS\[4\]" "$TMP/append.lua"; then
  KEYS=(4 'aw:{u}:seq' 'aw:{u}:s' 'aw:{u}:e' 'aw:{u}:b'); FLOOR=(0)
else
  KEYS=(2 'aw:{u}:m' 'aw:{u}:h'); FLOOR=()
fi
HEADER=(ep0123456789 1000 9000000 aw:live:u 1765091234567 PUBLISH 0 8000000 0 8388608 "${FLOOR[@]}")
cpu() { redis-cli -p "$PORT" INFO cpu | awk -F: '/used_cpu_(sys|user):/ {s += $2} END {printf "%.6f", s}'; }
for B in $SIZES; do
  redis-cli -p "$PORT" FLUSHALL >/dev/null
  SHA=$(redis-cli -p "$PORT" SCRIPT LOAD "$(cat "$TMP/append.lua")")
  EVENTS_ARGS=()
  for _ in $(seq 1 "$B"); do EVENTS_ARGS+=("$PRE" "$SUF"); done
  N=$((EVENTS / B))
  # Warm-up past history.max_events, so that the count trim runs as in a busy stream.
  redis-benchmark -p "$PORT" -n $((1200 / B + 1)) -c 1 -q \
    EVALSHA "$SHA" "${KEYS[@]}" "${HEADER[@]}" "${EVENTS_ARGS[@]}" >/dev/null
  redis-cli -p "$PORT" CONFIG RESETSTAT >/dev/null
  instructions >/dev/null
  before=$(cpu)
  redis-benchmark -p "$PORT" -n "$N" -c 4 -P 4 -q \
    EVALSHA "$SHA" "${KEYS[@]}" "${HEADER[@]}" "${EVENTS_ARGS[@]}" >/dev/null
  after=$(cpu)
  ir=$(instructions)
  redis-cli -p "$PORT" INFO commandstats | python3 -c '
import sys
rev, b, n, cpu0, cpu1, ir = sys.argv[1:7]
events = int(b) * int(n)
calls = usec = 0
for line in sys.stdin:
    if not line.startswith("cmdstat_"): continue
    name, stats = line.strip()[8:].split(":", 1)
    kv = dict(x.split("=") for x in stats.split(","))
    if name in ("evalsha", "eval"): usec += int(kv["usec"])
    if name not in ("info", "config|resetstat", "ping", "script|load", "flushall"):
        calls += int(kv["calls"])
label = rev or "work tree"
print(f"{label} B={b}: Redis CPU {(float(cpu1) - float(cpu0)) * 1e6 / events:.2f} us/event,"
      f" in scripts {usec / events:.2f} us/event, {calls / events:.2f} commands/event"
      + (f", {int(ir) / events:,.0f} instructions/event" if int(ir) else ""))
' "$REV" "$B" "$N" "$before" "$after" "$ir"
done
