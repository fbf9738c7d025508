#!/usr/bin/env bash
# Security's cost on the insert path, side by side in one run: single-row inserts (das-bench
# insert, C=64, kept-alive connections) against the same cluster configuration started in each
# of MODES: "plain" (no security), "secret" (--cluster-secret-file on every node: every internal
# request signed and checked) and "tls" (--tls-cert/--tls-key on the public port, an EC P-256
# certificate made here by openssl), alternated ROUNDS times so that the machine's noise falls
# on all. Configurations: r1 (2 workers, unreplicated)
# and r3w (2 workers + the control node as witness, the default). Then the cost of a TLS
# connection itself: das-bench insert with -c 64 and --max-requests 64 at once is dominated by
# the 64 handshakes. Processes run on free loopback ports with data in a temp dir and are
# stopped by PID on exit.
# Env: DURATION (10), ROUNDS (2), CONFIGS ("r1 r3w"), MODES ("plain secret tls"), KEEP=1 keeps
# the temp dir.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="$ROOT/build-bench"
DURATION="${DURATION:-10}"
ROUNDS="${ROUNDS:-2}"
CONFIGS="${CONFIGS:-r1 r3w}"
MODES="${MODES:-plain secret tls}"
# shellcheck source=bench/common.sh
source "$ROOT/bench/common.sh"
bench_init das-tls-bench
summary() { grep '^SUMMARY' "$1" | tail -n 1; }

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
  -keyout "$TMP/key.pem" -out "$TMP/cert.pem" >/dev/null 2>&1
head -c 32 /dev/urandom | base64 >"$TMP/cluster-secret"

# start_cluster NAME WORKERS R MODE: fresh data dirs under $TMP/NAME.
start_cluster() {
  local name="$1" n="$2" r="$3" mode="$4" dir="$TMP/$1" list="" flags=() curl_flags=()
  local scheme=http secret=()
  [[ "$mode" == secret ]] && secret=(--cluster-secret-file "$TMP/cluster-secret")
  mkdir -p "$dir"
  WPID=()
  for id in $(seq 1 "$n"); do
    local port raft
    port="$(free_port)"
    raft="$(free_port)"
    "$BUILD/src/bin/worker" --id "$id" --port "$port" --raft-port "$raft" \
      --data-dir "$dir/worker-$id" "${secret[@]}" >>"$dir/worker-$id.log" 2>&1 &
    WPID[$id]=$!
    PIDS+=($!)
    list+="${list:+,}127.0.0.1:$port"
  done
  if [[ "$mode" == tls ]]; then
    flags=(--tls-cert "$TMP/cert.pem" --tls-key "$TMP/key.pem")
    curl_flags=(--cacert "$TMP/cert.pem")
    scheme=https
  fi
  CONTROL_PORT="$(free_port)"
  "$BUILD/src/bin/distributed_analytics_system" --port "$CONTROL_PORT" --workers "$list" \
    --replication-factor "$r" --data-dir "$dir/control" --raft-port "$(free_port)" \
    "${flags[@]}" "${secret[@]}" >"$dir/control.log" 2>&1 &
  CONTROL_PID=$!
  PIDS+=($!)
  for _ in $(seq 1 300); do
    if curl -fsS "${curl_flags[@]}" "$scheme://127.0.0.1:$CONTROL_PORT/health?format=json" \
      2>/dev/null | grep -q '"status":"ok"'; then
      return 0
    fi
    sleep 0.1
  done
  echo "cluster $name did not become ok" >&2
  tail -n 20 "$dir"/*.log >&2
  exit 1
}

stop_cluster() {
  for pid in "$CONTROL_PID" "${WPID[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "$CONTROL_PID" "${WPID[@]}"; do wait "$pid" 2>/dev/null || true; done
}

for config in $CONFIGS; do
  case "$config" in
    r1) n=2 r=1 ;;
    r3w) n=2 r=3 ;;
    *) echo "unknown config $config" >&2; exit 2 ;;
  esac
  for round in $(seq 1 "$ROUNDS"); do
    for mode in $MODES; do
      name="$config-round$round-$mode"
      start_cluster "$name" "$n" "$r" "$mode"
      ca=()
      [[ "$mode" == tls ]] && ca=(--tls-ca "$TMP/cert.pem")
      "$BUILD/bench/das-bench" insert -c 64 -d "$DURATION" --port "$CONTROL_PORT" "${ca[@]}" \
        >"$TMP/$name.out" || true
      echo "$name insert: $(summary "$TMP/$name.out")"
      if [[ "$round" == 1 ]]; then
        "$BUILD/bench/das-bench" insert -c 64 --max-requests 64 -d 30 --port "$CONTROL_PORT" \
          "${ca[@]}" >"$TMP/$name.connect.out" || true
        echo "$name first-requests: $(summary "$TMP/$name.connect.out")"
      fi
      stop_cluster
    done
  done
done
