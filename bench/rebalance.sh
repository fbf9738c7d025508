#!/usr/bin/env bash
# The rebalance benchmark of bench/RESULTS.md (docs/operations.md, "Membership"), in one run: a replicated
# cluster of 2 workers + the control node as witness (16 shards), loaded with ROWS rows by
# das-bench load; then 10,000-row batches (das-bench batch, C=4) for DURATION seconds without a
# move (the baseline); then a third worker joins (--join) and the same batches run while the
# rebalancer moves a replica of every shard onto it (the witness's place) and spreads leaders.
# Prints the time from the join until /health says "balanced" and "ok", the rows the new worker
# holds then, and the insert rate during the move as a ratio of the baseline.
# Prints the bytes the moves copied too. Env: ROWS (10000000), DURATION (20), COPY_RATE (the
# workers' --copy-bytes-per-s; unset: the binary's default, 64 MiB/s; 0: no limit), BUILD
# (build-bench: a Release build made here if missing), WORKER_FLAGS (more flags for every
# worker, e.g. "--raft-snapshot-threshold 64 --raft-snapshot-trailing 64": logs compacted, so
# that every new replica starts from a copy), KEEP=1 keeps the temp dir. Processes run on free loopback ports with data in a temp
# dir; they are stopped by PID on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${BUILD:-$ROOT/build-bench}"
ROWS="${ROWS:-10000000}"
DURATION="${DURATION:-20}"
copy_rate=()
[[ -n "${COPY_RATE:-}" ]] && copy_rate=(--copy-bytes-per-s "$COPY_RATE")
read -r -a extra <<<"${WORKER_FLAGS:-}"
copy_rate+=("${extra[@]}")
# shellcheck source=bench/common.sh
source "$ROOT/bench/common.sh"
bench_init das-rebalance-bench

field() {  # field FILE KEY: the value of KEY=... on the SUMMARY line of FILE
  grep -s '^SUMMARY' "$1" | tail -n 1 | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k { print $2 }'
}
health() { curl -fsS "http://127.0.0.1:$CONTROL_PORT/health?format=json" 2>/dev/null || true; }

if [[ ! -x "$BUILD/src/bin/worker" ]]; then
  log "building Release in $BUILD"
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDAS_BUILD_TESTS=OFF >/dev/null
  ninja -C "$BUILD" >/dev/null
fi

CONTROL_PORT="$(free_port)"
workers=""
for id in 1 2; do
  port="$(free_port)"
  workers+="${workers:+,}127.0.0.1:$port"
  "$BUILD/src/bin/worker" --id "$id" --port "$port" --raft-port "$(free_port)" \
    --data-dir "$TMP/worker-$id" "${copy_rate[@]}" >"$TMP/worker-$id.log" 2>&1 &
  PIDS+=($!)
done
"$BUILD/src/bin/distributed_analytics_system" --port "$CONTROL_PORT" --workers "$workers" \
  --raft-port "$(free_port)" --data-dir "$TMP/control" >"$TMP/control.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 300); do
  health | grep -q '"status": *"ok"' && break
  sleep 0.2
done
health | grep -q '"status": *"ok"' || { echo "the cluster did not become healthy; logs in $TMP" >&2; exit 1; }

log "loading $ROWS rows"
"$BUILD/bench/das-bench" load --port "$CONTROL_PORT" --rows "$ROWS" >"$TMP/load.out"
log "baseline: 10,000-row batches for $DURATION s, no move"
"$BUILD/bench/das-bench" batch -c 4 -b 10000 -d "$DURATION" --port "$CONTROL_PORT" \
  >"$TMP/baseline.out"

log "worker 3 joins; the same batches while the rebalancer moves replicas onto it"
"$BUILD/bench/das-bench" batch -c 4 -b 10000 -d "$DURATION" --seed 7 --port "$CONTROL_PORT" \
  >"$TMP/during.out" &
BENCH=$!
start=$(date +%s.%N)
"$BUILD/src/bin/worker" --join "127.0.0.1:$CONTROL_PORT" --port "$(free_port)" \
  --raft-port "$(free_port)" --data-dir "$TMP/worker-3" "${copy_rate[@]}" \
  >"$TMP/worker-3.log" 2>&1 &
PIDS+=($!)
rows_of_3() {  # rows_of_3 HEALTH_JSON: worker 3's rows, or nothing while it is no member
  python3 -c 'import json, sys
h = json.load(sys.stdin)
print(next((w.get("rows", 0) for w in h.get("workers", []) if w["worker_id"] == 3), ""))' <<<"$1"
}
balanced=""
rows3=""
for _ in $(seq 1 6000); do
  h="$(health)"
  # Balanced counts once worker 3 is a member (before its join, the old map is balanced).
  if [[ -n "$(rows_of_3 "$h")" ]] && grep -q '"balanced": *true' <<<"$h" &&
    grep -q '"status": *"ok"' <<<"$h"; then
    balanced=$(date +%s.%N)
    rows3="$(rows_of_3 "$h")"
    break
  fi
  sleep 0.1
done
wait "$BENCH"
[[ -n "$balanced" ]] || { echo "the rebalancing did not finish in 600 s; logs in $TMP" >&2; exit 1; }
moves="$(health | python3 -c 'import json, sys; print(json.load(sys.stdin)["rebalance"].get("moves_done", 0))')"
copied="$(health | python3 -c 'import json, sys; print(json.load(sys.stdin)["rebalance"].get("bytes_copied", 0))')"
base="$(field "$TMP/baseline.out" rows_per_s)"
during="$(field "$TMP/during.out" rows_per_s)"
awk -v s="$start" -v e="$balanced" -v rows="$ROWS" -v r3="$rows3" -v b="$base" -v d="$during" \
  -v dur="$DURATION" -v moves="$moves" -v copied="$copied" -v rate="${COPY_RATE:-default}" 'BEGIN {
    printf "loaded %d rows; --copy-bytes-per-s %s; rebalanced onto worker 3 in %.1f s, %d moves (it then held %d rows), %.1f MiB copied\n", rows, rate, e - s, moves, r3, copied / 1048576
    printf "10,000-row batches: %.0f rows/s without a move, %.0f rows/s during the first %d s of it: ratio %.2f\n", b, d, dur, d / b
  }'
