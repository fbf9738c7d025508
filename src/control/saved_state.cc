#include "control/saved_state.h"

#include <optional>
#include <string>
#include <utility>

#include "cluster/topology_plan.h"
#include "common/durable_file.h"
#include "rpc/topology.h"

namespace das::control {
namespace {

using internal::v1::ControlState;
using internal::v1::NodeAddress;
using internal::v1::Topology;

// Why `kept` cannot be this start's cluster, or OK.
Status CheckKept(const ControlState& kept, const RecordOptions& options,
                 const std::vector<NodeAddress>& nodes) {
  const Topology& topology = kept.topology();
  const bool planned = topology.placements_size() > 0;
  auto refuse = [&](const std::string& why) {
    return InvalidArgument(
        options.state_path + " keeps a cluster of " + std::to_string(topology.shards()) +
        " shards, replication factor " + std::to_string(topology.replication_factor()) + " and " +
        std::to_string(topology.nodes_size()) + " nodes; " + why + ", or use a fresh --data-dir");
  };
  if (planned && (topology.shards() != options.shards ||
                  topology.replication_factor() != options.replication_factor)) {
    return refuse("start with the same --shards and --replication-factor");
  }
  for (const NodeAddress& node : nodes) {
    const NodeAddress* same = rpc::FindNode(topology, node.node_id());
    if (planned && (same == nullptr || same->http_address() != node.http_address())) {
      return refuse("--workers names worker " + std::to_string(node.node_id()) + " at " +
                    node.http_address() + ", which it does not hold there");
    }
  }
  const NodeAddress* witness = rpc::FindNode(topology, rpc::kWitnessNodeId);
  if (witness != nullptr && witness->raft_address() != options.witness_address) {
    return refuse("its witness is at " + witness->raft_address() +
                  "; start with the same --raft-port and --advertise-host");
  }
  return Status::Ok();
}

}  // namespace

Result<LoadedState> LoadClusterState(const RecordOptions& options,
                                     const std::vector<WorkerInfo>& workers) {
  std::vector<NodeAddress> nodes;
  for (const WorkerInfo& w : workers) {
    NodeAddress& node = nodes.emplace_back();
    node.set_node_id(w.id);
    node.set_http_address(w.address.ToString());
  }
  ASSIGN_OR_RETURN(std::optional<std::string> saved, ReadFileIfExists(options.state_path));
  LoadedState loaded;
  if (!saved) {
    if (!workers.empty()) {
      *loaded.state.mutable_topology() = cluster::PlanTopology(
          nodes, options.replication_factor, options.shards, options.witness_address, 0);
    }
    return loaded;
  }
  if (!loaded.state.ParseFromString(*saved)) {
    return Internal(options.state_path +
                    " does not decode; move it away only if the cluster is new");
  }
  RETURN_IF_ERROR(CheckKept(loaded.state, options, nodes));
  loaded.formed =
      loaded.state.topology().placements_size() > 0 && loaded.state.topology().cluster_id() != 0;
  return loaded;
}

}  // namespace das::control
