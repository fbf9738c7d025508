#include "rpc/topology.h"

#include <algorithm>
#include <set>

namespace das::rpc {

std::string NodeName(uint64_t node_id) {
  if (node_id == kWitnessNodeId) return "witness";
  return "worker-" + std::to_string(node_id);
}

std::string DiskFullMessage(uint64_t free_bytes, uint64_t reserve_bytes) {
  constexpr uint64_t kMiB = 1024 * 1024;
  return "disk full: " + std::to_string(free_bytes / kMiB) + " MiB free, below --disk-reserve-mb " +
         std::to_string(reserve_bytes / kMiB) + "; it stores nothing until there is room";
}

Status ValidateTopology(const internal::v1::Topology& topology, uint32_t slots) {
  if (topology.shards() == 0 || topology.placements_size() != static_cast<int>(topology.shards())) {
    return InvalidArgument("topology: " + std::to_string(topology.placements_size()) +
                           " placements for " + std::to_string(topology.shards()) + " shards");
  }
  uint32_t next_slot = 0;
  for (int s = 0; s < topology.placements_size(); ++s) {
    const internal::v1::ShardPlacement& p = topology.placements(s);
    if (p.shard() != static_cast<uint32_t>(s) || p.first_slot() != next_slot ||
        p.end_slot() <= p.first_slot()) {
      return InvalidArgument("topology: shard " + std::to_string(s) + " is out of order");
    }
    next_slot = p.end_slot();
    std::set<uint64_t> voters;
    for (uint64_t voter : p.voters()) {
      if (!voters.insert(voter).second || FindNode(topology, voter) == nullptr) {
        return InvalidArgument("topology: shard " + std::to_string(s) + " has a bad voter " +
                               std::to_string(voter));
      }
    }
    if (voters.empty())
      return InvalidArgument("topology: shard " + std::to_string(s) + " has no voter");
    for (auto nodes : {&p.founders(), &p.joining()}) {
      std::set<uint64_t> seen;
      for (uint64_t node : *nodes) {
        if (!seen.insert(node).second || FindNode(topology, node) == nullptr) {
          return InvalidArgument("topology: shard " + std::to_string(s) + " names a bad node " +
                                 std::to_string(node));
        }
      }
    }
  }
  if (next_slot != slots) return InvalidArgument("topology: the shards do not cover every slot");
  for (const internal::v1::NodeAddress& node : topology.nodes()) {
    if (node.raft_address().size() > kMaxRaftAddressBytes) {
      return InvalidArgument("topology: node " + std::to_string(node.node_id()) +
                             "'s raft address is longer than " +
                             std::to_string(kMaxRaftAddressBytes) + " bytes");
    }
  }
  return Status::Ok();
}

std::vector<ReplicaPlan> ReplicasOf(const internal::v1::Topology& topology, uint64_t node_id) {
  std::vector<ReplicaPlan> out;
  auto names = [node_id](const auto& nodes) {
    return std::find(nodes.begin(), nodes.end(), node_id) != nodes.end();
  };
  for (const internal::v1::ShardPlacement& p : topology.placements()) {
    const bool joining = names(p.joining());
    if (!joining && !names(p.voters())) continue;
    ReplicaPlan& plan = out.emplace_back();
    plan.shard = p.shard();
    const auto& founders = p.founders().empty() ? p.voters() : p.founders();
    if (!joining && names(founders)) plan.bootstrap.assign(founders.begin(), founders.end());
  }
  return out;
}

ReplicaChanges ChangesOf(const internal::v1::Topology& topology, uint64_t node_id,
                         const std::vector<uint32_t>& held) {
  ReplicaChanges changes;
  const std::set<uint32_t> holding(held.begin(), held.end());
  for (ReplicaPlan& plan : ReplicasOf(topology, node_id)) {
    changes.wanted.insert(plan.shard);
    if (holding.count(plan.shard) == 0) changes.open.push_back(std::move(plan));
  }
  for (uint32_t shard : holding) {
    if (changes.wanted.count(shard) == 0) changes.close.push_back(shard);
  }
  return changes;
}

std::vector<uint64_t> DataVoters(const internal::v1::ShardPlacement& placement) {
  std::vector<uint64_t> out;
  for (uint64_t voter : placement.voters()) {
    if (voter != kWitnessNodeId) out.push_back(voter);
  }
  return out;
}

const internal::v1::NodeAddress* FindNode(const internal::v1::Topology& topology,
                                          uint64_t node_id) {
  for (const internal::v1::NodeAddress& node : topology.nodes()) {
    if (node.node_id() == node_id) return &node;
  }
  return nullptr;
}

std::vector<std::pair<uint64_t, std::string>> RaftPeers(const internal::v1::Topology& topology) {
  std::vector<std::pair<uint64_t, std::string>> peers;
  for (const internal::v1::NodeAddress& node : topology.nodes()) {
    peers.emplace_back(node.node_id(), node.raft_address());
  }
  return peers;
}

}  // namespace das::rpc
