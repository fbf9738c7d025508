#!/usr/bin/env bash
# The long churn of bench/RESULTS.md: the integration churn tests (tests/integration/
# replication_test.cc, ReplicationChurnTest.*) with ROUNDS kills instead of 3: six writers send
# keyed batches, each retried until 200, while a random node is killed (SIGKILL) and restarted
# every round: with 3 workers, any worker; with 2 workers, either worker or the control node
# (the witness). Afterwards every acknowledged row must be there exactly once, complete and
# exact, on every worker. Uses the test build (build/, scripts/build.sh with tests).
# Env: ROUNDS (40).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ninja -C "$ROOT/build" it_replication_test >/dev/null
start=$SECONDS
DAS_CHURN_ROUNDS="${ROUNDS:-40}" "$ROOT/build/tests/integration/it_replication_test" \
  --gtest_filter='ReplicationChurnTest.*'
echo "soak: ${ROUNDS:-40} rounds per test, $((SECONDS - start)) s in all"
