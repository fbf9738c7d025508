#!/usr/bin/env bash
# Installs what is missing, builds everything, and runs every test (unit and integration)
# with ctest. Exits non-zero if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh build -DDAS_BUILD_TESTS=ON -DDAS_BUILD_BENCH=ON
cd build
ctest --output-on-failure --timeout 600 -j "${TEST_JOBS:-2}"
