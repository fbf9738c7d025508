// The rebalancer: planning a move and carrying out its stages (replication_impl.h).
#include "control/replication_impl.h"

namespace das::control::replication_internal {
namespace {

internal::v1::ReplicaMove ToProto(const meta::Move& move) {
  internal::v1::ReplicaMove out;
  out.set_shard(move.shard);
  out.set_from(move.from);
  out.set_to(move.to);
  out.set_why(move.why);
  switch (move.kind) {
    case meta::Move::Kind::kReplace:
      out.set_kind(internal::v1::ReplicaMove::REPLACE);
      out.set_stage(cluster::kAnnounce);
      break;
    case meta::Move::Kind::kAdd:
      out.set_kind(internal::v1::ReplicaMove::ADD);
      out.set_stage(cluster::kAnnounce);
      break;
    case meta::Move::Kind::kRemove:
      out.set_kind(internal::v1::ReplicaMove::REMOVE);
      out.set_stage(cluster::kLeadOff);
      break;
    case meta::Move::Kind::kTransfer:
      out.set_kind(internal::v1::ReplicaMove::TRANSFER);
      break;
  }
  return out;
}

}  // namespace

asio::awaitable<void> ReplicationImpl::Rebalance(const std::vector<ShardView>& views) {
  // Moves start only while every shard has a data leader (an election or a dead leader is
  // waited out) and every member holds the current epoch.
  for (const ShardView& view : views) {
    if (view.leader == 0 || view.leader == rpc::kWitnessNodeId) co_return;
  }
  for (int steps = 0; steps < 16; ++steps) {
    {
      MutexLock lock(mu_);
      if (stopping_) co_return;
      if (state_.move().kind() == internal::v1::ReplicaMove::NONE) {
        RetireDrainedLocked();
        const meta::ClusterView view = ViewLocked();
        std::optional<meta::Move> next = meta::NextMove(view);
        uint32_t pending = 0;
        for (meta::ClusterView after = view; next && pending < 1000; ++pending) {
          after = meta::Apply(std::move(after), *next);
          next = meta::NextMove(after);
        }
        moves_pending_ = pending;
        next = meta::NextMove(view);
        if (!next) {
          balanced_ = PlanInputsLocked();
          co_return;
        }
        balanced_.clear();
        *state_.mutable_move() = ToProto(*next);
        if (Status saved = SaveStateLocked(); !saved.ok()) {
          spdlog::error("cannot keep the cluster state: {}", saved.ToString());
          co_return;
        }
        spdlog::info("rebalance: {}", cluster::DescribeMove(state_.move()));
      }
    }
    asio::awaitable<bool> step = Step(views);
    if (!co_await std::move(step)) co_return;
    MutexLock lock(mu_);
    // A step that finished a move cleared it; the next is planned from the map as it is now.
    // The views are from the tick's start, so a finished move ends the tick.
    if (state_.move().kind() == internal::v1::ReplicaMove::NONE) co_return;
  }
}

void ReplicationImpl::RetireDrainedLocked() {
  for (uint64_t id : std::vector<uint64_t>(state_.draining().begin(), state_.draining().end())) {
    bool holds = false;
    for (const internal::v1::ShardPlacement& p : state_.topology().placements()) {
      holds = holds || Contains(p.voters(), id) || Contains(p.joining(), id);
    }
    if (holds) continue;
    Erase(*state_.mutable_draining(), id);
    state_.add_departed(id);
    directory_.Remove(id);
    alive_.erase(id);
    SaveOrLogLocked();
    spdlog::info("worker {} is drained and has left the cluster", id);
  }
}

asio::awaitable<bool> ReplicationImpl::AtLeader(const ShardView& view,
                                                internal::v1::MembershipRequest request) {
  if (view.leader == 0 || view.leader == rpc::kWitnessNodeId) co_return false;
  std::shared_ptr<rpc::WorkerClient> client = directory_.Client(view.leader);
  if (!client) co_return false;
  // Standby and voter wait for libraft's catch-up rounds: given long, and repeated if need be
  // (a step already done answers OK).
  asio::awaitable<Result<internal::v1::MembershipResponse>> call =
      client->Membership(request, std::chrono::seconds(60));
  Result<internal::v1::MembershipResponse> done = co_await std::move(call);
  if (!done.ok()) {
    spdlog::info("shard {}: membership step {} of {} not done yet: {}", request.shard(),
                 static_cast<int>(request.op()), rpc::NodeName(request.node_id()),
                 done.status().ToString());
    co_return false;
  }
  co_return true;
}

// `to` must hold the epoch that names it (the witness: at once, in this process).
asio::awaitable<bool> ReplicationImpl::HoldsItsEpoch(uint64_t to) {
  if (to != rpc::kWitnessNodeId) {
    asio::awaitable<Result<internal::v1::TopologyResponse>> push = PushTo(to);
    Result<internal::v1::TopologyResponse> pushed = co_await std::move(push);
    co_return pushed.ok();
  }
  OpenWitness();
  uint64_t epoch = 0;
  {
    MutexLock lock(mu_);
    epoch = state_.topology().epoch();
  }
  co_return witness_epoch_ >= epoch;
}

// One step of the move under way: the state machine (cluster/move_stages.h) says what it
// needs, this does the I/O, and once that succeeded the machine's change is kept.
asio::awaitable<bool> ReplicationImpl::Step(const std::vector<ShardView>& views) {
  internal::v1::ReplicaMove move;
  cluster::MoveStep step;
  {
    MutexLock lock(mu_);
    move = state_.move();
    const uint64_t to = move.to();
    const bool gone = to != 0 && to != rpc::kWitnessNodeId && GoneLocked(to);
    step = cluster::PlanMoveStep(state_, views.at(move.shard()), gone);
  }
  if (step.hold_epoch != 0) {
    asio::awaitable<bool> holds = HoldsItsEpoch(step.hold_epoch);
    if (!co_await std::move(holds)) co_return false;
  }
  asio::awaitable<bool> done = CarryOut(move, step, views.at(move.shard()));
  if (!co_await std::move(done)) co_return false;
  MutexLock lock(mu_);
  co_return KeepStepLocked(move, step);
}

// The step's I/O: true once done (nothing to do is done).
asio::awaitable<bool> ReplicationImpl::CarryOut(const internal::v1::ReplicaMove& move,
                                                const cluster::MoveStep& step,
                                                const ShardView& view) {
  if (step.io == cluster::MoveIo::kMembership) {
    asio::awaitable<bool> done = AtLeader(view, step.membership);
    co_return co_await std::move(done);
  }
  if (step.io == cluster::MoveIo::kTransfer) {
    std::shared_ptr<rpc::WorkerClient> client = directory_.Client(move.from());
    if (!client) co_return false;
    asio::awaitable<Result<internal::v1::TransferResponse>> call =
        client->Transfer(move.shard(), step.transfer_to, Ms(2000));
    Result<internal::v1::TransferResponse> moved = co_await std::move(call);
    if (moved.ok()) leaders_[move.shard()]->NoteLeader(step.transfer_to);
  }
  co_return true;
}

bool ReplicationImpl::KeepStepLocked(const internal::v1::ReplicaMove& move,
                                     const cluster::MoveStep& step) {
  using cluster::MoveEffect;
  const cluster::MoveResult result = cluster::ApplyMoveStep(state_, step);
  if (step.effect == MoveEffect::kNone) return false;
  if (step.effect == MoveEffect::kOldKept) {
    spdlog::warn("rebalance: {} went away; {} is kept", rpc::NodeName(move.to()),
                 rpc::NodeName(move.from()));
  } else if (step.effect == MoveEffect::kDropped) {
    spdlog::error("rebalance: a move at an unknown stage {}; dropped", move.stage());
  } else if (step.effect == MoveEffect::kPreferred) {
    last_transfer_[move.shard()] = {};  // the balancer hands it over at once
  }
  if (!result.epoch_why.empty()) EpochRaisedLocked(result.epoch_why);
  if (result.finished) {
    spdlog::info("rebalance: done: {} ({} bytes copied)", cluster::DescribeMove(move), move_bytes_);
    state_.set_bytes_copied(state_.bytes_copied() + move_bytes_);
    ++moves_done_;
  }
  if (result.finished || result.dropped) move_bytes_ = 0;
  SaveOrLogLocked();
  return result.advanced;
}

}  // namespace das::control::replication_internal
