// Reads: the unfiltered /analytics over every shard, and the shards' part of /health
// (replication_impl.h).
#include "control/replication_impl.h"

namespace das::control::replication_internal {

asio::awaitable<ShardedAggregate> ReplicationImpl::ReadAll(Ms timeout) {
  std::vector<asio::awaitable<Result<ShardLeader::ReadOutcome>>> reads;
  for (auto& leader : leaders_) {
    reads.push_back(
        [](ShardLeader& shard, Ms t) -> asio::awaitable<Result<ShardLeader::ReadOutcome>> {
          asio::awaitable<ShardLeader::ReadOutcome> read = shard.Read(t);
          co_return co_await std::move(read);
        }(*leader, timeout));
  }
  asio::awaitable<std::vector<Result<ShardLeader::ReadOutcome>>> gather =
      GatherAll<ShardLeader::ReadOutcome>(executor_, std::move(reads));
  std::vector<Result<ShardLeader::ReadOutcome>> outcomes = co_await std::move(gather);
  ShardedAggregate out;
  std::set<uint64_t> answered;
  std::set<uint64_t> failed;
  for (size_t s = 0; s < outcomes.size(); ++s) {
    if (!outcomes[s].ok() || !outcomes[s]->aggregate.ok()) {
      ++out.shards_missing;
      spdlog::warn("analytics: shard {} did not answer: {}", s,
                   outcomes[s].ok() ? outcomes[s]->aggregate.status().ToString()
                                    : outcomes[s].status().ToString());
      if (outcomes[s].ok()) failed.insert(outcomes[s]->failed.begin(), outcomes[s]->failed.end());
      continue;
    }
    const internal::v1::AggregateResponse& body = *outcomes[s]->aggregate;
    failed.insert(outcomes[s]->failed.begin(), outcomes[s]->failed.end());
    answered.insert(body.worker_id());
    std::optional<query::PartialAggregate> partial = query::PartialFrom(body);
    if (!partial) {
      ++out.shards_missing;
      continue;
    }
    out.partials.push_back(*partial);
  }
  out.responding_workers = RespondingWorkers(answered, failed);
  co_return out;
}

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

bool ReplicationImpl::DescribeShards(
    const std::map<uint64_t, Result<WorkerHealthResponse>>& workers,
    const std::vector<ReplicaHealth>& witness, das::v1::HealthResponse& response) {
  // What a health check saw is news for everyone: a worker that answered is alive (for
  // responding_nodes), and every shard with a leader makes the node ready. Nothing else changes.
  NoteAlive(workers, false);
  const std::vector<ShardView> views = Views(workers, witness);
  NoteReady(views);
  bool all_healthy = true;
  Topology topology;
  {
    MutexLock lock(mu_);
    topology = state_.topology();
    das::v1::Rebalance& rebalance = *response.mutable_rebalance();
    if (state_.move().kind() != internal::v1::ReplicaMove::NONE) {
      rebalance.set_current_move(Describe(state_.move()));
    }
    rebalance.set_moves_pending(moves_pending_);
    rebalance.set_moves_done(moves_done_);
    rebalance.set_bytes_copied(state_.bytes_copied() + move_bytes_);
    rebalance.set_epoch(topology.epoch());
    rebalance.set_balanced(state_.move().kind() == internal::v1::ReplicaMove::NONE &&
                           !balanced_.empty() && balanced_ == PlanInputsLocked());
  }
  response.set_replication_factor(options_.replication_factor);
  for (const internal::v1::ShardPlacement& p : topology.placements()) {
    const ShardView& view = views[p.shard()];
    das::v1::ShardStatus* shard = response.add_shards();
    shard->set_shard(p.shard());
    shard->set_first_slot(p.first_slot());
    shard->set_end_slot(p.end_slot());
    if (view.leader != 0) shard->set_leader(rpc::NodeName(view.leader));
    shard->set_term(view.term);
    shard->set_commit_index(view.commit_index);
    // A shard the witness leads takes writes but serves no read until it hands over.
    bool healthy = view.leader != 0 && view.leader != rpc::kWitnessNodeId;
    for (uint64_t voter : p.voters()) {
      das::v1::ReplicaStatus* replica = shard->add_replicas();
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
      healthy = healthy && live && cluster::CaughtUp(it->second, view.commit_index);
    }
    // A replica being added is listed too; it counts once it votes.
    for (uint64_t node : p.joining()) {
      das::v1::ReplicaStatus* replica = shard->add_replicas();
      replica->set_node(rpc::NodeName(node));
      auto it = view.reports.find(node);
      replica->set_role(it == view.reports.end() ? "joining" : "joining " + it->second.role());
      if (it != view.reports.end()) replica->set_applied_index(it->second.stored_index());
    }
    shard->set_healthy(healthy);
    all_healthy = all_healthy && healthy;
  }
  return all_healthy;
}

}  // namespace das::control::replication_internal
