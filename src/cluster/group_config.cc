#include "cluster/group_config.h"

#include <algorithm>
#include <cstdint>
#include <set>

#include "cluster/move_stages.h"
#include "rpc/topology.h"

namespace das::cluster {
namespace {

// The voters `view`'s leader reports; empty when it reports none.
std::set<uint64_t> ReportedVoters(const ShardView& view) {
  std::set<uint64_t> voters;
  if (view.leader == 0) return voters;
  auto report = view.reports.find(view.leader);
  if (report == view.reports.end()) return voters;
  for (const internal::v1::GroupMember& m : report->second.members()) {
    if (m.role() == internal::v1::GroupMember::VOTER) voters.insert(m.node_id());
  }
  return voters;
}

}  // namespace

std::vector<std::string> FollowGroupConfigurations(internal::v1::ControlState& state,
                                                   const std::vector<ShardView>& views) {
  std::vector<std::string> whys;
  const internal::v1::ReplicaMove& move = state.move();
  internal::v1::Topology& topology = *state.mutable_topology();
  for (internal::v1::ShardPlacement& p : *topology.mutable_placements()) {
    if (move.kind() != internal::v1::ReplicaMove::NONE && move.shard() == p.shard()) continue;
    if (p.shard() >= views.size()) continue;
    const std::set<uint64_t> voters = ReportedVoters(views[p.shard()]);
    const std::set<uint64_t> mapped(p.voters().begin(), p.voters().end());
    if (voters.empty() || voters == mapped) continue;
    const bool known = std::all_of(voters.begin(), voters.end(), [&](uint64_t v) {
      return rpc::FindNode(topology, v) != nullptr;
    });
    if (!known) continue;
    std::vector<uint64_t> kept;
    for (uint64_t v : p.voters()) {
      if (voters.count(v) > 0) kept.push_back(v);
    }
    for (uint64_t v : voters) {
      if (std::find(kept.begin(), kept.end(), v) == kept.end()) kept.push_back(v);
    }
    p.clear_voters();
    for (uint64_t v : kept) AddVoter(p, v);
    p.clear_joining();
    topology.set_epoch(topology.epoch() + 1);
    whys.push_back("shard " + std::to_string(p.shard()) +
                   ": the map follows the group's own configuration");
  }
  return whys;
}

}  // namespace das::cluster
