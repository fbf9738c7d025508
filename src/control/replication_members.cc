// Membership: a worker joins, a worker is decommissioned (replication_impl.h).
#include "control/replication_impl.h"

namespace das::control::replication_internal {

Result<internal::v1::JoinResponse> ReplicationImpl::Join(const internal::v1::JoinRequest& request) {
  if (options_.replication_factor == 1) {
    return InvalidArgument(
        "this cluster runs with --replication-factor 1: its workers are the --workers list; "
        "membership needs replication (3 or more)");
  }
  ASSIGN_OR_RETURN(const cluster::JoinAddresses addresses, cluster::CheckJoin(request));
  MutexLock lock(mu_);
  ASSIGN_OR_RETURN(const cluster::Joined joined,
                   cluster::Join(state_, request.node_id(), addresses));
  for (uint64_t gone : joined.replaced) {
    spdlog::warn(
        "worker {} joins at {}, where worker {} was: worker {} lost its data and is "
        "replaced",
        joined.id, addresses.http, gone, gone);
    directory_.Remove(gone);
    alive_.erase(gone);
  }
  if (joined.added) {
    spdlog::info("worker {} joins from {} (raft {})", joined.id, addresses.http, addresses.raft);
  } else if (joined.changed) {
    spdlog::info("worker {} joins again, now at {} (raft {})", joined.id, addresses.http,
                 addresses.raft);
  }
  directory_.Set(joined.id, addresses.http);
  last_seen_[joined.id] = std::chrono::steady_clock::now();
  if (joined.changed && state_.topology().placements_size() > 0) {
    BumpEpochLocked(rpc::NodeName(joined.id) + " at " + addresses.http);
  } else {
    RETURN_IF_ERROR(SaveStateLocked());
  }
  internal::v1::JoinResponse response;
  response.set_node_id(joined.id);
  response.set_cluster_id(state_.topology().cluster_id());
  return response;
}

Status ReplicationImpl::Decommission(uint64_t worker_id) {
  if (options_.replication_factor == 1) {
    return FailedPrecondition(
        "this cluster runs with --replication-factor 1: a worker's shards have no other "
        "replica to move from; membership needs replication (3 or more)");
  }
  MutexLock lock(mu_);
  if (!directory_.Client(worker_id)) {
    return NotFound("worker " + std::to_string(worker_id) + " is no member of the cluster");
  }
  const auto now = std::chrono::steady_clock::now();
  size_t active = 0;
  for (const WorkerDirectory::Entry& w : directory_.Members()) {
    if (w.id != worker_id && StateOfLocked(w.id, now) == meta::WorkerState::kActive) ++active;
  }
  ASSIGN_OR_RETURN(const bool drained, cluster::Drain(state_, worker_id, active));
  if (!drained) return Status::Ok();
  RETURN_IF_ERROR(SaveStateLocked());
  spdlog::info("worker {} is decommissioned: its replicas move to the others", worker_id);
  return Status::Ok();
}

}  // namespace das::control::replication_internal
