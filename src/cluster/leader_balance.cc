#include "cluster/leader_balance.h"

#include "cluster/topology_plan.h"
#include "rpc/topology.h"

namespace das::cluster {

std::optional<uint64_t> LeaderTarget(const ShardView& view,
                                     const std::vector<uint64_t>& data_voters) {
  if (view.leader == 0 || view.leader == rpc::kWitnessNodeId || data_voters.empty()) {
    return std::nullopt;
  }
  auto caught_up = [&view](uint64_t node) {
    auto it = view.reports.find(node);
    return it != view.reports.end() && CaughtUp(it->second, view.commit_index);
  };
  uint64_t target = 0;
  if (caught_up(data_voters.front())) {
    target = data_voters.front();
  } else if (!caught_up(view.leader)) {
    for (uint64_t node : data_voters) {
      if (node != view.leader && caught_up(node)) {
        target = node;
        break;
      }
    }
  }
  if (target == 0 || target == view.leader) return std::nullopt;
  return target;
}

}  // namespace das::cluster
