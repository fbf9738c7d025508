// A topology of one shard over every slot whose only voter is one worker: what the worker tests
// give a worker so that it holds a replica (the control node's part, without a control node).
#pragma once

#include <cstdint>
#include <string>

#include "common/hash.h"
#include "das/v1/internal.pb.h"

namespace das::worker {

inline internal::v1::TopologyRequest OneShardTopology(uint64_t worker, uint16_t raft_port,
                                                      uint64_t cluster_id) {
  internal::v1::TopologyRequest request;
  request.set_node_id(worker);
  internal::v1::Topology& topology = *request.mutable_topology();
  topology.set_cluster_id(cluster_id);
  topology.set_shards(1);
  topology.set_replication_factor(1);
  topology.set_epoch(1);
  internal::v1::NodeAddress& node = *topology.add_nodes();
  node.set_node_id(worker);
  node.set_http_address("127.0.0.1:1");
  node.set_raft_address("127.0.0.1:" + std::to_string(raft_port));
  internal::v1::ShardPlacement& shard = *topology.add_placements();
  shard.set_shard(0);
  shard.set_first_slot(0);
  shard.set_end_slot(kSlots);
  shard.add_voters(worker);
  shard.add_founders(worker);
  shard.set_preferred_leader(worker);
  return request;
}

}  // namespace das::worker
