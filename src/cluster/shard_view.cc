#include "cluster/shard_view.h"

#include <algorithm>

#include "cluster/topology_plan.h"
#include "rpc/topology.h"

namespace das::cluster {

using internal::v1::ReplicaHealth;

std::vector<ShardView> ShardViews(uint32_t shards, const HealthMap& health,
                                  const std::vector<ReplicaHealth>& witness) {
  std::vector<ShardView> views(shards);
  auto add = [&](uint64_t node, const ReplicaHealth& report) {
    if (report.shard() >= views.size()) return;
    ShardView& view = views[report.shard()];
    view.reports[node] = report;
    if (report.role() == "leader" && report.term() >= view.term) {
      view.leader = node;
      view.term = report.term();
      view.commit_index = report.commit_index();
    }
  };
  for (const auto& [id, result] : health) {
    if (!result.ok()) continue;
    for (const ReplicaHealth& report : result->replicas()) add(id, report);
  }
  for (const ReplicaHealth& report : witness) add(rpc::kWitnessNodeId, report);
  for (ShardView& view : views) {
    for (const auto& [node, report] : view.reports) view.term = std::max(view.term, report.term());
  }
  return views;
}

bool EveryReachableShardLed(const std::vector<ShardView>& views) {
  bool any = false;
  for (const ShardView& view : views) {
    const bool led = view.leader != 0 && view.leader != rpc::kWitnessNodeId;
    if (!led && !view.reports.empty()) return false;
    any = any || led;
  }
  return any;
}

bool EveryShardLedByData(const std::vector<ShardView>& views) {
  return std::all_of(views.begin(), views.end(), [](const ShardView& view) {
    return view.leader != 0 && view.leader != rpc::kWitnessNodeId;
  });
}

das::v1::ShardStatus DescribeShard(const internal::v1::ShardPlacement& placement,
                                   const ShardView& view) {
  das::v1::ShardStatus shard;
  shard.set_shard(placement.shard());
  shard.set_first_slot(placement.first_slot());
  shard.set_end_slot(placement.end_slot());
  if (view.leader != 0) shard.set_leader(rpc::NodeName(view.leader));
  shard.set_term(view.term);
  shard.set_commit_index(view.commit_index);
  bool healthy = view.leader != 0 && view.leader != rpc::kWitnessNodeId;
  for (uint64_t voter : placement.voters()) {
    das::v1::ReplicaStatus* replica = shard.add_replicas();
    replica->set_node(rpc::NodeName(voter));
    auto it = view.reports.find(voter);
    if (it == view.reports.end()) {
      replica->set_role("unavailable");
      healthy = false;
      continue;
    }
    replica->set_role(it->second.role());
    replica->set_applied_index(it->second.stored_index());
    const bool live = it->second.role() != "unavailable";
    replica->set_live(live);
    healthy = healthy && live && CaughtUp(it->second, view.commit_index);
  }
  // A replica being added is listed too; it counts once it votes.
  for (uint64_t node : placement.joining()) {
    das::v1::ReplicaStatus* replica = shard.add_replicas();
    replica->set_node(rpc::NodeName(node));
    auto it = view.reports.find(node);
    replica->set_role(it == view.reports.end() ? "joining" : "joining " + it->second.role());
    if (it != view.reports.end()) replica->set_applied_index(it->second.stored_index());
  }
  shard.set_healthy(healthy);
  return shard;
}

}  // namespace das::cluster
