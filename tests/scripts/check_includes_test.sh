#!/usr/bin/env bash
# scripts/check-includes.sh: the repository's src follows the drawing of src/README.md, and a
# made-up tree whose includes cross it fails, naming each crossing.
set -euo pipefail
script="$(dirname "$0")/../../scripts/check-includes.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$script" >/dev/null || fail "the repository's src crosses an arrow"

src=$work/src
mkdir -p "$src"/{common,storage,raft,control,worker,load,bin,replica}
echo '#include "common/status.h"' >"$src/storage/ok.cc"
echo '#include "raft/group.h"' >"$src/storage/bad.cc"        # storage knows no raft
echo '#include "worker/service.h"' >"$src/control/bad.cc"    # the control node, not the worker
echo '#include "storage/node_store.h"' >"$src/load/bad.cc"   # load: only duckdb_util.h
echo '#include "storage/duckdb_util.h"' >"$src/load/ok.cc"
echo '#include <raft.h>' >"$src/worker/bad.cc"               # libraft: src/raft only
echo '#include <duckdb.h>' >"$src/replica/bad.cc"            # DuckDB: storage and query only
echo '#include "worker/service.h"' >"$src/bin/ok.cc"         # bin wires everything
mkdir -p "$src/newfolder" && echo '' >"$src/newfolder/x.cc" # not in the drawing
if out=$("$script" "$src" 2>&1); then fail "crossings accepted: $out"; fi
for expected in "storage/bad.cc:1: storage -> raft" "control/bad.cc:1: control -> worker" \
  "load/bad.cc:1: load -> storage/node_store.h" "worker/bad.cc:1: worker includes raft.h" \
  "replica/bad.cc:1: replica includes duckdb.h" "newfolder/: folder 'newfolder'" \
  "6 include(s)"; do
  [[ "$out" == *"$expected"* ]] || fail "missing '$expected' in: $out"
done
for clean in storage/ok.cc load/ok.cc bin/ok.cc; do
  [[ "$out" != *"$clean"* ]] || fail "$clean reported: $out"
done
echo "ok"
