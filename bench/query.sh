#!/usr/bin/env bash
# The query API's benchmark of bench/RESULTS.md (issue 9), in one run, side by side: a cluster
# (CONFIG: r3w, 2 workers with R = 3 and the control node as witness, the default; or r1) loaded
# with ROWS rows over KEYS keys by das-bench load, asked five questions N times each by
# das-query-bench cluster; then the cluster is stopped and in-process DuckDB (2 threads) asks the
# same questions over the very same rows (worker 1's shard files: with r3w it holds every shard).
# Processes run on free loopback ports with data in a temp dir; they are stopped by PID on exit.
# Env: ROWS (10000000), KEYS (100000), N (20), CONFIG (r3w), KEEP=1 keeps the temp dir.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="$ROOT/build-bench"
ROWS="${ROWS:-10000000}"
KEYS="${KEYS:-100000}"
N="${N:-20}"
CONFIG="${CONFIG:-r3w}"
# shellcheck source=bench/common.sh
source "$ROOT/bench/common.sh"
bench_init das-query-bench

case "$CONFIG" in
  r1) R=1 ;;
  r3w) R=3 ;;
  *) echo "CONFIG must be r1 or r3w" >&2; exit 2 ;;
esac

log "building Release in $BUILD"
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDAS_BUILD_TESTS=OFF >/dev/null
ninja -C "$BUILD" >/dev/null
log "machine: $(nproc) cores; $(uname -r)"

list="" WPIDS=()
for id in 1 2; do
  port="$(free_port)"
  "$BUILD/src/bin/worker" --id "$id" --port "$port" --raft-port "$(free_port)" \
    --data-dir "$TMP/worker-$id" >"$TMP/worker-$id.log" 2>&1 &
  PIDS+=($!) WPIDS+=($!)
  list+="${list:+,}127.0.0.1:$port"
done
CONTROL_PORT="$(free_port)"
"$BUILD/src/bin/distributed_analytics_system" --port "$CONTROL_PORT" --workers "$list" \
  --replication-factor "$R" --data-dir "$TMP/control" --raft-port "$(free_port)" \
  --query-deadline-ms 120000 >"$TMP/control.log" 2>&1 &
CONTROL_PID=$!
PIDS+=($!)
for _ in $(seq 1 300); do
  curl -fsS "http://127.0.0.1:$CONTROL_PORT/health?format=json" 2>/dev/null |
    grep -q '"status":"ok"' && break
  sleep 0.1
done
log "cluster $CONFIG up (control :$CONTROL_PORT); loading $ROWS rows over $KEYS keys"
"$BUILD/bench/das-bench" load --rows "$ROWS" --keys "$KEYS" -b 10000 -c 4 \
  --port "$CONTROL_PORT" >"$TMP/load.out"
grep '^SUMMARY' "$TMP/load.out" | tail -n 1
"$BUILD/bench/das-query-bench" cluster --port "$CONTROL_PORT" -n "$N" | tee "$TMP/cluster.out"
read -r from to < <(sed -n 's/^RANGE from_ms=\([0-9]*\) to_ms=\([0-9]*\).*/\1 \2/p' "$TMP/cluster.out")

for pid in "$CONTROL_PID" "${WPIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
for pid in "$CONTROL_PID" "${WPIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
if [[ "$CONFIG" == r1 ]]; then
  # Unreplicated: each worker holds half the rows; read both workers' stores.
  DUCK_DIR="$TMP"
else
  DUCK_DIR="$TMP/worker-1"
fi
"$BUILD/bench/das-query-bench" duckdb --data-dir "$DUCK_DIR" --from-ms "$from" --to-ms "$to" \
  -n "$N" | tee "$TMP/duckdb.out"

echo
echo "| question | cluster median ms | DuckDB median ms | cluster / DuckDB |"
echo "|---|---|---|---|"
for q in key_prefix time_range top10_by_sum per_minute quantiles; do
  c=$(sed -n "s/^SUMMARY mode=cluster query=$q .*median_ms=\([0-9.]*\).*/\1/p" "$TMP/cluster.out")
  d=$(sed -n "s/^SUMMARY mode=duckdb query=$q .*median_ms=\([0-9.]*\).*/\1/p" "$TMP/duckdb.out")
  echo "| $q | $c | $d | $(python3 -c "print(f'{$c / $d:.2f}x')") |"
done
