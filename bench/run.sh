#!/usr/bin/env bash
# Builds Release in build-bench and runs every benchmark of bench/RESULTS.md in one go:
#   1. duckdb-ceiling (in-process DuckDB, 10M rows);
#   2. das-bench insert, C=64, 10 s          on a fresh cluster (2 workers + control node);
#   3. das-bench batch, B=10000, C=4, 10 s   on a fresh cluster;
#   4. das-bench analytics at exactly 1M and then exactly 10M rows, on a fresh cluster that
#      only `das-bench load` wrote to (every answer is checked against the exact count);
#   5. (if nginx is installed) das-bench insert, C=64, against nginx answering 204: the HTTP
#      ceiling of this client on this machine.
# Processes run on free loopback ports with data in a temp dir; they are killed by PID on exit.
# During 2 and 3 it counts, with `perf stat` when available, the workers' fsync/fdatasync calls
# (commits) and sendmsg calls (internal answers), and reads every process's CPU time.
# The cluster is unreplicated (--replication-factor 1, as these figures always were) unless
# REPLICATION_FACTOR says otherwise; bench/replication.sh compares the replicated setups.
# Env: DURATION (10), ROWS_LARGE (10000000), ANALYTICS_N (30), PHASES (default
# "ceiling insert batch analytics nginx"), WORKER_ARGS / CONTROL_ARGS (extra flags for the
# binaries, for experiments), PERF=1 records a CPU profile of the insert phase (perf record),
# KEEP=1 keeps the temp dir (logs, data).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=bench/nginx.sh
source "$ROOT/bench/nginx.sh"
BUILD="$ROOT/build-bench"
DURATION="${DURATION:-10}"
ROWS_SMALL=1000000
ROWS_LARGE="${ROWS_LARGE:-10000000}"
ANALYTICS_N="${ANALYTICS_N:-30}"
PHASES=" ${PHASES:-ceiling insert batch analytics nginx} "
read -r -a WORKER_EXTRA <<<"${WORKER_ARGS:-}"
read -r -a CONTROL_EXTRA <<<"${CONTROL_ARGS:-}"
# shellcheck source=bench/common.sh
source "$ROOT/bench/common.sh"
CLK_TCK="$(getconf CLK_TCK)"
bench_init das-bench-run

cpu_seconds() {  # user + system CPU seconds of a live process
  awk -v tck="$CLK_TCK" '{ printf "%.2f", ($14 + $15) / tck }' "/proc/$1/stat"
}

# Starts 2 workers and a control node with fresh data dirs under $TMP/$1; sets CONTROL_PORT,
# CONTROL_PID, WORKER_PIDS.
start_cluster() {
  local name="$1" dir="$TMP/$1" w1 w2
  mkdir -p "$dir"
  w1="$(free_port)"
  w2="$(free_port)"
  CONTROL_PORT="$(free_port)"
  WORKER_PIDS=()
  for id in 1 2; do
    local port="$w1"
    [[ "$id" == 2 ]] && port="$w2"
    "$BUILD/src/bin/worker" --id "$id" --port "$port" --data-dir "$dir/worker-$id" \
      --raft-port "$(free_port)" "${WORKER_EXTRA[@]}" >"$dir/worker-$id.log" 2>&1 &
    PIDS+=($!)
    WORKER_PIDS+=($!)
  done
  "$BUILD/src/bin/distributed_analytics_system" --port "$CONTROL_PORT" \
    --workers "127.0.0.1:$w1,127.0.0.1:$w2" --replication-factor "${REPLICATION_FACTOR:-1}" \
    --data-dir "$dir/control" --raft-port "$(free_port)" \
    "${CONTROL_EXTRA[@]}" >"$dir/control.log" 2>&1 &
  CONTROL_PID=$!
  PIDS+=($!)
  for _ in $(seq 1 100); do
    if curl -fsS "http://127.0.0.1:$CONTROL_PORT/health?format=json" 2>/dev/null | grep -q '"ok"'; then
      log "cluster $name up: control :$CONTROL_PORT (pid $CONTROL_PID), workers :$w1 :$w2 (pids ${WORKER_PIDS[*]})"
      return 0
    fi
    sleep 0.2
  done
  echo "cluster $name did not become healthy; logs in $dir" >&2
  tail -n 20 "$dir"/*.log >&2
  exit 1
}

stop_cluster() {
  local pid
  for pid in "$CONTROL_PID" "${WORKER_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "$CONTROL_PID" "${WORKER_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}

# Runs das-bench "$@" against the current cluster, with the CPU time of each process and (with
# perf) the workers' commit and answer counts around it; writes $TMP/<label>.out and .cpu.
measured_run() {
  local label="$1"
  shift
  local before_c before_1 before_2 perf_pid="" record_pid=""
  before_c="$(cpu_seconds "$CONTROL_PID")"
  before_1="$(cpu_seconds "${WORKER_PIDS[0]}")"
  before_2="$(cpu_seconds "${WORKER_PIDS[1]}")"
  if command -v perf >/dev/null; then
    perf stat -x, -e 'syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync,syscalls:sys_enter_sendmsg' \
      -p "${WORKER_PIDS[0]},${WORKER_PIDS[1]}" -o "$TMP/$label.perfstat" -- sleep $((DURATION + 2)) &
    perf_pid=$!
  fi
  if [[ "${PERF:-0}" == 1 && "$label" == insert ]]; then
    perf record -F 499 -g -p "$CONTROL_PID,${WORKER_PIDS[0]},${WORKER_PIDS[1]}" \
      -o "$TMP/insert.perf.data" -- sleep "$DURATION" 2>/dev/null &
    record_pid=$!
  fi
  "$BUILD/bench/das-bench" "$@" --port "$CONTROL_PORT" | tee "$TMP/$label.out"
  echo "control=$(awk -v a="$(cpu_seconds "$CONTROL_PID")" -v b="$before_c" 'BEGIN{printf "%.2f", a-b}')" \
    "worker1=$(awk -v a="$(cpu_seconds "${WORKER_PIDS[0]}")" -v b="$before_1" 'BEGIN{printf "%.2f", a-b}')" \
    "worker2=$(awk -v a="$(cpu_seconds "${WORKER_PIDS[1]}")" -v b="$before_2" 'BEGIN{printf "%.2f", a-b}')" \
    >"$TMP/$label.cpu"
  if [[ -n "$perf_pid" ]]; then wait "$perf_pid" || true; fi
  if [[ -n "$record_pid" ]]; then wait "$record_pid" || true; fi
}

field() {  # field FILE KEY: the value of KEY=... on the SUMMARY line of FILE
  grep -s '^SUMMARY' "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k { print $2 }'
}

perf_count() {  # perf_count LABEL EVENT
  [[ -f "$TMP/$1.perfstat" ]] || { echo "n/a"; return; }
  awk -F, -v e="$2" '$3 == e { print $1 }' "$TMP/$1.perfstat"
}

run_nginx() {
  local port dir="$TMP/nginx"
  port="$(free_port)"
  start_nginx "$dir" "$port"
  local nginx_pid=$NGINX_PID
  PIDS+=("$nginx_pid")
  "$BUILD/bench/das-bench" insert -c 64 -d "$DURATION" --http-only --port "$port" \
    | tee "$TMP/nginx.out"
  kill -TERM "$nginx_pid" 2>/dev/null || true
  wait "$nginx_pid" 2>/dev/null || true
}

main() {
  log "building Release in $BUILD"
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDAS_BUILD_TESTS=OFF >/dev/null
  ninja -C "$BUILD" >/dev/null

  if [[ "$PHASES" == *" ceiling "* ]]; then
    log "1. duckdb-ceiling (${ROWS_LARGE} rows)"
    "$BUILD/bench/duckdb-ceiling" --rows "$ROWS_LARGE" --small-rows "$ROWS_SMALL" \
      -n "$ANALYTICS_N" --dir "$TMP/ceiling" | tee "$TMP/ceiling.out"
    rm -rf "$TMP/ceiling"
  fi
  if [[ "$PHASES" == *" insert "* ]]; then
    log "2. insert, C=64, ${DURATION} s"
    start_cluster insert
    measured_run insert insert -c 64 -d "$DURATION"
    stop_cluster
  fi
  if [[ "$PHASES" == *" batch "* ]]; then
    log "3. batch, B=10000, C=4, ${DURATION} s"
    start_cluster batch
    measured_run batch batch -c 4 -b 10000 -d "$DURATION"
    stop_cluster
  fi
  if [[ "$PHASES" == *" analytics "* ]]; then
    run_analytics
  fi
  if [[ "$PHASES" == *" nginx "* ]] && command -v nginx >/dev/null; then
    log "5. HTTP ceiling: insert, C=64, ${DURATION} s against nginx (204)"
    run_nginx
  fi
  summary
}

run_analytics() {
  log "4. analytics at ${ROWS_SMALL} and ${ROWS_LARGE} rows"
  start_cluster analytics
  "$BUILD/bench/das-bench" load --rows "$ROWS_SMALL" --port "$CONTROL_PORT" | tee "$TMP/load1.out"
  "$BUILD/bench/das-bench" analytics -n "$ANALYTICS_N" --warmup 5 --expect-count "$ROWS_SMALL" \
    --port "$CONTROL_PORT" | tee "$TMP/analytics1.out"
  "$BUILD/bench/das-bench" load --rows $((ROWS_LARGE - ROWS_SMALL)) --seed 43 \
    --port "$CONTROL_PORT" | tee "$TMP/load2.out"
  "$BUILD/bench/das-bench" analytics -n "$ANALYTICS_N" --warmup 5 --expect-count "$ROWS_LARGE" \
    --port "$CONTROL_PORT" | tee "$TMP/analytics2.out"
  stop_cluster
}

summary() {
  # Figures of phases that did not run print empty.
  set +e
  local c="$TMP/ceiling.out" i="$TMP/insert.out" b="$TMP/batch.out"
  local a1="$TMP/analytics1.out" a2="$TMP/analytics2.out"
  echo
  echo "SUMMARY ($(date -u +%FT%TZ), $(nproc) cores)"
  printf '%-58s %s\n' "figure" "value"
  printf '%-58s %s\n' "duckdb: Appender, commits of 10k rows (rows/s)" "$(field "$c" append_rows_per_s)"
  printf '%-58s %s\n' "duckdb: single-row INSERT autocommit (tx/s)" "$(field "$c" insert_tps)"
  printf '%-58s %s\n' "duckdb: BEGIN+appender(1 row)+COMMIT (tx/s)" "$(field "$c" appender_tps)"
  printf '%-58s %s\n' "duckdb: avg(value) p50 at $(field "$c" small_rows) rows (ms)" "$(field "$c" small_avg_p50_ms)"
  printf '%-58s %s\n' "duckdb: worker aggregate p50 at $(field "$c" small_rows) rows (ms)" "$(field "$c" small_worker_p50_ms)"
  printf '%-58s %s\n' "duckdb: avg(value) p50 at $(field "$c" large_rows) rows (ms)" "$(field "$c" large_avg_p50_ms)"
  printf '%-58s %s\n' "duckdb: worker aggregate p50 at $(field "$c" large_rows) rows (ms)" "$(field "$c" large_worker_p50_ms)"
  printf '%-58s %s\n' "duckdb: same with plain sum() p50 at $(field "$c" large_rows) rows (ms)" "$(field "$c" large_plain_sum_p50_ms)"
  printf '%-58s %s\n' "insert C=64: acknowledged rows/s" "$(field "$i" rows_per_s)"
  printf '%-58s %s\n' "insert C=64: p50 / p90 / p99 / max (ms)" "$(field "$i" p50_ms) / $(field "$i" p90_ms) / $(field "$i" p99_ms) / $(field "$i" max_ms)"
  printf '%-58s %s\n' "insert C=64: failed requests" "$(field "$i" failed)"
  printf '%-58s %s\n' "insert C=64: CPU s (${DURATION} s run)" "$(cat "$TMP/insert.cpu") das-bench=$(field "$i" client_cpu_s)"
  if [[ -f "$TMP/insert.perfstat" ]]; then
    printf '%-58s %s\n' "insert C=64: worker commits (fsync+fdatasync) / answers" "$(( $(perf_count insert syscalls:sys_enter_fsync) + $(perf_count insert syscalls:sys_enter_fdatasync) )) / $(perf_count insert syscalls:sys_enter_sendmsg)"
  fi
  printf '%-58s %s\n' "batch B=10000 C=4: rows/s" "$(field "$b" rows_per_s)"
  printf '%-58s %s\n' "batch B=10000 C=4: requests/s, p50 / p99 (ms)" "$(field "$b" requests_per_s), $(field "$b" p50_ms) / $(field "$b" p99_ms)"
  printf '%-58s %s\n' "batch B=10000 C=4: CPU s (${DURATION} s run)" "$(cat "$TMP/batch.cpu") das-bench=$(field "$b" client_cpu_s)"
  printf '%-58s %s\n' "load (bulk, C=4): rows/s" "$(field "$TMP/load2.out" rows_per_s)"
  printf '%-58s %s\n' "analytics at $(field "$a1" count) rows: p50 / p99 / min / max (ms)" "$(field "$a1" p50_ms) / $(field "$a1" p99_ms) / $(field "$a1" min_ms) / $(field "$a1" max_ms)"
  printf '%-58s %s\n' "analytics at $(field "$a2" count) rows: p50 / p99 / min / max (ms)" "$(field "$a2" p50_ms) / $(field "$a2" p99_ms) / $(field "$a2" min_ms) / $(field "$a2" max_ms)"
  printf '%-58s %s\n' "analytics/duckdb avg p50 ratio at $(field "$a2" count) rows" "$(awk -v a="$(field "$a2" p50_ms)" -v b="$(field "$c" large_avg_p50_ms)" 'BEGIN{printf "%.2fx", a/b}')"
  if [[ -f "$TMP/nginx.out" ]]; then
    printf '%-58s %s\n' "nginx 204, insert C=64: requests/s, p50 / p99 (ms)" "$(field "$TMP/nginx.out" requests_per_s), $(field "$TMP/nginx.out" p50_ms) / $(field "$TMP/nginx.out" p99_ms)"
  fi
  if [[ -f "$TMP/insert.perf.data" ]]; then
    perf report -i "$TMP/insert.perf.data" --no-children --sort comm,dso --stdio -g none 2>/dev/null \
      | grep -v '^#' | grep -v '^$' | head -n 20
  fi
  return 0
}

main "$@"
