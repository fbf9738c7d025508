// Where a shard group's own configuration and the cluster map disagree, the group wins: a
// membership change the group committed just before the control node crashed (or before it
// saved the stage) is in the group, not in cluster.pb. Pure: the control node saves the state
// and tells the shards' leaders their replicas.
#pragma once

#include <string>
#include <vector>

#include "cluster/shard_view.h"
#include "das/v1/internal.pb.h"

namespace das::cluster {

// Makes each placement of `state` whose shard is not the one a move is changing take the
// voters its leader reports (`views`, one per shard): the voters the map has that the group
// keeps, in the map's order, then the group's others; its joining replicas cleared. A leader
// that reports no members, or a voter the topology does not know, changes nothing. Each change
// raises the epoch; returns a reason for each.
std::vector<std::string> FollowGroupConfigurations(internal::v1::ControlState& state,
                                                   const std::vector<ShardView>& views);

}  // namespace das::cluster
