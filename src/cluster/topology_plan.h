// The placement of replicated shards (docs/architecture.md): S shards over contiguous slot
// ranges, each a raft group of R voters: min(R, N) data replicas on distinct workers (shard s on
// workers s, s+1, ... mod N in --workers order) and, when that is one short of R, the control
// node's witness. The preferred leader of shard s is worker s mod N, so leaders spread evenly.
// Pure functions, no I/O.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "das/v1/internal.pb.h"

namespace das::cluster {

inline constexpr uint32_t kMaxShards = 256;

// kInvalidArgument naming why, for a factor or shard count this cluster cannot honour: R even
// (it tolerates no more losses than R - 1), R more than one above the workers (one witness at
// most), shards outside 1..kMaxShards.
Status CheckReplication(uint32_t replication_factor, uint32_t shards, size_t workers);
bool NeedsWitness(uint32_t replication_factor, size_t workers);

// REQUIRES: CheckReplication passed; `workers` carry their ids (1..N, in --workers order) and
// both addresses.
internal::v1::Topology PlanTopology(const std::vector<internal::v1::NodeAddress>& workers,
                                    uint32_t replication_factor, uint32_t shards,
                                    const std::string& witness_raft_address, uint64_t cluster_id);

// slot -> shard, kSlots entries.
// A replica is caught up when its applied index is within this many entries of the leader's
// commit index (docs/architecture.md: "within a few entries").
inline constexpr uint64_t kCaughtUpEntries = 16;

// Whether a replica can serve its shard's reads and keyed writes at once: it holds the entries
// up to within kCaughtUpEntries of the commit index, and its store has them too or has them
// queued behind no more than its commit pause (a store installing a copy does not).
bool CaughtUp(const internal::v1::ReplicaHealth& report, uint64_t commit_index);

std::vector<uint32_t> ShardOfSlot(const internal::v1::Topology& topology);
// The same for `shards` shards as PlanTopology places them (before any topology exists).
std::vector<uint32_t> ShardOfSlot(uint32_t shards);

// The smallest number of workers a replication factor can be honoured with (R - 1 with the
// witness; 1 for R = 1).
size_t MinWorkers(uint32_t replication_factor);

}  // namespace das::cluster
