#!/usr/bin/env bash
# Installs what is missing, builds, and runs the cluster in the foreground: the control node on
# 8080 and two workers on 8081 and 8082, with their data in ./data/worker-N. Ctrl-C stops all.
# PORT, WORKER1_PORT, WORKER2_PORT, DATA_DIR and LOG_LEVEL override the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_TYPE=${BUILD_TYPE:-Release} scripts/build.sh build-release \
  -DDAS_BUILD_TESTS=OFF -DDAS_BUILD_BENCH=OFF
bin=build-release/src/bin
data=${DATA_DIR:-./data}
p1=${WORKER1_PORT:-8081}
p2=${WORKER2_PORT:-8082}
export LOG_LEVEL=${LOG_LEVEL:-info}

pids=()
stop() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

"$bin/worker" --id 1 --port "$p1" --data-dir "$data/worker-1" &
pids+=($!)
"$bin/worker" --id 2 --port "$p2" --data-dir "$data/worker-2" &
pids+=($!)
"$bin/distributed_analytics_system" --port "${PORT:-8080}" \
  --workers "127.0.0.1:$p1,127.0.0.1:$p2" &
pids+=($!)
echo "cluster running: control http://127.0.0.1:${PORT:-8080}, workers :$p1 :$p2 (Ctrl-C stops)"
# Stop everything as soon as any node exits.
wait -n "${pids[@]}" || true
