// Checks shared by the tests of replicated clusters (replication, membership): writes to every
// shard retried until they succeed, and analytics polled until complete, then compared exactly.
// Thread-safety: plain functions.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <string>

#include "support/api.h"

namespace das::it {

// Bounds for liveness only (an answer that never comes); failover times are measured by
// bench/, not asserted.
inline constexpr auto kRecoveryBound = std::chrono::seconds(60);

// One keyed single-row batch per shard (of `shards`), retried until 200 (a retry of a key
// never stores twice). Adds what was stored to `expected`.
testing::AssertionResult WriteEveryShard(int port, int shards, const std::string& round,
                                         double value, Expected& expected);

// Polls /analytics until it says it is complete; that answer must be exact and count
// `total_nodes`. A partial answer while an election runs is allowed.
testing::AssertionResult ExpectCompleteAndExact(int port, const Expected& expected,
                                                uint32_t total_nodes);

}  // namespace das::it
