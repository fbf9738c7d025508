#include "cluster/shard_view.h"

#include <algorithm>

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

}  // namespace das::cluster
