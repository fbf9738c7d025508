#!/usr/bin/env bash
# The replication benchmark of bench/RESULTS.md, in one run, side by side:
#   nginx answering 204 (the HTTP ceiling of this client on this machine);
#   r1:  --replication-factor 1, 2 workers (the unreplicated system);
#   r3w: --replication-factor 3, 2 workers + the control node as witness (the default);
#   r3:  --replication-factor 3, 3 workers.
# For each cluster: single-row inserts at C=64 (rows/s, p50, p99), 10,000-row batches at C=4
# (rows/s, p50, p99), then (replicated) FAILOVER_TRIALS kills of worker 1 (the preferred leader
# of shard 0 and of every other shard it leads), each timed by das-failover from the kill until
# every shard took a write, worker 1 restarted and the cluster "ok" again between trials; then,
# on a fresh cluster loaded with ROWS rows by das-bench load, sequential /analytics, and what
# each process holds once the load settled (RSS, and its data directory on disk).
# First, in-process DuckDB over the same number of rows (duckdb-ceiling), the analytics target.
# Processes run on free loopback ports with data in a temp dir; they are stopped by PID on exit.
# nginx-light is installed (pinned, from Debian) when missing.
# LOAD_STEPS=N loads the ROWS in N steps and prints the footprint after each (memory as rows
# grow). Env: DURATION (10), ROWS (10000000), ANALYTICS_N (30), FAILOVER_TRIALS (5),
# CONFIGS ("r1 r3w r3"), KEEP=1 keeps the temp dir. BEFORE_WORKER=PATH adds nothing by itself:
# a config named NAME-before (e.g. "r3-before r3") runs NAME with that worker binary (an older
# build), and with BEFORE_CONTROL's control node if set, so that a change is measured side by
# side with what it changes, in one run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=bench/nginx.sh
source "$ROOT/bench/nginx.sh"
BUILD="$ROOT/build-bench"
DURATION="${DURATION:-10}"
ROWS="${ROWS:-10000000}"
ANALYTICS_N="${ANALYTICS_N:-30}"
FAILOVER_TRIALS="${FAILOVER_TRIALS:-5}"
CONFIGS="${CONFIGS:-r1 r3w r3}"
NGINX_VERSION=1.22.1-9+deb12u11
# shellcheck source=bench/common.sh
source "$ROOT/bench/common.sh"
bench_init das-replication-bench
summary() { grep '^SUMMARY' "$1" | tail -n 1; }

# start_worker DIR ID: (re)starts worker ID of the cluster in DIR on its recorded ports.
start_worker() {
  local dir="$1" id="$2"
  "${WORKER_BIN:-$BUILD/src/bin/worker}" --id "$id" --port "${WPORT[$id]}" --raft-port "${WRAFT[$id]}" \
    --data-dir "$dir/worker-$id" >>"$dir/worker-$id.log" 2>&1 &
  WPID[$id]=$!
  PIDS+=($!)
}

wait_ok() {
  for _ in $(seq 1 300); do
    if curl -fsS "http://127.0.0.1:$CONTROL_PORT/health?format=json" 2>/dev/null |
      grep -q '"status":"ok"'; then
      return 0
    fi
    sleep 0.1
  done
  echo "cluster in $1 did not become ok" >&2
  tail -n 20 "$1"/*.log >&2
  exit 1
}

# start_cluster NAME WORKERS R: fresh data dirs under $TMP/NAME.
start_cluster() {
  local name="$1" n="$2" r="$3" dir="$TMP/$1" list=""
  mkdir -p "$dir"
  WPORT=() WRAFT=() WPID=()
  for id in $(seq 1 "$n"); do
    WPORT[$id]="$(free_port)"
    WRAFT[$id]="$(free_port)"
    start_worker "$dir" "$id"
    list+="${list:+,}127.0.0.1:${WPORT[$id]}"
  done
  CONTROL_PORT="$(free_port)"
  "${CONTROL_BIN:-$BUILD/src/bin/distributed_analytics_system}" --port "$CONTROL_PORT" --workers "$list" \
    --replication-factor "$r" --data-dir "$dir/control" --raft-port "$(free_port)" \
    >"$dir/control.log" 2>&1 &
  CONTROL_PID=$!
  PIDS+=($!)
  wait_ok "$dir"
  log "cluster $name up: $n workers, replication factor $r, control :$CONTROL_PORT"
}

stop_cluster() {
  for pid in "$CONTROL_PID" "${WPID[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "$CONTROL_PID" "${WPID[@]}"; do wait "$pid" 2>/dev/null || true; done
}

# footprint DIR: RSS and disk of the control node and of each worker of the cluster in DIR.
footprint() {
  local out="control rss=$(rss "$CONTROL_PID") disk=$(disk "$1/control")"
  for id in "${!WPID[@]}"; do
    out+=" worker-$id rss=$(rss "${WPID[$id]}") disk=$(disk "$1/worker-$id")"
  done
  echo "$out"
}
rss() { awk '/VmRSS/ { printf "%.0fMiB", $2 / 1024 }' "/proc/$1/status"; }
# The data, not the worker's disk-ballast (space held back for a start on a full disk).
disk() { du -sm --exclude=disk-ballast "$1" | awk '{ print $1 "MiB" }'; }

config() { # config NAME -> "WORKERS R"
  case "$1" in
    r1) echo "2 1" ;;
    r3w) echo "2 3" ;;
    r3) echo "3 3" ;;
    *) echo "unknown config $1" >&2; exit 2 ;;
  esac
}

run_nginx() {
  if ! command -v nginx >/dev/null; then
    log "installing nginx-light $NGINX_VERSION (Debian)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      "nginx-light=$NGINX_VERSION" >/dev/null 2>&1 ||
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nginx-light >/dev/null
    systemctl disable --now nginx >/dev/null 2>&1 || true
  fi
  local port dir="$TMP/nginx"
  port="$(free_port)"
  start_nginx "$dir" "$port"
  local nginx_pid=$NGINX_PID
  PIDS+=("$nginx_pid")
  "$BUILD/bench/das-bench" insert -c 64 -d "$DURATION" --http-only --port "$port" \
    >"$TMP/nginx.out"
  kill -TERM "$nginx_pid" 2>/dev/null || true
  wait "$nginx_pid" 2>/dev/null || true
  echo "nginx-204 insert: $(summary "$TMP/nginx.out")"
}

RUNS=0
run_config() {
  local name="$1" n r
  # A config may run more than once in CONFIGS (alternated A/B): each run has its own dirs.
  RUNS=$((RUNS + 1))
  WORKER_BIN=""
  CONTROL_BIN=""
  if [[ "$name" == *-before ]]; then
    WORKER_BIN="${BEFORE_WORKER:?BEFORE_WORKER names the older worker binary}"
    CONTROL_BIN="${BEFORE_CONTROL:-}"
  fi
  read -r n r <<<"$(config "${name%-before}")"
  start_cluster "$name.$RUNS" "$n" "$r"
  "$BUILD/bench/das-bench" insert -c 64 -d "$DURATION" --port "$CONTROL_PORT" \
    >"$TMP/$name.insert.out" || true
  echo "$name insert: $(summary "$TMP/$name.insert.out")"
  "$BUILD/bench/das-bench" batch -c 4 -b 10000 -d "$DURATION" --port "$CONTROL_PORT" \
    >"$TMP/$name.batch.out" || true
  echo "$name batch: $(summary "$TMP/$name.batch.out")"
  "$BUILD/bench/das-bench" batch -c 4 -b 10000 -d "$DURATION" --unkeyed --port "$CONTROL_PORT" \
    >"$TMP/$name.batch-unkeyed.out" || true
  echo "$name batch-unkeyed: $(summary "$TMP/$name.batch-unkeyed.out")"
  if [[ "$r" != 1 ]]; then
    for trial in $(seq 1 "$FAILOVER_TRIALS"); do
      "$BUILD/bench/das-failover" --port "$CONTROL_PORT" --kill-pid "${WPID[1]}" \
        --trial "$trial" >"$TMP/$name.failover.$trial.out" || true
      wait "${WPID[1]}" 2>/dev/null || true
      echo "$name failover: $(summary "$TMP/$name.failover.$trial.out")"
      start_worker "$TMP/$name.$RUNS" 1
      wait_ok "$TMP/$name.$RUNS"
      # The balancer hands worker 1's shards back to it (at most every 5 s per shard).
      sleep 6
    done
  fi
  stop_cluster
  start_cluster "$name-analytics.$RUNS" "$n" "$r"
  local steps="${LOAD_STEPS:-1}" step
  for step in $(seq 1 "$steps"); do
    "$BUILD/bench/das-bench" load --rows "$((ROWS / steps))" -b 10000 -c 4 --port "$CONTROL_PORT" \
      >"$TMP/$name.load.out"
    echo "$name load: $(summary "$TMP/$name.load.out")"
    if [[ "$step" -lt "$steps" ]]; then
      sleep "${SETTLE:-15}"
      echo "$name footprint at $((step * ROWS / steps)) rows: $(footprint "$TMP/$name-analytics.$RUNS")"
    fi
  done
  "$BUILD/bench/das-bench" analytics -n "$ANALYTICS_N" --warmup 3 --expect-count "$ROWS" \
    --port "$CONTROL_PORT" >"$TMP/$name.analytics.out" || true
  echo "$name analytics: $(summary "$TMP/$name.analytics.out")"
  sleep "${SETTLE:-15}"
  echo "$name footprint: $(footprint "$TMP/$name-analytics.$RUNS")"
  stop_cluster
}

main() {
  log "building Release in $BUILD"
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDAS_BUILD_TESTS=OFF >/dev/null
  ninja -C "$BUILD" >/dev/null
  log "machine: $(nproc) cores; $(uname -r)"
  run_nginx
  "$BUILD/bench/duckdb-ceiling" --rows "$ROWS" --small-rows 1000000 -n "$ANALYTICS_N" \
    >"$TMP/ceiling.out"
  echo "duckdb-ceiling: $(grep -i 'avg' "$TMP/ceiling.out" | tail -n 2 | tr '\n' ' ')"
  for name in $CONFIGS; do run_config "$name"; done
}

main "$@"
