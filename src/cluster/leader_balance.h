// The leader balancer's rule for one shard: where its leadership should be, given what its
// replicas report. Each shard has a preferred leader (its first data voter: placements spread
// those evenly over the workers); leadership goes back to it once it is caught up, and off a
// leader whose own store is behind (installing a copy: its reads and keyed writes wait) to any
// data replica that is caught up. The control node's tick asks this of every shard and sends
// the transfers (with a backoff per shard); pure, no I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "cluster/shard_view.h"

namespace das::cluster {

// The node to hand `view`'s leadership to, if it should move: none while the shard has no
// leader, while the witness leads (it hands its shards on by itself, control/witness.h), or
// while the leader is where it should be. `data_voters`: the shard's data replicas, preferred
// leader first.
std::optional<uint64_t> LeaderTarget(const ShardView& view,
                                     const std::vector<uint64_t>& data_voters);

}  // namespace das::cluster
