#!/usr/bin/env bash
# scripts/apt-backports.sh on made-up apt configurations: the backports source names the mirror
# the configuration uses for bookworm (one-line and deb822 formats), never another host.
set -euo pipefail
script="$(dirname "$0")/../../scripts/apt-backports.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# One-line format with options, the security archive listed first.
etc=$work/one-line && mkdir -p "$etc/sources.list.d"
printf '%s\n' 'deb http://cache.example/debian-security bookworm-security main' \
  'deb [arch=amd64 signed-by=/k.gpg] http://cache.example/debian bookworm main' >"$etc/sources.list"
APT_ETC=$etc "$script" >/dev/null
got=$(cat "$etc/sources.list.d/das-bookworm-backports.list")
[[ $got == "deb http://cache.example/debian bookworm-backports main" ]] || fail "one-line: $got"

# deb822 format, a trailing slash on the URI, bookworm as the second suite of a stanza.
etc=$work/deb822 && mkdir -p "$etc/sources.list.d"
printf '%s\n' 'Types: deb' 'URIs: http://corp.example/sec' 'Suites: bookworm-security' '' \
  'Types: deb deb-src' 'URIs: http://corp.example/deb/' 'Suites: bookworm-updates bookworm' \
  'Components: main' >"$etc/sources.list.d/debian.sources"
APT_ETC=$etc "$script" >/dev/null
got=$(cat "$etc/sources.list.d/das-bookworm-backports.list")
[[ $got == "deb http://corp.example/deb bookworm-backports main" ]] || fail "deb822: $got"

# Already configured: nothing written.
etc=$work/configured && mkdir -p "$etc/sources.list.d"
printf '%s\n' 'deb http://a.example/debian bookworm main' \
  'deb http://a.example/debian bookworm-backports main' >"$etc/sources.list"
APT_ETC=$etc "$script" >/dev/null
[[ ! -e $etc/sources.list.d/das-bookworm-backports.list ]] || fail "configured: wrote a second source"

# No bookworm source at all: a clear error, nothing written.
etc=$work/none && mkdir -p "$etc/sources.list.d"
printf '%s\n' 'deb http://a.example/debian trixie main' >"$etc/sources.list"
if APT_ETC=$etc "$script" 2>"$work/err"; then fail "none: succeeded"; fi
grep -q "no apt source for bookworm" "$work/err" || fail "none: $(cat "$work/err")"
[[ ! -e $etc/sources.list.d/das-bookworm-backports.list ]] || fail "none: wrote a source"
echo "apt-backports: all cases pass"
