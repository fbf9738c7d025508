#!/usr/bin/env bash
# Installs what is missing (scripts/setup.sh), then configures and builds with CMake + Ninja.
#   scripts/build.sh [BUILD_DIR] [extra cmake args...]    (default BUILD_DIR: build)
# BUILD_TYPE=Release|RelWithDebInfo|Debug (default RelWithDebInfo).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
build_dir=${1:-build}
shift || true
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" "$@" >/dev/null
ninja -C "$build_dir"
