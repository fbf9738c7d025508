// Reads: responding_nodes of a read, and the shards' part of /health (replication_impl.h).
#include "control/replication_impl.h"

namespace das::control::replication_internal {

uint32_t ReplicationImpl::RespondingWorkers(const std::set<uint64_t>& answered,
                                            const std::set<uint64_t>& failed) {
  // A worker no read needed counts when its latest health check (the balancer's, once a
  // second, or a /health) answered.
  uint32_t responding = 0;
  MutexLock lock(mu_);
  for (const WorkerDirectory::Entry& w : directory_.Members()) {
    const uint64_t id = w.id;
    auto alive = alive_.find(id);
    const bool live = alive != alive_.end() && alive->second;
    const bool not_needed_and_live = failed.count(id) == 0 && live;
    if (answered.count(id) > 0 || not_needed_and_live) ++responding;
  }
  return responding;
}

void ReplicationImpl::Observe(const HealthMap& workers, const std::vector<ReplicaHealth>& witness) {
  NoteAlive(workers, false);
  NoteReady(Views(workers, witness));
}

bool ReplicationImpl::DescribeShards(const HealthMap& workers,
                                     const std::vector<ReplicaHealth>& witness,
                                     das::v1::HealthResponse& response) const {
  const std::vector<ShardView> views = Views(workers, witness);
  Topology topology;
  {
    MutexLock lock(mu_);
    topology = state_.topology();
    das::v1::Rebalance& rebalance = *response.mutable_rebalance();
    if (state_.move().kind() != internal::v1::ReplicaMove::NONE) {
      rebalance.set_current_move(cluster::DescribeMove(state_.move()));
    }
    rebalance.set_moves_pending(moves_pending_);
    rebalance.set_moves_done(moves_done_);
    rebalance.set_bytes_copied(state_.bytes_copied() + move_bytes_);
    rebalance.set_epoch(topology.epoch());
    rebalance.set_balanced(state_.move().kind() == internal::v1::ReplicaMove::NONE &&
                           !balanced_.empty() && balanced_ == PlanInputsLocked());
  }
  response.set_replication_factor(options_.replication_factor);
  bool all_healthy = true;
  for (const internal::v1::ShardPlacement& p : topology.placements()) {
    das::v1::ShardStatus& shard = *response.add_shards() =
        cluster::DescribeShard(p, views[p.shard()]);
    all_healthy = all_healthy && shard.healthy();
  }
  return all_healthy;
}

}  // namespace das::control::replication_internal
