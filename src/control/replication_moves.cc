// The rebalancer: planning a move and carrying out its stages (replication_impl.h).
#include "control/replication_impl.h"

namespace das::control::replication_internal {
namespace {

std::string_view StageName(uint32_t stage) {
  static constexpr std::string_view kNames[] = {"announce", "add spare", "standby",   "catch up",
                                                "voter",    "lead off",  "remove old"};
  return stage < std::size(kNames) ? kNames[stage] : "?";
}

internal::v1::ReplicaMove ToProto(const meta::Move& move) {
  internal::v1::ReplicaMove out;
  out.set_shard(move.shard);
  out.set_from(move.from);
  out.set_to(move.to);
  out.set_why(move.why);
  switch (move.kind) {
    case meta::Move::Kind::kReplace:
      out.set_kind(internal::v1::ReplicaMove::REPLACE);
      out.set_stage(kAnnounce);
      break;
    case meta::Move::Kind::kAdd:
      out.set_kind(internal::v1::ReplicaMove::ADD);
      out.set_stage(kAnnounce);
      break;
    case meta::Move::Kind::kRemove:
      out.set_kind(internal::v1::ReplicaMove::REMOVE);
      out.set_stage(kLeadOff);
      break;
    case meta::Move::Kind::kTransfer:
      out.set_kind(internal::v1::ReplicaMove::TRANSFER);
      break;
  }
  return out;
}

}  // namespace

std::string Describe(const internal::v1::ReplicaMove& move) {
  std::string out = "shard " + std::to_string(move.shard()) + ": ";
  if (move.from() != 0) out += rpc::NodeName(move.from());
  out += " -> ";
  if (move.to() != 0) out += rpc::NodeName(move.to());
  out.append(" (").append(StageName(move.stage())).append("): ").append(move.why());
  return out;
}

void AddVoter(internal::v1::ShardPlacement& placement, uint64_t id) {
  if (Contains(placement.voters(), id)) return;
  std::vector<uint64_t> voters = rpc::DataVoters(placement);
  const bool witness = Contains(placement.voters(), rpc::kWitnessNodeId);
  if (id != rpc::kWitnessNodeId) voters.push_back(id);
  if (witness || id == rpc::kWitnessNodeId) voters.push_back(rpc::kWitnessNodeId);
  *placement.mutable_voters() = {voters.begin(), voters.end()};
}

asio::awaitable<void> ReplicationImpl::Rebalance(const std::vector<ShardView>& views) {
  // Moves start only while every shard has a data leader (an election or a dead leader is
  // waited out) and every member holds the current epoch.
  for (const ShardView& view : views) {
    if (view.leader == 0 || view.leader == rpc::kWitnessNodeId) co_return;
  }
  for (int steps = 0; steps < 16; ++steps) {
    internal::v1::ReplicaMove move;
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
        spdlog::info("rebalance: {}", Describe(state_.move()));
      }
      move = state_.move();
    }
    asio::awaitable<bool> step = Step(move, views);
    if (!co_await std::move(step)) co_return;
    MutexLock lock(mu_);
    // A step that finished a move cleared it; the next is planned from the map as it is now.
    // The views are from the tick's start, so a finished move ends the tick.
    if (state_.move().kind() == internal::v1::ReplicaMove::NONE) co_return;
  }
}

void ReplicationImpl::FinishMoveLocked() {
  spdlog::info("rebalance: done: {} ({} bytes copied)", Describe(state_.move()), move_bytes_);
  state_.set_bytes_copied(state_.bytes_copied() + move_bytes_);
  move_bytes_ = 0;
  state_.clear_move();
  ++moves_done_;
  SaveOrLogLocked();
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

// The stages of a move (ReplicaMove.stage), one function each; each returns whether the move
// advanced (the next stage may follow at once) and keeps the state it changed.
asio::awaitable<bool> ReplicationImpl::Step(internal::v1::ReplicaMove move,
                                            const std::vector<ShardView>& views) {
  using internal::v1::ReplicaMove;
  const ShardView& view = views.at(move.shard());
  if (move.kind() == ReplicaMove::TRANSFER) co_return PreferLeader(move);
  // A replica being added to a worker that went away (dead, drained) is rolled back.
  if (move.stage() < kVoter && move.to() != rpc::kWitnessNodeId) {
    asio::awaitable<std::optional<bool>> rollback = RollBackIfGone(move, view);
    if (std::optional<bool> rolled = co_await std::move(rollback)) co_return *rolled;
  }
  // The old replica goes only while the new one is a caught-up voter: removing it otherwise
  // would leave the shard a replica short (or, with the new one dead, unable to commit). A new
  // replica that went away after it became a voter ends the move with the old one kept; the
  // planner then removes whichever is surplus.
  if ((move.stage() == kLeadOff || move.stage() == kRemoveOld) && move.to() != 0 &&
      move.to() != rpc::kWitnessNodeId) {
    if (std::optional<bool> kept = KeepOldIfNewGone(move, view)) co_return *kept;
  }
  switch (move.stage()) {
    case kAnnounce:
      co_return Announce(move);
    case kAddSpare: {
      asio::awaitable<bool> stage = AddSpare(move, view);
      co_return co_await std::move(stage);
    }
    case kStandby: {
      asio::awaitable<bool> stage = Standby(move, view);
      co_return co_await std::move(stage);
    }
    case kCatchUp:
      co_return CatchUp(move, view);
    case kVoter: {
      asio::awaitable<bool> stage = Vote(move, view);
      co_return co_await std::move(stage);
    }
    case kLeadOff: {
      asio::awaitable<bool> stage = LeadOff(move, view);
      co_return co_await std::move(stage);
    }
    case kRemoveOld: {
      asio::awaitable<bool> stage = RemoveOld(move, view);
      co_return co_await std::move(stage);
    }
    default: {
      MutexLock lock(mu_);
      spdlog::error("rebalance: a move at an unknown stage {}; dropped", move.stage());
      state_.clear_move();
      move_bytes_ = 0;
      co_return false;
    }
  }
}

void ReplicationImpl::AdvanceMove(uint32_t stage) {
  MutexLock lock(mu_);
  state_.mutable_move()->set_stage(stage);
  SaveOrLogLocked();
}

internal::v1::ShardPlacement& ReplicationImpl::PlacementLocked(uint32_t shard) {
  return *state_.mutable_topology()->mutable_placements(static_cast<int>(shard));
}

// One membership step of `move`'s shard at its leader.
asio::awaitable<bool> ReplicationImpl::AtLeader(const ShardView& view, uint32_t shard,
                                                internal::v1::MembershipRequest::Op op,
                                                uint64_t node) {
  internal::v1::MembershipRequest request;
  request.set_shard(shard);
  request.set_op(op);
  request.set_node_id(node);
  asio::awaitable<bool> done = AtLeader(view, std::move(request));
  co_return co_await std::move(done);
}

// TRANSFER: `to` becomes the shard's preferred leader (its first voter).
bool ReplicationImpl::PreferLeader(const internal::v1::ReplicaMove& move) {
  const uint32_t s = move.shard();
  const uint64_t to = move.to();
  MutexLock lock(mu_);
  internal::v1::ShardPlacement& p = PlacementLocked(s);
  if (!p.voters().empty() && p.voters(0) == to) {
    // Preferred already: the balancer hands leadership over once `to` is caught up.
    state_.clear_move();
    move_bytes_ = 0;
    return false;
  }
  std::vector<uint64_t> voters = {to};
  for (uint64_t v : p.voters()) {
    if (v != to) voters.push_back(v);
  }
  *p.mutable_voters() = {voters.begin(), voters.end()};
  p.set_preferred_leader(to);
  BumpEpochLocked("shard " + std::to_string(s) + ": " + rpc::NodeName(to) + " preferred leader");
  last_transfer_[s] = {};  // the balancer hands it over at once
  FinishMoveLocked();
  return true;
}

// Nothing (the move goes on) unless `to` went away: then it is removed from the shard and the
// move ends (true), or the removal is tried again next tick (false).
asio::awaitable<std::optional<bool>> ReplicationImpl::RollBackIfGone(
    const internal::v1::ReplicaMove& move, const ShardView& view) {
  const uint32_t s = move.shard();
  const uint64_t to = move.to();
  {
    MutexLock lock(mu_);
    if (!GoneLocked(to)) co_return std::nullopt;
  }
  asio::awaitable<bool> removed = AtLeader(view, s, internal::v1::MembershipRequest::REMOVE, to);
  if (!co_await std::move(removed)) co_return false;
  MutexLock lock(mu_);
  Erase(*PlacementLocked(s).mutable_joining(), to);
  BumpEpochLocked("shard " + std::to_string(s) + ": the move to " + rpc::NodeName(to) +
                  " is rolled back (it went away)");
  FinishMoveLocked();
  co_return true;
}

// Nothing while the new replica is a caught-up voter; else the move ends with the old replica
// kept (true, `to` went away) or waits (false, `to` is behind).
std::optional<bool> ReplicationImpl::KeepOldIfNewGone(const internal::v1::ReplicaMove& move,
                                                      const ShardView& view) {
  const uint64_t to = move.to();
  {
    MutexLock lock(mu_);
    if (GoneLocked(to)) {
      spdlog::warn("rebalance: {} went away; {} is kept", rpc::NodeName(to),
                   rpc::NodeName(move.from()));
      FinishMoveLocked();
      return true;
    }
  }
  auto it = view.reports.find(to);
  if (it == view.reports.end() || !cluster::CaughtUp(it->second, view.commit_index)) return false;
  return std::nullopt;
}

bool ReplicationImpl::Announce(const internal::v1::ReplicaMove& move) {
  const uint32_t s = move.shard();
  const uint64_t to = move.to();
  MutexLock lock(mu_);
  internal::v1::ShardPlacement& p = PlacementLocked(s);
  if (!Contains(p.joining(), to) && !Contains(p.voters(), to)) p.add_joining(to);
  BumpEpochLocked("shard " + std::to_string(s) + ": " + rpc::NodeName(to) + " joins");
  state_.mutable_move()->set_stage(kAddSpare);
  SaveOrLogLocked();
  return true;
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

// A voter that left the cluster at `to`'s raft address is a worker that lost its data and came
// back under a new id at the same address: it is removed first (it is dead, so this leaves the
// shard no less able to commit than it was). A live member at that address (members that came
// back in another order) stays: `to` is added under a name of its own ("<address>#<id>"), which
// libraft never finds taken. 0: none.
uint64_t ReplicationImpl::StaleVoterAtLocked(uint32_t shard, uint64_t to) {
  const internal::v1::NodeAddress* mine = rpc::FindNode(state_.topology(), to);
  uint64_t stale = 0;
  for (uint64_t voter : PlacementLocked(shard).voters()) {
    const internal::v1::NodeAddress* node = rpc::FindNode(state_.topology(), voter);
    if (voter != to && mine != nullptr && node != nullptr && Contains(state_.departed(), voter) &&
        node->raft_address() == mine->raft_address()) {
      stale = voter;
    }
  }
  return stale;
}

asio::awaitable<bool> ReplicationImpl::AddSpare(const internal::v1::ReplicaMove& move,
                                                const ShardView& view) {
  using internal::v1::MembershipRequest;
  const uint32_t s = move.shard();
  const uint64_t to = move.to();
  asio::awaitable<bool> holds = HoldsItsEpoch(to);
  if (!co_await std::move(holds)) co_return false;
  uint64_t stale = 0;
  {
    MutexLock lock(mu_);
    stale = StaleVoterAtLocked(s, to);
  }
  if (stale != 0) {
    asio::awaitable<bool> removed = AtLeader(view, s, MembershipRequest::REMOVE, stale);
    if (!co_await std::move(removed)) co_return false;
    MutexLock lock(mu_);
    Erase(*PlacementLocked(s).mutable_voters(), stale);
    BumpEpochLocked("shard " + std::to_string(s) + ": " + rpc::NodeName(stale) +
                    " removed first: " + rpc::NodeName(to) + " took its address");
    co_return false;  // the next tick adds `to`
  }
  asio::awaitable<bool> added = AtLeader(view, s, MembershipRequest::ADD_SPARE, to);
  if (!co_await std::move(added)) co_return false;
  AdvanceMove(kStandby);
  co_return true;
}

asio::awaitable<bool> ReplicationImpl::Standby(const internal::v1::ReplicaMove& move,
                                               const ShardView& view) {
  internal::v1::MembershipRequest standby;
  standby.set_shard(move.shard());
  standby.set_op(internal::v1::MembershipRequest::ASSIGN);
  standby.set_node_id(move.to());
  standby.set_role(internal::v1::GroupMember::STANDBY);
  asio::awaitable<bool> assigned = AtLeader(view, std::move(standby));
  if (!co_await std::move(assigned)) co_return false;
  AdvanceMove(kCatchUp);
  co_return false;  // its store's progress shows in the next tick's health
}

bool ReplicationImpl::CatchUp(const internal::v1::ReplicaMove& move, const ShardView& view) {
  auto it = view.reports.find(move.to());
  if (it == view.reports.end() || !cluster::CaughtUp(it->second, view.commit_index)) return false;
  AdvanceMove(kVoter);
  return true;
}

asio::awaitable<bool> ReplicationImpl::Vote(const internal::v1::ReplicaMove& move,
                                            const ShardView& view) {
  const uint32_t s = move.shard();
  const uint64_t to = move.to();
  internal::v1::MembershipRequest voter;
  voter.set_shard(s);
  voter.set_op(internal::v1::MembershipRequest::ASSIGN);
  voter.set_node_id(to);
  voter.set_role(internal::v1::GroupMember::VOTER);
  asio::awaitable<bool> assigned = AtLeader(view, std::move(voter));
  if (!co_await std::move(assigned)) co_return false;
  MutexLock lock(mu_);
  internal::v1::ShardPlacement& p = PlacementLocked(s);
  Erase(*p.mutable_joining(), to);
  AddVoter(p, to);
  BumpEpochLocked("shard " + std::to_string(s) + ": " + rpc::NodeName(to) + " votes");
  if (move.kind() == internal::v1::ReplicaMove::ADD) {
    FinishMoveLocked();
  } else {
    state_.mutable_move()->set_stage(kLeadOff);
    SaveOrLogLocked();
  }
  co_return true;
}

asio::awaitable<bool> ReplicationImpl::LeadOff(const internal::v1::ReplicaMove& move,
                                               const ShardView& view) {
  const uint32_t s = move.shard();
  const uint64_t from = move.from();
  if (view.leader != from) {
    AdvanceMove(kRemoveOld);
    co_return true;
  }
  // To the new replica when it holds data, else to another caught-up data replica.
  uint64_t target = 0;
  for (uint64_t node : leaders_[s]->replicas()) {
    auto it = view.reports.find(node);
    if (node == from || it == view.reports.end() ||
        !cluster::CaughtUp(it->second, view.commit_index)) {
      continue;
    }
    if (target == 0 || node == move.to()) target = node;
  }
  std::shared_ptr<rpc::WorkerClient> client = directory_.Client(from);
  if (target == 0 || !client) co_return false;
  asio::awaitable<Result<internal::v1::TransferResponse>> call =
      client->Transfer(s, target, Ms(2000));
  Result<internal::v1::TransferResponse> moved = co_await std::move(call);
  if (moved.ok()) leaders_[s]->NoteLeader(target);
  co_return false;  // the next tick's health shows the new leader
}

asio::awaitable<bool> ReplicationImpl::RemoveOld(const internal::v1::ReplicaMove& move,
                                                 const ShardView& view) {
  const uint32_t s = move.shard();
  const uint64_t from = move.from();
  asio::awaitable<bool> removed = AtLeader(view, s, internal::v1::MembershipRequest::REMOVE, from);
  if (!co_await std::move(removed)) co_return false;
  MutexLock lock(mu_);
  internal::v1::ShardPlacement& p = PlacementLocked(s);
  Erase(*p.mutable_voters(), from);
  Erase(*p.mutable_joining(), from);
  if (p.preferred_leader() == from && !rpc::DataVoters(p).empty()) {
    p.set_preferred_leader(rpc::DataVoters(p).front());
  }
  BumpEpochLocked("shard " + std::to_string(s) + ": " + rpc::NodeName(from) + " removed");
  FinishMoveLocked();
  co_return true;
}

}  // namespace das::control::replication_internal
