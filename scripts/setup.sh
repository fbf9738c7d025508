#!/usr/bin/env bash
# Installs everything the project needs to build and test on Debian 12 (bookworm), as root:
# Debian packages with pinned versions, and DuckDB 1.4.4 (libduckdb.so and duckdb.h) from the
# npm registry into .deps/duckdb. Idempotent: a second run installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages, pinned to the bookworm versions the project was built and tested with.
packages=(
  g++-12=12.2.0-14+deb12u1
  g++=4:12.2.0-3
  cmake=3.25.1-1
  ninja-build=1.11.1-2~deb12u1
  libboost1.81-dev=1.81.0-5+deb12u1
  libprotobuf-dev=3.21.12-3+deb12u1
  protobuf-compiler=3.21.12-3+deb12u1
  libxxhash-dev=0.8.1-1
  libspdlog-dev=1:1.10.0+ds-0.4
  libcli11-dev=2.1.2+ds-1
  libgtest-dev=1.12.1-0.2
  libgmock-dev=1.12.1-0.2
  libbenchmark-dev=1.7.1-1
  # Raft: libraft 0.22.1 from bookworm-backports (bookworm's own 0.15 predates fixes for safety
  # bugs Jepsen found), on libuv; liblz4 for its snapshot compression.
  libraft0=0.22.1-1~bpo12+1
  libraft-dev=0.22.1-1~bpo12+1
  libuv1-dev=1.44.2-1+deb12u1
  liblz4-dev=1.9.4-1
  # OpenSSL 3.0: the cluster secret's HMAC-SHA256 (internal HTTP and the raft handshake).
  libssl-dev=3.0.22-1~deb12u2
  # The openssl command: the TLS tests make their certificates with it.
  openssl=3.0.22-1~deb12u2
  # Metrics: prometheus-cpp's core library (registry, counters, histograms, text format).
  prometheus-cpp-dev=1.0.1-1
  libprometheus-cpp-core1.0=1.0.1-1
  # The clock tests: libfaketime skews a worker's wall clock (LD_PRELOAD), not its monotonic one.
  faketime=0.9.10-2.1
  libfaketime=0.9.10-2.1
  ca-certificates
)
# Test-only tools, which the Docker image's builder (it runs no tests) skips with
# SETUP_SKIP_BROWSER=1: headless Chromium for the web console's browser test (from
# bookworm-security, where Debian keeps it current), and clang 14 for the thread-safety analysis
# (scripts/check-thread-safety.sh; the build itself uses g++).
if [[ ${SETUP_SKIP_BROWSER:-0} != 1 ]]; then
  packages+=(chromium=156.0.8078.129-1~deb12u1 clang-14=1:14.0.6-12)
fi
# bookworm-backports, for libraft only: apt prefers bookworm's own packages (backports have a
# lower priority), so nothing else is taken from there. From the mirror the machine's own apt
# sources use for bookworm.
scripts/apt-backports.sh
# npm fetches DuckDB; a machine that already has Node.js with its own npm keeps it (Debian's
# npm package conflicts with the Node.js builds that bundle npm).
command -v npm >/dev/null || packages+=(npm=9.2.0~ds1-1)
missing=()
for p in "${packages[@]}"; do
  name=${p%%=*}
  want=${p#*=}
  have=$(dpkg-query -W -f='${Status} ${Version}' "$name" 2>/dev/null || true)
  if [[ $have != "install ok installed"* ]] || { [[ $p == *=* ]] && [[ $have != *" $want" ]]; }; then
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  if ! apt-get install -y -q --no-install-recommends "${missing[@]}"; then
    # A point release can replace a pinned version in the archive; the build is tested with the
    # pins above, but a newer bookworm patch release of the same package is the safe fallback.
    echo "setup: WARNING: a pinned version is no longer in the archive; installing the current" \
      "bookworm versions of: ${missing[*]%%=*}" >&2
    names=()
    for p in "${missing[@]%%=*}"; do
      # The raft packages must never fall back to bookworm's older libraft.
      if [[ $p == libraft* ]]; then names+=("$p/bookworm-backports"); else names+=("$p"); fi
    done
    apt-get install -y -q --no-install-recommends "${names[@]}"
  fi
fi

# DuckDB 1.4.4 LTS: the official libduckdb.so ships in @duckdb/node-bindings-linux-x64, the
# matching C header in duckdb@1.4.4. npm verifies each tarball's integrity hash.
duckdb_bindings=@duckdb/node-bindings-linux-x64@1.4.4-r.4
duckdb_headers=duckdb@1.4.4
dest=.deps/duckdb
stamp="$dest/.version"
if [[ ! -f $stamp ]] || [[ $(cat "$stamp") != "$duckdb_bindings $duckdb_headers" ]]; then
  echo "setup: fetching $duckdb_bindings and $duckdb_headers from npm"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "$duckdb_bindings" "$duckdb_headers" >/dev/null) ||
    { echo "setup: npm pack failed (see npm's error above)" >&2; exit 1; }
  mkdir -p "$tmp/b" "$tmp/h"
  tar -xzf "$tmp"/duckdb-node-bindings-linux-x64-*.tgz -C "$tmp/b" package/libduckdb.so
  tar -xzf "$tmp"/duckdb-1.4.4.tgz -C "$tmp/h" package/src/duckdb/src/include/duckdb.h
  rm -rf "$dest"
  mkdir -p "$dest/lib" "$dest/include"
  cp "$tmp/b/package/libduckdb.so" "$dest/lib/"
  cp "$tmp/h/package/src/duckdb/src/include/duckdb.h" "$dest/include/"
  echo "$duckdb_bindings $duckdb_headers" >"$stamp"
fi
echo "setup: ok"
