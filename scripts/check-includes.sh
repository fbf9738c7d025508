#!/usr/bin/env bash
# Fails when a file under src/ includes across an arrow that src/README.md does not draw: each
# folder may include its own headers and those of the folders listed for it below (the same
# table as the drawing), the generated protobuf headers ("das/...") where listed, and only
# src/raft includes raft.h or uv.h, only src/storage and src/query include duckdb.h.
# Usage: scripts/check-includes.sh [SRC_DIR] (default: the repository's src). Exit 0: clean;
# 1: each crossing printed as FILE:LINE: folder -> folder (include).
set -euo pipefail
SRC="${1:-$(cd "$(dirname "$0")/.." && pwd)/src}"

declare -A ALLOWED=(
  [common]=""
  [http]="common"
  [raft]="common"
  [storage]="common"
  [meta]="common"
  [rpc]="common http das"
  [metrics]="common http das"
  [replica]="common http rpc raft storage das"
  [query]="common http rpc storage das"
  [worker]="common http rpc raft storage replica query metrics das"
  [cluster]="common rpc das"
  [control]="common http rpc raft meta metrics cluster query das"
  [load]="common http storage das"
  [bin]="*"
)
# Headers of another folder a folder may include one by one (not the whole folder).
declare -A ONLY=(
  [load:storage]="storage/duckdb_util.h"
)

failures=0
report() {
  echo "$1" >&2
  failures=$((failures + 1))
}

for dir in "$SRC"/*/; do
  folder="$(basename "$dir")"
  [[ -n "${ALLOWED[$folder]+set}" ]] ||
    report "$folder/: folder '$folder' is not in the drawing (src/README.md, scripts/check-includes.sh)"
done

include_re='^[0-9]+:[[:space:]]*#[[:space:]]*include[[:space:]]*([<"])([^">]+)[">]'
while IFS= read -r hit; do
  file="${hit%%:*}"
  rest="${hit#*:}"
  line="${rest%%:*}"
  rel="${file#"$SRC"/}"
  folder="${rel%%/*}"
  [[ -n "${ALLOWED[$folder]+set}" ]] || continue # reported above
  [[ "$rest" =~ $include_re ]] || continue
  bracket="${BASH_REMATCH[1]}"
  target="${BASH_REMATCH[2]}"
  case "$bracket$target" in
    "<raft.h" | "<raft/"*.h | "<uv.h" | '"uv.h')
      [[ "$folder" == raft ]] || report "$rel:$line: $folder includes $target (only src/raft may)"
      continue ;;
    "<duckdb.h" | '"duckdb.h')
      [[ "$folder" == storage || "$folder" == query ]] ||
        report "$rel:$line: $folder includes duckdb.h (only src/storage and src/query may)"
      continue ;;
  esac
  [[ "$bracket" == '"' && "$target" == */* ]] || continue
  to="${target%%/*}"
  [[ -d "$SRC/$to" || "$to" == das ]] || continue # a library's header, not one of ours
  allowed=" ${ALLOWED[$folder]} "
  [[ "$to" == "$folder" || "$allowed" == " * " ]] && continue
  if [[ "$allowed" != *" $to "* ]]; then
    report "$rel:$line: $folder -> $to ($target): not an arrow of src/README.md"
  elif [[ -n "${ONLY[$folder:$to]+set}" && " ${ONLY[$folder:$to]} " != *" $target "* ]]; then
    report "$rel:$line: $folder -> $target: only ${ONLY[$folder:$to]} of $to"
  fi
done < <(grep -rnE '^[[:space:]]*#[[:space:]]*include[[:space:]]*["<]' "$SRC" \
  --include='*.h' --include='*.cc' --include='*.c' | sort)

if [[ "$failures" -gt 0 ]]; then
  echo "check-includes: $failures include(s) cross an arrow src/README.md does not draw" >&2
  exit 1
fi
echo "check-includes: every include of $SRC follows src/README.md"
