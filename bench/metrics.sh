#!/usr/bin/env bash
# What metrics cost the hot path: single-row inserts (das-bench insert, C=64) on a fresh
# replicated cluster (2 workers + the control node as witness, the default setup) with metrics
# on (the default) and with --no-metrics on every node, alternated ROUNDS times in one run so
# that the machine's noise falls on both alike; prints each run and the ratio of the medians.
# Env: DURATION (10 s per run), ROUNDS (3), REPLICATION_FACTOR (3), KEEP=1 keeps the temp dir.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="$ROOT/build-bench"
DURATION="${DURATION:-10}"
ROUNDS="${ROUNDS:-3}"
# shellcheck source=bench/common.sh
source "$ROOT/bench/common.sh"
bench_init das-bench-metrics

# start_cluster NAME FLAG...: 2 workers and a control node, each given FLAG...; sets
# CONTROL_PORT and CLUSTER_PIDS.
start_cluster() {
  local name="$1" dir="$TMP/$1" workers="" id port
  shift
  mkdir -p "$dir"
  CLUSTER_PIDS=()
  for id in 1 2; do
    port="$(free_port)"
    workers+="${workers:+,}127.0.0.1:$port"
    "$BUILD/src/bin/worker" --id "$id" --port "$port" --data-dir "$dir/worker-$id" \
      --raft-port "$(free_port)" "$@" >"$dir/worker-$id.log" 2>&1 &
    PIDS+=($!)
    CLUSTER_PIDS+=($!)
  done
  CONTROL_PORT="$(free_port)"
  "$BUILD/src/bin/distributed_analytics_system" --port "$CONTROL_PORT" --workers "$workers" \
    --replication-factor "${REPLICATION_FACTOR:-3}" --data-dir "$dir/control" \
    --raft-port "$(free_port)" "$@" >"$dir/control.log" 2>&1 &
  PIDS+=($!)
  CLUSTER_PIDS+=($!)
  for _ in $(seq 1 300); do
    if curl -fsS "http://127.0.0.1:$CONTROL_PORT/health?format=json" 2>/dev/null | grep -q '"ok"'; then
      return 0
    fi
    sleep 0.2
  done
  echo "cluster $name did not become healthy; logs in $dir" >&2
  exit 1
}

stop_cluster() {
  local pid
  for pid in "${CLUSTER_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${CLUSTER_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}

field() {  # field FILE KEY: the value of KEY=... on the SUMMARY line of FILE
  grep -s '^SUMMARY' "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k { print $2 }'
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

log "building Release in $BUILD"
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDAS_BUILD_TESTS=OFF >/dev/null
ninja -C "$BUILD" >/dev/null

for round in $(seq 1 "$ROUNDS"); do
  for mode in metrics no-metrics; do
    flags=()
    [[ "$mode" == no-metrics ]] && flags=(--no-metrics)
    start_cluster "$mode-$round" "${flags[@]}"
    "$BUILD/bench/das-bench" insert -c 64 -d "$DURATION" --port "$CONTROL_PORT" \
      >"$TMP/$mode-$round.out"
    stop_cluster
    printf '%-10s round %d: %8s rows/s  p50 %7s ms  p99 %7s ms\n' "$mode" "$round" \
      "$(field "$TMP/$mode-$round.out" rows_per_s)" "$(field "$TMP/$mode-$round.out" p50_ms)" \
      "$(field "$TMP/$mode-$round.out" p99_ms)"
  done
done
with="$(for r in $(seq 1 "$ROUNDS"); do field "$TMP/metrics-$r.out" rows_per_s; done | median)"
without="$(for r in $(seq 1 "$ROUNDS"); do field "$TMP/no-metrics-$r.out" rows_per_s; done | median)"
awk -v a="$with" -v b="$without" \
  'BEGIN { printf "median rows/s: metrics %.0f, no metrics %.0f: ratio %.3f (%+.1f%%)\n", a, b, a / b, (a / b - 1) * 100 }'
