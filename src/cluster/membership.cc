#include "cluster/membership.h"

#include <algorithm>

#include "cluster/topology_plan.h"
#include "rpc/routes.h"
#include "rpc/topology.h"

namespace das::cluster {

using internal::v1::ControlState;
using internal::v1::NodeAddress;

bool Contains(const google::protobuf::RepeatedField<uint64_t>& ids, uint64_t id) {
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

void Erase(google::protobuf::RepeatedField<uint64_t>& ids, uint64_t id) {
  ids.erase(std::remove(ids.begin(), ids.end(), id), ids.end());
}

std::string HostOf(const std::string& address) { return address.substr(0, address.rfind(':')); }

Result<JoinAddresses> CheckJoin(const internal::v1::JoinRequest& request) {
  const std::string& http = request.http_address();
  const size_t colon = http.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == http.size()) {
    return InvalidArgument("join: the address '" + http + "' is not host:port");
  }
  if (request.raft_port() == 0 || request.raft_port() > 65535) {
    return InvalidArgument("join: raft_port " + std::to_string(request.raft_port()) +
                           " is not a port");
  }
  const std::string host = HostOf(http);
  if (host == "0.0.0.0" || host == "::" || host == "[::]") {
    return InvalidArgument("join: " + http +
                           " is no address peers can reach; start the worker with "
                           "--advertise-host");
  }
  JoinAddresses addresses{http, host + ":" + std::to_string(request.raft_port())};
  if (http.size() > rpc::kMaxRaftAddressBytes ||
      addresses.raft.size() > rpc::kMaxRaftAddressBytes) {
    return InvalidArgument("join: the address '" + http + "' is longer than " +
                           std::to_string(rpc::kMaxRaftAddressBytes) + " bytes");
  }
  return addresses;
}

namespace {

// The highest worker id the state ever gave (members, departed, and the last one given).
uint64_t LastWorkerId(const ControlState& state) {
  uint64_t last = state.last_worker_id();
  for (const NodeAddress& node : state.topology().nodes()) {
    if (node.node_id() != rpc::kWitnessNodeId) last = std::max(last, node.node_id());
  }
  for (uint64_t departed : state.departed()) last = std::max(last, departed);
  return last;
}

// A new worker at the very address of a member has taken its place.
std::vector<uint64_t> ReplaceAt(ControlState& state, uint64_t id, const std::string& http) {
  std::vector<uint64_t> replaced;
  for (const NodeAddress& node : state.topology().nodes()) {
    if (node.node_id() == id || node.node_id() == rpc::kWitnessNodeId) continue;
    if (node.http_address() != http || Contains(state.departed(), node.node_id())) continue;
    replaced.push_back(node.node_id());
  }
  for (uint64_t gone : replaced) {
    state.add_departed(gone);
    Erase(*state.mutable_draining(), gone);
  }
  return replaced;
}

}  // namespace

Result<Joined> Join(ControlState& state, uint64_t requested_id, const JoinAddresses& addresses) {
  if (requested_id >= rpc::kWitnessNodeId) return InvalidArgument("join: node id out of range");
  if (requested_id != 0 && Contains(state.departed(), requested_id)) {
    return Status(StatusCode::kNotFound,
                  "join: worker " + std::to_string(requested_id) +
                      " has left the cluster; start it with an empty data directory to join as a "
                      "new worker",
                  rpc::kDepartedDetail);
  }
  Joined joined;
  const uint64_t last = LastWorkerId(state);
  joined.id = requested_id != 0 ? requested_id : last + 1;
  state.set_last_worker_id(std::max(last, joined.id));
  if (requested_id == 0) joined.replaced = ReplaceAt(state, joined.id, addresses.http);
  NodeAddress* found = nullptr;
  for (NodeAddress& node : *state.mutable_topology()->mutable_nodes()) {
    if (node.node_id() == joined.id) found = &node;
  }
  if (found == nullptr) {
    found = state.mutable_topology()->add_nodes();
    found->set_node_id(joined.id);
    joined.added = true;
  }
  joined.changed = joined.added || found->http_address() != addresses.http ||
                   found->raft_address() != addresses.raft;
  found->set_http_address(addresses.http);
  found->set_raft_address(addresses.raft);
  return joined;
}

Result<bool> Drain(ControlState& state, uint64_t worker_id, size_t active_others) {
  if (Contains(state.draining(), worker_id)) return false;
  const uint32_t factor = state.topology().replication_factor();
  if (active_others < MinWorkers(factor)) {
    return FailedPrecondition("worker " + std::to_string(worker_id) +
                              " cannot be drained: " + std::to_string(active_others) +
                              " other active workers cannot hold replication factor " +
                              std::to_string(factor));
  }
  state.add_draining(worker_id);
  return true;
}

bool FillRaftAddresses(
    internal::v1::Topology& topology,
    const std::map<uint64_t, Result<internal::v1::WorkerHealthResponse>>& health) {
  std::vector<NodeAddress*> missing;
  for (NodeAddress& node : *topology.mutable_nodes()) {
    if (node.node_id() == rpc::kWitnessNodeId || !node.raft_address().empty()) continue;
    auto it = health.find(node.node_id());
    if (it == health.end() || !it->second.ok() || it->second->raft_port() == 0) return false;
    missing.push_back(&node);
  }
  for (NodeAddress* node : missing) {
    node->set_raft_address(HostOf(node->http_address()) + ":" +
                           std::to_string(health.at(node->node_id())->raft_port()));
  }
  return true;
}

}  // namespace das::cluster
