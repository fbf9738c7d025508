#include "control/cluster_record.h"

#include <algorithm>
#include <filesystem>
#include <random>
#include <utility>

#include <spdlog/spdlog.h>

#include "cluster/group_config.h"
#include "cluster/membership.h"
#include "cluster/topology_plan.h"
#include "common/durable_file.h"
#include "rpc/topology.h"

namespace das::control {
namespace {

using cluster::Contains;
using internal::v1::ControlState;
using internal::v1::ReplicaMove;
using internal::v1::Topology;

uint64_t NewClusterId() {
  std::random_device device;
  const uint64_t id = (static_cast<uint64_t>(device()) << 32) ^ device();
  return id != 0 ? id : 1;
}

ReplicaMove ToProto(const meta::Move& move) {
  ReplicaMove out;
  out.set_shard(move.shard);
  out.set_from(move.from);
  out.set_to(move.to);
  out.set_why(move.why);
  switch (move.kind) {
    case meta::Move::Kind::kReplace:
      out.set_kind(ReplicaMove::REPLACE);
      out.set_stage(cluster::kAnnounce);
      break;
    case meta::Move::Kind::kAdd:
      out.set_kind(ReplicaMove::ADD);
      out.set_stage(cluster::kAnnounce);
      break;
    case meta::Move::Kind::kRemove:
      out.set_kind(ReplicaMove::REMOVE);
      out.set_stage(cluster::kLeadOff);
      break;
    case meta::Move::Kind::kTransfer:
      out.set_kind(ReplicaMove::TRANSFER);
      break;
  }
  return out;
}

// How many moves the plan makes from `view` to a balanced cluster (bounded).
uint32_t PlannedMoves(meta::ClusterView view) {
  uint32_t pending = 0;
  for (std::optional<meta::Move> next = meta::NextMove(view); next && pending < 1000; ++pending) {
    view = meta::Apply(std::move(view), *next);
    next = meta::NextMove(view);
  }
  return pending;
}

}  // namespace

ClusterRecord::ClusterRecord(RecordOptions options, ControlState state, bool formed,
                             WorkerDirectory& directory, PlacementsChanged placements_changed,
                             Clock clock)
    : options_(std::move(options)),
      directory_(directory),
      placements_changed_(std::move(placements_changed)),
      clock_(std::move(clock)),
      state_(std::move(state)),
      formed_(formed) {
  MutexLock lock(mu_);
  const auto now = clock_();
  for (const internal::v1::NodeAddress& node : state_.topology().nodes()) {
    if (node.node_id() == rpc::kWitnessNodeId || Contains(state_.departed(), node.node_id())) {
      continue;
    }
    directory_.Set(node.node_id(), node.http_address());
    last_seen_[node.node_id()] = now;
  }
}

Topology ClusterRecord::topology() const {
  MutexLock lock(mu_);
  return state_.topology();
}

uint64_t ClusterRecord::epoch() const {
  MutexLock lock(mu_);
  return state_.topology().epoch();
}

bool ClusterRecord::formed() const {
  MutexLock lock(mu_);
  return formed_;
}

bool ClusterRecord::Form(const cluster::HealthMap& health) {
  MutexLock lock(mu_);
  if (formed_) return true;
  formed_ = state_.topology().placements_size() > 0 ? FormFromWorkersLocked(health)
                                                    : FormFromJoinsLocked();
  return formed_;
}

bool ClusterRecord::FormFromWorkersLocked(const cluster::HealthMap& health) {
  Topology& topology = *state_.mutable_topology();
  if (!cluster::FillRaftAddresses(topology, health)) return false;  // every raft port first
  topology.set_cluster_id(NewClusterId());
  if (Status saved = SaveLocked(); !saved.ok()) {
    spdlog::error("cannot keep the cluster state: {}", saved.ToString());
    return false;
  }
  spdlog::info("cluster {} formed: {} shards, replication factor {}", topology.cluster_id(),
               topology.shards(), topology.replication_factor());
  return true;
}

// An empty --workers: the first MinWorkers(R) workers that joined found the cluster.
bool ClusterRecord::FormFromJoinsLocked() {
  std::vector<internal::v1::NodeAddress> joined;
  for (const internal::v1::NodeAddress& node : state_.topology().nodes()) {
    if (node.node_id() != rpc::kWitnessNodeId) joined.push_back(node);
  }
  if (joined.size() < cluster::MinWorkers(options_.replication_factor)) return false;
  std::sort(joined.begin(), joined.end(),
            [](const auto& a, const auto& b) { return a.node_id() < b.node_id(); });
  *state_.mutable_topology() =
      cluster::PlanTopology(joined, options_.replication_factor, options_.shards,
                            options_.witness_address, NewClusterId());
  if (Status saved = SaveLocked(); !saved.ok()) {
    spdlog::error("cannot keep the cluster state: {}", saved.ToString());
    return false;
  }
  placements_changed_(state_.topology());
  spdlog::info("cluster {} formed by {} joined workers: {} shards, replication factor {}",
               state_.topology().cluster_id(), joined.size(), state_.topology().shards(),
               state_.topology().replication_factor());
  return true;
}

bool ClusterRecord::Settled() const {
  MutexLock lock(mu_);
  if (!formed_ || state_.move().kind() != ReplicaMove::NONE || moves_pending_ != 0) return false;
  for (const WorkerDirectory::Entry& w : directory_.Members()) {
    auto it = state_.adopted_epochs().find(w.id);
    if (it == state_.adopted_epochs().end() || it->second < state_.topology().epoch()) {
      return false;
    }
  }
  return true;
}

bool ClusterRecord::NeedsTopology(uint64_t id,
                                  const Result<internal::v1::WorkerHealthResponse>& health) const {
  MutexLock lock(mu_);
  const uint64_t epoch = state_.topology().epoch();
  auto adopted = state_.adopted_epochs().find(id);
  const bool ever = Contains(state_.adopted(), id);
  const bool current = adopted != state_.adopted_epochs().end() && adopted->second >= epoch;
  if (ever && health.ok() && health->cluster_id() != state_.topology().cluster_id()) {
    spdlog::error(
        "worker {} adopted cluster {} before but now holds {}: its data directory was replaced; "
        "it is not given the topology again (restart it with --join to make it a new member)",
        id, state_.topology().cluster_id(), health->cluster_id());
    return false;
  }
  // A worker that reports an older epoch than it adopted lost it (a restored backup, ...): it
  // is sent the newest again.
  if (current && (!health.ok() || health->epoch() >= epoch)) return false;
  return health.ok() || !ever;  // one that adopted before and is unreachable: at a later tick
}

void ClusterRecord::NoteAdopted(uint64_t id, uint64_t epoch) {
  MutexLock lock(mu_);
  if (!Contains(state_.adopted(), id)) state_.add_adopted(id);
  uint64_t& adopted = (*state_.mutable_adopted_epochs())[id];
  if (adopted >= epoch) return;
  adopted = epoch;
  SaveOrLogLocked();
  spdlog::info("worker {} holds the topology of epoch {}", id, adopted);
}

void ClusterRecord::NoteAlive(const cluster::HealthMap& health, bool failures_count) {
  MutexLock lock(mu_);
  const auto now = clock_();
  for (const auto& [id, result] : health) {
    if (result.ok() || failures_count) alive_[id] = result.ok();
    if (result.ok()) last_seen_[id] = now;
  }
}

meta::WorkerState ClusterRecord::StateOf(uint64_t id) const {
  MutexLock lock(mu_);
  return StateOfLocked(id, clock_());
}

std::string ClusterRecord::WorkerStateName(uint64_t id) const {
  switch (StateOf(id)) {
    case meta::WorkerState::kDraining:
      return "draining";
    case meta::WorkerState::kDead:
      return "dead";
    default:
      return "active";
  }
}

meta::WorkerState ClusterRecord::StateOfLocked(uint64_t id, TimePoint now) const {
  if (Contains(state_.draining(), id)) return meta::WorkerState::kDraining;
  if (Contains(state_.departed(), id)) return meta::WorkerState::kDead;
  auto seen = last_seen_.find(id);
  if (seen == last_seen_.end() || now - seen->second > options_.dead_worker_after) {
    return meta::WorkerState::kDead;
  }
  return meta::WorkerState::kActive;
}

// A move's target that is no active member any more (dead, drained, left).
bool ClusterRecord::GoneLocked(uint64_t id) const {
  return StateOfLocked(id, clock_()) != meta::WorkerState::kActive || !directory_.Client(id);
}

uint32_t ClusterRecord::RespondingWorkers(const std::set<uint64_t>& answered,
                                          const std::set<uint64_t>& failed) const {
  // A worker no read needed counts when its latest health check (the balancer's, once a
  // second, or a /health) answered.
  uint32_t responding = 0;
  MutexLock lock(mu_);
  for (const WorkerDirectory::Entry& w : directory_.Members()) {
    auto alive = alive_.find(w.id);
    const bool live = alive != alive_.end() && alive->second;
    if (answered.count(w.id) > 0 || (failed.count(w.id) == 0 && live)) ++responding;
  }
  return responding;
}

void ClusterRecord::FollowGroups(const std::vector<cluster::ShardView>& views) {
  MutexLock lock(mu_);
  const std::vector<std::string> whys = cluster::FollowGroupConfigurations(state_, views);
  if (whys.empty()) return;
  for (const std::string& why : whys) EpochRaisedLocked(why);
  SaveOrLogLocked();
}

void ClusterRecord::EpochRaisedLocked(std::string_view why) {
  placements_changed_(state_.topology());
  spdlog::info("cluster map epoch {}: {}", state_.topology().epoch(), why);
}

Status ClusterRecord::SaveLocked() {
  std::error_code error;
  std::filesystem::create_directories(std::filesystem::path(options_.state_path).parent_path(),
                                      error);
  return WriteFileDurably(options_.state_path, state_.SerializeAsString());
}

// For a change that is made whatever: a failure is logged (the next save may succeed; until
// then a restart finds the state before the change).
void ClusterRecord::SaveOrLogLocked() {
  if (Status saved = SaveLocked(); !saved.ok()) {
    spdlog::error("cannot keep the cluster state: {}", saved.ToString());
  }
}

meta::ClusterView ClusterRecord::ViewLocked() const {
  meta::ClusterView view;
  view.replication_factor = state_.topology().replication_factor();
  if (rpc::FindNode(state_.topology(), rpc::kWitnessNodeId) != nullptr) {
    view.witness_id = rpc::kWitnessNodeId;
  }
  const auto now = clock_();
  for (const WorkerDirectory::Entry& w : directory_.Members()) {
    view.workers.push_back(meta::WorkerView{w.id, StateOfLocked(w.id, now)});
  }
  // Each shard's leader as the plan sees it is its preferred one (the first data voter, where
  // the balancer keeps leadership), not whoever leads this second: an election's passing
  // leader must not make the plan move leaders for good.
  for (const internal::v1::ShardPlacement& p : state_.topology().placements()) {
    meta::ShardReplicas& shard = view.shards.emplace_back();
    shard.shard = p.shard();
    shard.voters.assign(p.voters().begin(), p.voters().end());
    const std::vector<uint64_t> data = rpc::DataVoters(p);
    if (!data.empty()) shard.leader = data.front();
  }
  return view;
}

// What a plan depends on besides the leaders: the map's epoch and every member's state.
std::string ClusterRecord::PlanInputsLocked() const {
  std::string out = std::to_string(state_.topology().epoch());
  const auto now = clock_();
  for (const WorkerDirectory::Entry& w : directory_.Members()) {
    out.append(" ").append(std::to_string(w.id)).append(":");
    out += std::to_string(static_cast<int>(StateOfLocked(w.id, now)));
  }
  return out;
}

std::optional<ReplicaMove> ClusterRecord::CurrentOrNextMove() {
  MutexLock lock(mu_);
  if (state_.move().kind() != ReplicaMove::NONE) return state_.move();
  RetireDrainedLocked();
  const meta::ClusterView view = ViewLocked();
  moves_pending_ = PlannedMoves(view);
  const std::optional<meta::Move> next = meta::NextMove(view);
  if (!next) {
    balanced_ = PlanInputsLocked();
    return std::nullopt;
  }
  balanced_.clear();
  *state_.mutable_move() = ToProto(*next);
  if (Status saved = SaveLocked(); !saved.ok()) {
    spdlog::error("cannot keep the cluster state: {}", saved.ToString());
    return std::nullopt;
  }
  spdlog::info("rebalance: {}", cluster::DescribeMove(state_.move()));
  return state_.move();
}

// Drained workers leave.
void ClusterRecord::RetireDrainedLocked() {
  for (uint64_t id : std::vector<uint64_t>(state_.draining().begin(), state_.draining().end())) {
    bool holds = false;
    for (const internal::v1::ShardPlacement& p : state_.topology().placements()) {
      holds = holds || Contains(p.voters(), id) || Contains(p.joining(), id);
    }
    if (holds) continue;
    cluster::Erase(*state_.mutable_draining(), id);
    state_.add_departed(id);
    directory_.Remove(id);
    alive_.erase(id);
    SaveOrLogLocked();
    spdlog::info("worker {} is drained and has left the cluster", id);
  }
}

std::optional<uint32_t> ClusterRecord::MovingShard() const {
  MutexLock lock(mu_);
  if (state_.move().kind() == ReplicaMove::NONE) return std::nullopt;
  return state_.move().shard();
}

ClusterRecord::PlannedStep ClusterRecord::PlanStep(
    const std::vector<cluster::ShardView>& views) const {
  MutexLock lock(mu_);
  PlannedStep planned;
  planned.move = state_.move();
  if (planned.move.kind() == ReplicaMove::NONE || planned.move.shard() >= views.size()) {
    return planned;
  }
  const uint64_t to = planned.move.to();
  const bool gone = to != 0 && to != rpc::kWitnessNodeId && GoneLocked(to);
  planned.step = cluster::PlanMoveStep(state_, views[planned.move.shard()], gone);
  return planned;
}

ClusterRecord::KeptStep ClusterRecord::KeepStep(const PlannedStep& planned) {
  using cluster::MoveEffect;
  MutexLock lock(mu_);
  const ReplicaMove& move = planned.move;
  const cluster::MoveResult result = cluster::ApplyMoveStep(state_, planned.step);
  const MoveEffect effect = planned.step.effect;
  if (effect == MoveEffect::kNone) return {};
  if (effect == MoveEffect::kOldKept) {
    spdlog::warn("rebalance: {} went away; {} is kept", rpc::NodeName(move.to()),
                 rpc::NodeName(move.from()));
  } else if (effect == MoveEffect::kDropped) {
    spdlog::error("rebalance: a move at an unknown stage {}; dropped", move.stage());
  }
  if (!result.epoch_why.empty()) EpochRaisedLocked(result.epoch_why);
  if (result.finished) {
    spdlog::info("rebalance: done: {} ({} bytes copied)", cluster::DescribeMove(move), move_bytes_);
    state_.set_bytes_copied(state_.bytes_copied() + move_bytes_);
    ++moves_done_;
  }
  if (result.finished || result.dropped) move_bytes_ = 0;
  SaveOrLogLocked();
  return KeptStep{result.advanced, effect == MoveEffect::kPreferred};
}

void ClusterRecord::NoteMoveBytes(const cluster::HealthMap& health) {
  MutexLock lock(mu_);
  const ReplicaMove& move = state_.move();
  if (move.kind() == ReplicaMove::NONE || move.to() == 0) return;
  auto it = health.find(move.to());
  if (it == health.end() || !it->second.ok()) return;
  for (const internal::v1::ReplicaHealth& replica : it->second->replicas()) {
    if (replica.shard() == move.shard()) move_bytes_ = std::max(move_bytes_, replica.copy_bytes());
  }
}

Result<internal::v1::JoinResponse> ClusterRecord::Join(const internal::v1::JoinRequest& request) {
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
  last_seen_[joined.id] = clock_();
  if (joined.changed && state_.topology().placements_size() > 0) {
    Topology& topology = *state_.mutable_topology();
    topology.set_epoch(topology.epoch() + 1);
    EpochRaisedLocked(rpc::NodeName(joined.id) + " at " + addresses.http);
    SaveOrLogLocked();
  } else {
    RETURN_IF_ERROR(SaveLocked());
  }
  internal::v1::JoinResponse response;
  response.set_node_id(joined.id);
  response.set_cluster_id(state_.topology().cluster_id());
  return response;
}

Status ClusterRecord::Decommission(uint64_t worker_id) {
  if (options_.replication_factor == 1) {
    return FailedPrecondition(
        "this cluster runs with --replication-factor 1: a worker's shards have no other "
        "replica to move from; membership needs replication (3 or more)");
  }
  MutexLock lock(mu_);
  if (!directory_.Client(worker_id)) {
    return NotFound("worker " + std::to_string(worker_id) + " is no member of the cluster");
  }
  const auto now = clock_();
  size_t active = 0;
  for (const WorkerDirectory::Entry& w : directory_.Members()) {
    if (w.id != worker_id && StateOfLocked(w.id, now) == meta::WorkerState::kActive) ++active;
  }
  ASSIGN_OR_RETURN(const bool drained, cluster::Drain(state_, worker_id, active));
  if (!drained) return Status::Ok();
  RETURN_IF_ERROR(SaveLocked());
  spdlog::info("worker {} is decommissioned: its replicas move to the others", worker_id);
  return Status::Ok();
}

Topology ClusterRecord::DescribeRebalance(das::v1::Rebalance& rebalance) const {
  MutexLock lock(mu_);
  const bool moving = state_.move().kind() != ReplicaMove::NONE;
  if (moving) rebalance.set_current_move(cluster::DescribeMove(state_.move()));
  rebalance.set_moves_pending(moves_pending_);
  rebalance.set_moves_done(moves_done_);
  rebalance.set_bytes_copied(state_.bytes_copied() + move_bytes_);
  rebalance.set_epoch(state_.topology().epoch());
  rebalance.set_balanced(!moving && !balanced_.empty() && balanced_ == PlanInputsLocked());
  return state_.topology();
}

}  // namespace das::control
