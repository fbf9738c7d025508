#!/usr/bin/env bash
# Clang's thread-safety analysis (src/common/mutex.h) over every source file under src/: each is
# compiled with clang, syntax only, as the build compiles it (its command in the build's
# compile_commands.json), with -Wthread-safety's warnings as errors and every other warning off.
# Usage: scripts/check-thread-safety.sh [BUILD_DIR] [FILE...] (default: build, every .cc file
# of src/). Exit 0: clean; 1: the analysis' errors printed, or a file that does not compile.
# scripts/test.sh runs it after the build; tests/scripts/thread_safety_test.sh checks that it
# fails on a rule broken.
# Needs clang++-14 (scripts/setup.sh installs it; CLANG=... for another).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="${1:-$ROOT/build}"
shift || true
CLANG="${CLANG:-clang++-14}"
DB="$BUILD/compile_commands.json"
command -v "$CLANG" >/dev/null || { echo "check-thread-safety: $CLANG not found" >&2; exit 1; }
[[ -f $DB ]] || { echo "check-thread-safety: no $DB (build first)" >&2; exit 1; }

# The build's commands for src/ (JSON strings unescaped), each turned below into clang's
# syntax-only run: the compiler replaced, -o and -c dropped, g++'s flags dropped. A file named
# that the build does not compile (a test's made-up file) gets a src/ file's command.
all=$(grep '"command"' "$DB" |
  sed -E 's/^ *"command": "(.*)",?$/\1/; s/\\\\/\x01/g; s/\\"/"/g; s/\x01/\\/g' |
  grep -E -- " -c $ROOT/src/.*\.cc$" || true)
[[ -n $all ]] || { echo "check-thread-safety: no source file of src/ in $DB" >&2; exit 1; }
if (($# == 0)); then
  commands=$all
else
  commands=""
  for file in "$@"; do
    file=$(realpath "$file")
    command=$(awk -v f=" -c $file" 'substr($0, length($0) - length(f) + 1) == f' <<<"$all" |
      head -1)
    [[ -n $command ]] || command="$(head -1 <<<"$all" | sed -E 's# -c [^ ]+$##') -c $file"
    commands+="$command"$'\n'
  done
  commands=${commands%$'\n'}
fi
[[ -n $commands ]] || { echo "check-thread-safety: no source file in $DB" >&2; exit 1; }

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
jobs_max=$(nproc)
i=0
while IFS= read -r command; do
  i=$((i + 1))
  command=$(sed -E "s#^[^ ]+ #$CLANG #; s# -o [^ ]+# #; s# -c # #; s# -W[a-z=-]+##g; s# -O[0-9s]?##; s# -g # #" <<<"$command")
  (eval "$command -fsyntax-only -Wno-everything -Wthread-safety -Werror=thread-safety" \
    >"$out/$i.log" 2>&1 || echo "$command" >"$out/$i.failed") &
  while (($(jobs -rp | wc -l) >= jobs_max)); do wait -n || true; done
done <<<"$commands"
wait
if compgen -G "$out/*.failed" >/dev/null; then
  for f in "$out"/*.failed; do cat "${f%.failed}.log"; done
  echo "check-thread-safety: $(ls "$out"/*.failed | wc -l) of $i files failed" >&2
  exit 1
fi
echo "check-thread-safety: $i files clean"
