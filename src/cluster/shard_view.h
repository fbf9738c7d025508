// What the control node knows of each replicated shard at one moment: every replica's own
// report (its node's health answer, the witness's), the leader with the highest term among
// them, and that leader's commit index. Built from one gather of health, only read after.
// Pure functions, no I/O.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "common/status.h"
#include "das/v1/das.pb.h"
#include "das/v1/internal.pb.h"

namespace das::cluster {

struct ShardView {
  std::map<uint64_t, internal::v1::ReplicaHealth> reports;  // by node id; absent: unreachable
  uint64_t leader = 0;                                      // 0: none reported
  uint64_t term = 0;                                        // the highest any replica reported
  uint64_t commit_index = 0;                                // the leader's
};

// Every worker's health answer by node id (a failed one says nothing).
using HealthMap = std::map<uint64_t, Result<internal::v1::WorkerHealthResponse>>;

// The views of shards 0..shards-1 from the workers' answers and the witness's own replicas
// (node rpc::kWitnessNodeId). A report of a shard past the last is ignored.
std::vector<ShardView> ShardViews(uint32_t shards, const HealthMap& health,
                                  const std::vector<internal::v1::ReplicaHealth>& witness);

// Whether every shard has a leader that holds data (the witness leads only until it hands off).
bool EveryShardLedByData(const std::vector<ShardView>& views);
// Whether some shard is led and every shard a replica reported on is led (a shard whose every
// replica is unreachable is not waited for).
bool EveryReachableShardLed(const std::vector<ShardView>& views);

// What /health says of one shard, from its placement and its view: its slots, leader, term and
// commit index; each voter's role, applied (stored) index and liveness ("unavailable" when it
// did not report); then the replicas being added ("joining", or "joining <role>" once they
// report). Healthy when a data replica leads (the witness leading takes writes but serves no
// read until it hands over) and every voter is live and caught up (CaughtUp).
das::v1::ShardStatus DescribeShard(const internal::v1::ShardPlacement& placement,
                                   const ShardView& view);

}  // namespace das::cluster
