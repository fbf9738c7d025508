#!/usr/bin/env bash
# Adds bookworm-backports to apt's sources, from the mirror this machine already uses for
# bookworm (its own /etc/apt/sources.list and sources.list.d, one-line or deb822 format), so a
# machine behind a company mirror or a cache keeps using it. Does nothing when a
# bookworm-backports source is configured already. Used by setup.sh and the Dockerfile.
#
#   scripts/apt-backports.sh            # writes /etc/apt/sources.list.d/das-bookworm-backports.list
#   scripts/apt-backports.sh --print    # prints the mirror it would use, writes nothing
set -euo pipefail

# APT_ETC: apt's configuration directory (tests point it elsewhere).
etc=${APT_ETC:-/etc/apt}
sources=("$etc/sources.list" "$etc"/sources.list.d/*.list "$etc"/sources.list.d/*.sources)
target=$etc/sources.list.d/das-bookworm-backports.list

# The first URI serving suite "bookworm" of Debian's main archive (not -security, not -updates).
bookworm_mirror() {
  local f
  for f in "${sources[@]}"; do
    [[ -f $f ]] || continue
    if [[ $f == *.sources ]]; then
      # deb822 stanzas: blank-line separated; Types, URIs and Suites fields.
      awk '
        function flush() {
          if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ / bookworm /) { split(uris, u, " "); print u[1]; found = 1; exit }
          types = ""; uris = ""; suites = ""
        }
        /^[ \t]*$/ { flush(); next }
        /^#/ { next }
        tolower($1) == "types:" { $1 = ""; types = $0 }
        tolower($1) == "uris:" { $1 = ""; uris = $0; sub(/^ +/, "", uris) }
        tolower($1) == "suites:" { $1 = ""; suites = $0 }
        END { if (!found) flush() }
      ' "$f"
    else
      # One-line entries: deb [options] URI suite components...
      awk '
        /^[ \t]*deb[ \t]/ {
          i = 2
          if ($i ~ /^\[/) { while ($i !~ /\]$/ && i < NF) i++; i++ }
          if ($(i + 1) == "bookworm") { print $i; exit }
        }
      ' "$f"
    fi
  done | head -n 1
}

mirror=$(bookworm_mirror)
if [[ -z $mirror ]]; then
  echo "apt-backports: no apt source for bookworm in ${sources[*]}; add one, or add" \
    "bookworm-backports yourself" >&2
  exit 1
fi
if [[ ${1:-} == --print ]]; then
  echo "$mirror"
  exit 0
fi
if grep -rqs "bookworm-backports" "${sources[@]}"; then
  exit 0
fi
echo "deb ${mirror%/} bookworm-backports main" >"$target"
echo "apt-backports: added bookworm-backports from $mirror"
