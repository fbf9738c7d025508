#include "cluster/topology_plan.h"

#include "common/hash.h"
#include "rpc/topology.h"

namespace das::cluster {

bool NeedsWitness(uint32_t replication_factor, size_t workers) {
  return replication_factor > 1 && workers + 1 == replication_factor;
}

Status CheckReplication(uint32_t replication_factor, uint32_t shards, size_t workers) {
  const std::string r = std::to_string(replication_factor);
  if (replication_factor == 0) return InvalidArgument("--replication-factor must be at least 1");
  if (replication_factor % 2 == 0) {
    return InvalidArgument("--replication-factor " + r +
                           " is even: it survives no more losses than " +
                           std::to_string(replication_factor - 1) + "; use an odd factor");
  }
  if (replication_factor > workers + 1) {
    return InvalidArgument("--replication-factor " + r + " needs at least " +
                           std::to_string(replication_factor - 1) + " workers (" +
                           std::to_string(workers) +
                           " given): with fewer, a shard would lose its majority with its "
                           "first lost node, and the control node is at most one witness");
  }
  if (shards == 0 || shards > kMaxShards) {
    return InvalidArgument("--shards must be 1 to " + std::to_string(kMaxShards) + ", not " +
                           std::to_string(shards));
  }
  return Status::Ok();
}

internal::v1::Topology PlanTopology(const std::vector<internal::v1::NodeAddress>& workers,
                                    uint32_t replication_factor, uint32_t shards,
                                    const std::string& witness_raft_address, uint64_t cluster_id) {
  internal::v1::Topology topology;
  topology.set_cluster_id(cluster_id);
  topology.set_shards(shards);
  topology.set_replication_factor(replication_factor);
  for (const internal::v1::NodeAddress& worker : workers) *topology.add_nodes() = worker;
  const bool witness = NeedsWitness(replication_factor, workers.size());
  // Named even when no shard needs it yet, so that it can come back when the cluster shrinks
  // to two workers (docs/operations.md, "Membership").
  if (replication_factor >= 3) {
    internal::v1::NodeAddress* node = topology.add_nodes();
    node->set_node_id(rpc::kWitnessNodeId);
    node->set_raft_address(witness_raft_address);
  }
  const size_t n = workers.size();
  const size_t data_replicas = std::min<size_t>(replication_factor, n);
  for (uint32_t s = 0; s < shards; ++s) {
    internal::v1::ShardPlacement* p = topology.add_placements();
    p->set_shard(s);
    p->set_first_slot(static_cast<uint32_t>(uint64_t{s} * kSlots / shards));
    p->set_end_slot(static_cast<uint32_t>(uint64_t{s + 1} * kSlots / shards));
    for (size_t j = 0; j < data_replicas; ++j) p->add_voters(workers[(s + j) % n].node_id());
    if (witness) p->add_voters(rpc::kWitnessNodeId);
    p->set_preferred_leader(workers[s % n].node_id());
    *p->mutable_founders() = p->voters();
  }
  topology.set_epoch(1);
  return topology;
}

std::vector<uint32_t> ShardOfSlot(const internal::v1::Topology& topology) {
  std::vector<uint32_t> shard_of(kSlots, 0);
  for (const internal::v1::ShardPlacement& p : topology.placements()) {
    for (uint32_t slot = p.first_slot(); slot < p.end_slot() && slot < kSlots; ++slot) {
      shard_of[slot] = p.shard();
    }
  }
  return shard_of;
}

bool CaughtUp(const internal::v1::ReplicaHealth& report, uint64_t commit_index) {
  if (report.disk_full()) return false;  // it applies nothing until there is room
  if (report.stored_index() + kCaughtUpEntries >= commit_index) return true;
  return !report.restoring() && report.applied_index() + kCaughtUpEntries >= commit_index;
}

std::vector<uint32_t> ShardOfSlot(uint32_t shards) {
  std::vector<uint32_t> shard_of(kSlots, 0);
  for (uint32_t s = 0; s < shards; ++s) {
    const auto first = static_cast<uint32_t>(uint64_t{s} * kSlots / shards);
    const auto end = static_cast<uint32_t>(uint64_t{s + 1} * kSlots / shards);
    for (uint32_t slot = first; slot < end; ++slot) shard_of[slot] = s;
  }
  return shard_of;
}

size_t MinWorkers(uint32_t replication_factor) {
  return replication_factor >= 3 ? replication_factor - 1 : 1;
}

}  // namespace das::cluster
