#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with clang in build-fuzz (ASan and UBSan on every
# project library they link) and runs each for FUZZ_SECONDS (600) from its seed corpus in
# fuzz/corpus/<target>/. New inputs go to build-fuzz/corpus/<target>/, a crash to
# build-fuzz/crashes/<target>/ (the input, to add to the unit tests as a regression). Prints
# one line a target: runs, coverage, corpus size, and whether it found anything; exits 1 if any
# did. Installs clang-14 and its runtime (pinned, from Debian) when missing.
# Env: FUZZ_SECONDS (600), TARGETS ("http_request public_body internal_body raft_handshake"),
# JOBS (1: targets one after the other; 2: two at a time, on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS="${FUZZ_SECONDS:-600}"
TARGETS="${TARGETS:-http_request public_body internal_body raft_handshake}"
JOBS="${JOBS:-1}"

scripts/setup.sh
fuzz_packages=(clang-14=1:14.0.6-12 libclang-rt-14-dev=1:14.0.6-12)
missing=()
for p in "${fuzz_packages[@]}"; do
  have=$(dpkg-query -W -f='${Status} ${Version}' "${p%%=*}" 2>/dev/null || true)
  [[ $have == "install ok installed ${p#*=}" ]] || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "fuzz: installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 \
  -DDAS_BUILD_FUZZ=ON -DDAS_BUILD_TESTS=OFF -DDAS_BUILD_BENCH=OFF -DDAS_WERROR=OFF >/dev/null
ninja -C build-fuzz fuzz_targets

run_one() {
  local t="$1" corpus="build-fuzz/corpus/$1" crashes="build-fuzz/crashes/$1" log="build-fuzz/$1.log"
  mkdir -p "$corpus" "$crashes"
  local rc=0
  "build-fuzz/fuzz/${t}_fuzz" -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 \
    -artifact_prefix="$crashes/" -timeout=10 -rss_limit_mb=2048 "$corpus" "fuzz/corpus/$t" \
    >"$log" 2>&1 || rc=$?
  local runs cov
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 || echo "cov: ?")
  if ((rc == 0)); then
    echo "fuzz $t: ${FUZZ_SECONDS}s, $runs runs, $cov, corpus $(ls "$corpus" | wc -l) inputs: nothing found"
  else
    echo "fuzz $t: FOUND something (exit $rc): see $log and $crashes/"
    return 1
  fi
}

status=0
pids=()
for t in $TARGETS; do
  run_one "$t" &
  pids+=($!)
  if ((${#pids[@]} >= JOBS)); then
    wait "${pids[0]}" || status=1
    pids=("${pids[@]:1}")
  fi
done
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
exit "$status"
