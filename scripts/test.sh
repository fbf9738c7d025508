#!/usr/bin/env bash
# Installs what is missing, builds everything, checks the locking rules (clang's thread-safety
# analysis), and runs every test (unit and integration) with ctest. Exits non-zero if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh build -DDAS_BUILD_TESTS=ON -DDAS_BUILD_BENCH=ON
# Clang's thread-safety analysis over src/ (the build's flags, so after it).
scripts/check-thread-safety.sh build
cd build
ctest --output-on-failure --timeout 600 -j "${TEST_JOBS:-2}"
