#!/usr/bin/env bash
# Writes tests/data/v0-layout: the DuckDB files of the layout before one store per worker (a file
# per shard replica, shards/<shard>/shard.duckdb, and worker.duckdb unreplicated), as that build
# wrote them, for the migration tests (tests/unit/worker/migration_test.cc,
# tests/integration/migration_test.cc).
#   tests/data/make-v0-layout.sh BIN_DIR
# BIN_DIR holds the old build's binaries (worker, distributed_analytics_system); the files in
# the repository were written by commit fb97e28 (Release). Runs two small clusters on free
# loopback ports, stops them with SIGTERM and copies the DuckDB files (not the raft logs).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN="$1"
OUT="$ROOT/tests/data/v0-layout"
# shellcheck source=bench/common.sh
source "$ROOT/bench/common.sh"
bench_init das-v0-layout

wait_ok() {
  for _ in $(seq 1 300); do
    curl -fsS "http://127.0.0.1:$1/health?format=json" 2>/dev/null | grep -q '"status":"ok"' &&
      return 0
    sleep 0.1
  done
  echo "cluster on :$1 not ok" >&2
  return 1
}

post() { curl -fsS -H 'Content-Type: application/json' -d "$2" "http://127.0.0.1:$1$3" >/dev/null; }

# Rows: k0..k9 single inserts with values 0.5 * i, and a keyed batch "v0-batch" of b0..b3 with
# values 100, 200, 300, 400: count 14, sum 1022.5.
seed() {
  for i in $(seq 0 9); do post "$1" "{\"partition_key\":\"k$i\",\"value\":$(python3 -c "print(0.5*$i)")}" /insert; done
  post "$1" '{"idempotency_key":"v0-batch","rows":[{"partition_key":"b0","value":100},{"partition_key":"b1","value":200},{"partition_key":"b2","value":300},{"partition_key":"b3","value":400}]}' /insert/batch
}

start_cluster() {  # NAME R
  local name=$1 r=$2 list="" wpids=()
  for id in 1 2; do
    local port
    port="$(free_port)"
    "$BIN/worker" --id "$id" --port "$port" --raft-port "$(free_port)" \
      --data-dir "$TMP/$name/worker-$id" >"$TMP/$name-worker-$id.log" 2>&1 &
    PIDS+=($!) wpids+=($!)
    list+="${list:+,}127.0.0.1:$port"
  done
  CONTROL="$(free_port)"
  "$BIN/distributed_analytics_system" --port "$CONTROL" --workers "$list" --shards 2 \
    --replication-factor "$r" --data-dir "$TMP/$name/control" --raft-port "$(free_port)" \
    >"$TMP/$name-control.log" 2>&1 &
  PIDS+=($!)
  CLUSTER_PIDS=("$!" "${wpids[@]}")
  wait_ok "$CONTROL"
}

stop_cluster() {
  for pid in "${CLUSTER_PIDS[@]}"; do kill -TERM "$pid"; done
  for pid in "${CLUSTER_PIDS[@]}"; do wait "$pid" || true; done
}

rm -rf "$OUT"
start_cluster r3w 3
seed "$CONTROL"
stop_cluster
for shard in 0 1; do
  mkdir -p "$OUT/r3w-worker-1/shards/$shard"
  cp "$TMP/r3w/worker-1/shards/$shard/shard.duckdb" "$OUT/r3w-worker-1/shards/$shard/"
done
start_cluster r1 1
seed "$CONTROL"
stop_cluster
for id in 1 2; do
  mkdir -p "$OUT/r1-worker-$id"
  cp "$TMP/r1/worker-$id/worker.duckdb" "$OUT/r1-worker-$id/"
done
find "$OUT" -type f -exec ls -l {} +
