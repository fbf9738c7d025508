// Membership as the cluster's saved state (internal::v1::ControlState) records it: a worker's
// join (its id, its addresses, the members it replaces), and the id lists the state keeps
// (draining, departed). Pure functions: the control node logs, saves and tells the workers.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"
#include "das/v1/internal.pb.h"

namespace das::cluster {

bool Contains(const google::protobuf::RepeatedField<uint64_t>& ids, uint64_t id);
void Erase(google::protobuf::RepeatedField<uint64_t>& ids, uint64_t id);

// "host:port" -> host.
std::string HostOf(const std::string& address);

// Where a joining worker is reached: its HTTP address and its raft address (the same host).
struct JoinAddresses {
  std::string http;
  std::string raft;
};

// The addresses of a join request, or kInvalidArgument naming why not: an HTTP address that is
// not host:port, a raft port that is not a port, a host peers cannot reach (0.0.0.0, ::), an
// address longer than rpc::kMaxRaftAddressBytes.
Result<JoinAddresses> CheckJoin(const internal::v1::JoinRequest& request);

struct Joined {
  uint64_t id = 0;
  bool added = false;    // a member now that was none before
  bool changed = false;  // the topology's nodes changed (added, or at new addresses)
  // Members at the joining worker's very address that a new worker replaces: they lost their
  // data, and are departed now (never trusted again; their replicas are recreated elsewhere).
  std::vector<uint64_t> replaced;
};

// Records the join of `requested_id` (0: a new worker, given the next id never used) at
// `addresses` in `state`. kInvalidArgument for an id out of range; kNotFound (detail
// rpc::kDepartedDetail) for an id that left the cluster. A member that joins at another
// member's address replaces nobody: members sharing a data pool come back in any order, each
// at an address another had.
Result<Joined> Join(internal::v1::ControlState& state, uint64_t requested_id,
                    const JoinAddresses& addresses);

// Marks member `worker_id` draining in `state` (its replicas move to the others): true, or
// false when it drains already. kFailedPrecondition when `active_others`, the active workers
// besides it, are too few for the state's replication factor (MinWorkers).
Result<bool> Drain(internal::v1::ControlState& state, uint64_t worker_id, size_t active_others);

// A cluster formed from a --workers list learns each worker's raft address from its health
// answer: host of its HTTP address, the raft port it reports. Fills `topology`'s missing raft
// addresses once every worker reported a port (true); changes nothing before (false).
bool FillRaftAddresses(
    internal::v1::Topology& topology,
    const std::map<uint64_t, Result<internal::v1::WorkerHealthResponse>>& health);

}  // namespace das::cluster
