#!/usr/bin/env bash
# A/B comparison of two builds of the binaries on one workload, interleaved in one run so that
# the machine's noise hits both alike: rounds of A then B, each on a fresh cluster (2 workers +
# control node, default flags, free loopback ports, data in a temp dir), then the median of each
# side and the ratio B/A.
#
#   bench/compare.sh A_BIN_DIR B_BIN_DIR [das-bench arguments...]
#   e.g. bench/compare.sh /tmp/das-base/build-bench/src/bin build-bench/src/bin batch -c 4 -b 10000 -d 10
#
# The load generator is always this tree's build-bench/bench/das-bench (one client for both).
# Env: ROUNDS (3). Prints one line per run and a final "COMPARE a_median=... b_median=...
# ratio=..." on rows/s. Processes are killed by PID on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
A_BIN="$(cd "$1" && pwd)"
B_BIN="$(cd "$2" && pwd)"
shift 2
BENCH="$ROOT/build-bench/bench/das-bench"
ROUNDS="${ROUNDS:-3}"
TMP="$(mktemp -d /tmp/das-compare.XXXXXX)"
PIDS=()

cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# run_once BIN_DIR LABEL: a fresh cluster from BIN_DIR, one das-bench run, the rows/s it saw.
run_once() {
  local bin="$1" dir="$TMP/$2" w1 w2 control pids=() pid
  shift 2
  mkdir -p "$dir"
  w1="$(free_port)" w2="$(free_port)" control="$(free_port)"
  "$bin/worker" --id 1 --port "$w1" --data-dir "$dir/w1" >"$dir/w1.log" 2>&1 &
  pids+=($!)
  "$bin/worker" --id 2 --port "$w2" --data-dir "$dir/w2" >"$dir/w2.log" 2>&1 &
  pids+=($!)
  "$bin/distributed_analytics_system" --port "$control" \
    --workers "127.0.0.1:$w1,127.0.0.1:$w2" >"$dir/control.log" 2>&1 &
  pids+=($!)
  PIDS+=("${pids[@]}")
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$control/health?format=json" 2>/dev/null | grep -q '"ok"' && break
    sleep 0.2
  done
  "$BENCH" "$@" --port "$control" >"$dir/bench.out" 2>&1 || true
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  grep '^SUMMARY' "$dir/bench.out" | tr ' ' '\n' | awk -F= '$1 == "rows_per_s" { print $2 }' || true
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

a_all=() b_all=()
for round in $(seq 1 "$ROUNDS"); do
  a="$(run_once "$A_BIN" "a$round" "$@")"
  b="$(run_once "$B_BIN" "b$round" "$@")"
  echo "round $round: A ${a:-failed} rows/s, B ${b:-failed} rows/s"
  a_all+=("${a:-0}")
  b_all+=("${b:-0}")
done
a_med="$(printf '%s\n' "${a_all[@]}" | median)"
b_med="$(printf '%s\n' "${b_all[@]}" | median)"
echo "COMPARE workload='$*' rounds=$ROUNDS a_median=$a_med b_median=$b_med" \
  "ratio=$(awk -v a="$a_med" -v b="$b_med" 'BEGIN { printf "%.3f", (a > 0) ? b / a : 0 }')"
