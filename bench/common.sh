# What the bench scripts share (sourced, after `set -euo pipefail`): bench_init NAME makes the
# run's temp dir ($TMP, /tmp/NAME.XXXXXX) and stops every process in $PIDS on exit (SIGCONT
# first, for one left stopped, then SIGTERM, and waits), keeping $TMP when KEEP=1; log; free_port.

bench_init() {
  TMP="$(mktemp -d "/tmp/$1.XXXXXX")"
  PIDS=()
  trap bench_cleanup EXIT
}

bench_cleanup() {
  for pid in "${PIDS[@]}"; do kill -CONT "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [[ "${KEEP:-0}" == 1 ]]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
}

log() { echo "== $*" >&2; }

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
