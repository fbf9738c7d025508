#include "control/replication.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <utility>

#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "cluster/leader_balance.h"
#include "cluster/membership.h"
#include "cluster/shard_view.h"
#include "cluster/topology_plan.h"
#include "common/durable_file.h"
#include "common/hash.h"
#include "common/mutex.h"
#include "control/gather.h"
#include "control/witness.h"
#include "http/await.h"
#include "meta/plan.h"
#include "rpc/routes.h"
#include "rpc/topology.h"

namespace das::control {
namespace {

namespace asio = boost::asio;
using internal::v1::ControlState;
using internal::v1::ReplicaHealth;
using internal::v1::Topology;
using internal::v1::WorkerHealthResponse;
using Ms = std::chrono::milliseconds;
using cluster::Contains;
using cluster::Erase;
using cluster::HostOf;
using cluster::ShardView;

constexpr char kStateFile[] = "cluster.pb";
constexpr Ms kFormingTick{200};
constexpr Ms kBalanceTick{1000};
// A leader is asked to hand a shard back to its preferred worker at most this often.
constexpr auto kTransferBackoff = std::chrono::seconds(5);
constexpr auto kStopWait = std::chrono::seconds(5);
// The balancer's health checks: background work, so a loaded worker is given time.
constexpr Ms kBalancerHealthDeadline{3000};

uint64_t NewClusterId() {
  std::random_device device;
  const uint64_t id = (static_cast<uint64_t>(device()) << 32) ^ device();
  return id != 0 ? id : 1;
}

// The stages of a replica move (internal::v1::ReplicaMove.stage).
enum Stage : uint32_t {
  kAnnounce = 0,  // `to` named as joining in a new epoch
  kAddSpare = 1,  // once `to` holds that epoch
  kStandby = 2,   // libraft brings it up to date
  kCatchUp = 3,   // its store caught up (a copy installed, the log applied)
  kVoter = 4,
  kLeadOff = 5,    // leadership off `from`
  kRemoveOld = 6,  // `from` removed
};

std::string_view StageName(uint32_t stage) {
  static constexpr std::string_view kNames[] = {"announce", "add spare", "standby",   "catch up",
                                                "voter",    "lead off",  "remove old"};
  return stage < std::size(kNames) ? kNames[stage] : "?";
}

std::string Describe(const internal::v1::ReplicaMove& move) {
  std::string out = "shard " + std::to_string(move.shard()) + ": ";
  if (move.from() != 0) out += rpc::NodeName(move.from());
  out += " -> ";
  if (move.to() != 0) out += rpc::NodeName(move.to());
  out.append(" (").append(StageName(move.stage())).append("): ").append(move.why());
  return out;
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

// Adds `id` to `placement`'s voters: data replicas before the witness.
void AddVoter(internal::v1::ShardPlacement& placement, uint64_t id) {
  if (Contains(placement.voters(), id)) return;
  std::vector<uint64_t> voters = rpc::DataVoters(placement);
  const bool witness = Contains(placement.voters(), rpc::kWitnessNodeId);
  if (id != rpc::kWitnessNodeId) voters.push_back(id);
  if (witness || id == rpc::kWitnessNodeId) voters.push_back(rpc::kWitnessNodeId);
  *placement.mutable_voters() = {voters.begin(), voters.end()};
}

class ReplicationImpl final : public Replication {
 public:
  ReplicationImpl(asio::any_io_executor executor, ReplicationOptions options,
                  WorkerDirectory::Factory clients, ControlState state, bool formed)
      : executor_(std::move(executor)),
        options_(std::move(options)),
        directory_(std::move(clients)),
        state_(std::move(state)),
        formed_(formed),
        shard_of_slot_(cluster::ShardOfSlot(options_.shards)),
        last_transfer_(options_.shards) {
    const auto now = std::chrono::steady_clock::now();
    for (uint32_t s = 0; s < options_.shards; ++s) {
      std::vector<uint64_t> data;
      if (s < static_cast<uint32_t>(state_.topology().placements_size())) {
        data = rpc::DataVoters(state_.topology().placements(static_cast<int>(s)));
      }
      leaders_.push_back(std::make_unique<ShardLeader>(executor_, s, data, directory_));
    }
    const std::set<uint64_t> departed(state_.departed().begin(), state_.departed().end());
    for (const internal::v1::NodeAddress& node : state_.topology().nodes()) {
      if (node.node_id() == rpc::kWitnessNodeId || departed.count(node.node_id()) > 0) continue;
      directory_.Set(node.node_id(), node.http_address());
      last_seen_[node.node_id()] = now;  // a restarted control node gives each worker its time
    }
  }
  ~ReplicationImpl() override {
    Stop();
    // Here, not in Stop(): /health may still read the witness until the server has stopped,
    // and the service (which owns this object) is destroyed after the server.
    witness_view_.store(nullptr, std::memory_order_release);
    if (witness_) witness_->Close();
    directory_.CloseAll();
  }

  void Start() override {
    {
      MutexLock lock(mu_);
      running_ = true;
    }
    asio::co_spawn(executor_, Run(), asio::detached);
  }

  // The background loop sees stopping_ at its next pause (at most a tick) or between shards;
  // the wait is bounded, since a push or a transfer in flight may take seconds.
  void Stop() override {
    UniqueLock lock(mu_);
    stopping_ = true;
    if (!stopped_.wait_for(lock.native(), kStopWait,
                           [this]() REQUIRES(mu_) { return !running_; })) {
      spdlog::warn("replication: the background loop is still busy; stopping anyway");
    }
  }

  bool ready() const override { return ready_.load(std::memory_order_acquire); }
  const WorkerDirectory& workers() const override { return directory_; }
  uint32_t total_nodes() const override { return static_cast<uint32_t>(directory_.size()); }
  uint32_t shards() const override { return static_cast<uint32_t>(leaders_.size()); }
  uint32_t ShardOf(std::string_view partition_key) const override {
    return shard_of_slot_[HashPartitionKey(partition_key) % kSlots];
  }
  ShardLeader& LeaderOf(uint32_t shard) override { return *leaders_.at(shard); }

  asio::awaitable<ShardedAggregate> ReadAll(Ms timeout) override;
  std::pair<uint32_t, uint32_t> SlotsOf(uint32_t shard) const override {
    // A shard's slots are contiguous (rpc::ValidateTopology).
    auto first = std::find(shard_of_slot_.begin(), shard_of_slot_.end(), shard);
    auto end =
        std::find_if(first, shard_of_slot_.end(), [shard](uint32_t s) { return s != shard; });
    return {static_cast<uint32_t>(first - shard_of_slot_.begin()),
            static_cast<uint32_t>(end - shard_of_slot_.begin())};
  }
  uint32_t RespondingWorkers(const std::set<uint64_t>& answered,
                             const std::set<uint64_t>& failed) override;
  asio::awaitable<std::vector<ReplicaHealth>> WitnessHealth() override {
    Witness* witness = witness_view_.load(std::memory_order_acquire);
    if (witness == nullptr) co_return std::vector<ReplicaHealth>{};
    auto start = [witness](auto done) { witness->Health(std::move(done)); };
    asio::awaitable<std::vector<ReplicaHealth>> op =
        http::AwaitCallback<std::vector<ReplicaHealth>>(std::move(start));
    co_return co_await std::move(op);
  }

  bool DescribeShards(const std::map<uint64_t, Result<WorkerHealthResponse>>& workers,
                      const std::vector<ReplicaHealth>& witness,
                      das::v1::HealthResponse& response) override;

  Result<internal::v1::JoinResponse> Join(const internal::v1::JoinRequest& request) override;
  Status Decommission(uint64_t worker_id) override;
  std::string WorkerState(uint64_t worker_id) override {
    MutexLock lock(mu_);
    switch (StateOfLocked(worker_id, std::chrono::steady_clock::now())) {
      case meta::WorkerState::kDraining:
        return "draining";
      case meta::WorkerState::kDead:
        return "dead";
      default:
        return "active";
    }
  }

  std::string StatePath() const {
    return (std::filesystem::path(options_.data_dir) / kStateFile).string();
  }

 private:
  using HealthMap = cluster::HealthMap;
  asio::awaitable<void> Run();
  asio::awaitable<void> Tick();
  asio::awaitable<HealthMap> GatherHealth();
  void Form(const HealthMap& health) REQUIRES(mu_);
  void FormFromJoins() REQUIRES(mu_);
  void OpenWitness();
  asio::awaitable<void> PushTopology(const HealthMap& health);
  asio::awaitable<Result<internal::v1::TopologyResponse>> PushTo(uint64_t id);
  asio::awaitable<void> Balance(const std::vector<ShardView>& views);
  // What each shard's replicas said (the workers' health and the witness's): reads only.
  std::vector<ShardView> Views(const HealthMap& health,
                               const std::vector<ReplicaHealth>& witness) const;
  void NoteAlive(const HealthMap& health, bool failures_count);
  // Keeps move_bytes_: the copy_bytes of the current move's new replica, as reported.
  void NoteMoveBytes(const HealthMap& health);
  void NoteReady(const std::vector<ShardView>& views);
  Status SaveStateLocked() REQUIRES(mu_);
  // The same, for a change that is made whatever: a failure is logged (the next save may
  // succeed; until then a restart finds the state before the change).
  void SaveOrLogLocked() REQUIRES(mu_) {
    if (Status saved = SaveStateLocked(); !saved.ok()) {
      spdlog::error("cannot keep the cluster state: {}", saved.ToString());
    }
  }

  // Membership (docs/operations.md, "Membership").
  meta::WorkerState StateOfLocked(uint64_t id, std::chrono::steady_clock::time_point now) const
      REQUIRES(mu_);
  // A move's target that is no active member any more (dead, drained, left).
  bool GoneLocked(uint64_t id) const REQUIRES(mu_) {
    return StateOfLocked(id, std::chrono::steady_clock::now()) != meta::WorkerState::kActive ||
           !directory_.Client(id);
  }
  // The plan's view: the map's voters, and as each shard's leader its preferred one (the first
  // data voter, where the balancer keeps leadership), not whoever leads this second: an
  // election's passing leader must not make the plan move leaders for good.
  meta::ClusterView ViewLocked() const REQUIRES(mu_);
  // REQUIRES: mu_ held. A new epoch of the topology, kept; the shards' leaders learn their
  // replicas.
  void BumpEpochLocked(std::string_view why) REQUIRES(mu_);
  // Makes the map agree with the groups' own configurations where no move is under way.
  void AdoptConfigurations(const std::vector<ShardView>& views);
  // Carries the current move on as far as it can go now, or plans the next one.
  asio::awaitable<void> Rebalance(const std::vector<ShardView>& views);
  // One stage of the move under way: true when it advanced (the next may follow at once).
  asio::awaitable<bool> Step(internal::v1::ReplicaMove move, const std::vector<ShardView>& views);
  // The stages (Step).
  bool PreferLeader(const internal::v1::ReplicaMove& move);
  asio::awaitable<std::optional<bool>> RollBackIfGone(const internal::v1::ReplicaMove& move,
                                                      const ShardView& view);
  std::optional<bool> KeepOldIfNewGone(const internal::v1::ReplicaMove& move,
                                       const ShardView& view);
  bool Announce(const internal::v1::ReplicaMove& move);
  asio::awaitable<bool> HoldsItsEpoch(uint64_t to);
  uint64_t StaleVoterAtLocked(uint32_t shard, uint64_t to) REQUIRES(mu_);
  asio::awaitable<bool> AddSpare(const internal::v1::ReplicaMove& move, const ShardView& view);
  asio::awaitable<bool> Standby(const internal::v1::ReplicaMove& move, const ShardView& view);
  bool CatchUp(const internal::v1::ReplicaMove& move, const ShardView& view);
  asio::awaitable<bool> Vote(const internal::v1::ReplicaMove& move, const ShardView& view);
  asio::awaitable<bool> LeadOff(const internal::v1::ReplicaMove& move, const ShardView& view);
  asio::awaitable<bool> RemoveOld(const internal::v1::ReplicaMove& move, const ShardView& view);
  void AdvanceMove(uint32_t stage);
  internal::v1::ShardPlacement& PlacementLocked(uint32_t shard) REQUIRES(mu_);
  // One membership step at the shard's leader; true once done.
  asio::awaitable<bool> AtLeader(const ShardView& view, internal::v1::MembershipRequest request);
  asio::awaitable<bool> AtLeader(const ShardView& view, uint32_t shard,
                                 internal::v1::MembershipRequest::Op op, uint64_t node);
  void FinishMoveLocked() REQUIRES(mu_);
  // What a plan depends on besides the leaders: the map's epoch and every member's state.
  std::string PlanInputsLocked() const REQUIRES(mu_) {
    std::string out = std::to_string(state_.topology().epoch());
    const auto now = std::chrono::steady_clock::now();
    for (const WorkerDirectory::Entry& w : directory_.Members()) {
      out.append(" ").append(std::to_string(w.id)).append(":");
      out += std::to_string(static_cast<int>(StateOfLocked(w.id, now)));
    }
    return out;
  }
  // Drained workers leave.
  void RetireDrainedLocked() REQUIRES(mu_);

  asio::any_io_executor executor_;
  const ReplicationOptions options_;
  WorkerDirectory directory_;
  std::vector<std::unique_ptr<ShardLeader>> leaders_;

  mutable Mutex mu_;
  std::condition_variable stopped_;
  ControlState state_ GUARDED_BY(mu_);   // once Start() ran
  bool formed_ GUARDED_BY(mu_) = false;  // the workers' raft addresses are known
  bool stopping_ GUARDED_BY(mu_) = false;
  bool running_ GUARDED_BY(mu_) = false;  // Run() has not returned
  std::unique_ptr<Witness> witness_;      // set once by Run(); closed by Stop()
  std::atomic<Witness*> witness_view_{nullptr};
  uint64_t witness_epoch_ = 0;  // Run() only: the epoch the witness holds
  std::atomic<bool> ready_{false};
  // Whether each worker's latest health check answered, for responding_nodes.
  std::map<uint64_t, bool> alive_ GUARDED_BY(mu_);
  // When each worker last answered a health check (or joined).
  std::map<uint64_t, std::chrono::steady_clock::time_point> last_seen_ GUARDED_BY(mu_);
  uint32_t moves_pending_ GUARDED_BY(mu_) = 0;  // planned after the current one
  uint64_t moves_done_ GUARDED_BY(mu_) = 0;
  // Bytes the current move's new replica fetched so far, as its worker last reported them.
  uint64_t move_bytes_ GUARDED_BY(mu_) = 0;
  // PlanInputsLocked() of the last plan that found nothing to do.
  std::string balanced_ GUARDED_BY(mu_);
  const std::vector<uint32_t> shard_of_slot_;
  std::vector<std::chrono::steady_clock::time_point> last_transfer_;  // Run() only
};

asio::awaitable<void> ReplicationImpl::Run() {
  for (;;) {
    try {
      asio::awaitable<void> tick = Tick();
      co_await std::move(tick);
    } catch (const std::exception& e) {
      spdlog::error("replication: {}", e.what());  // a bug; the next tick tries again
    }
    asio::steady_timer timer(executor_);
    {
      MutexLock lock(mu_);
      if (stopping_) break;
      bool settled =
          formed_ && state_.move().kind() == internal::v1::ReplicaMove::NONE && moves_pending_ == 0;
      for (const WorkerDirectory::Entry& w : directory_.Members()) {
        auto it = state_.adopted_epochs().find(w.id);
        settled = settled && it != state_.adopted_epochs().end() &&
                  it->second >= state_.topology().epoch();
      }
      timer.expires_after(settled ? kBalanceTick : kFormingTick);
    }
    auto [ignored] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    (void)ignored;
    MutexLock lock(mu_);
    if (stopping_) break;
  }
  MutexLock lock(mu_);
  running_ = false;
  stopped_.notify_all();
}

asio::awaitable<void> ReplicationImpl::Tick() {
  asio::awaitable<HealthMap> gather = GatherHealth();
  HealthMap health = co_await std::move(gather);
  NoteAlive(health, true);
  NoteMoveBytes(health);
  bool formed = false;
  {
    MutexLock lock(mu_);
    if (!formed_) {
      if (state_.topology().placements_size() > 0) {
        Form(health);
      } else {
        FormFromJoins();
      }
    }
    formed = formed_;
  }
  if (!formed) co_return;
  OpenWitness();
  asio::awaitable<void> push = PushTopology(health);
  co_await std::move(push);
  asio::awaitable<std::vector<ReplicaHealth>> witness_health = WitnessHealth();
  const std::vector<ReplicaHealth> witness = co_await std::move(witness_health);
  std::vector<ShardView> views = Views(health, witness);
  NoteReady(views);
  AdoptConfigurations(views);
  asio::awaitable<void> rebalance = Rebalance(views);
  co_await std::move(rebalance);
  asio::awaitable<void> balance = Balance(views);
  co_await std::move(balance);
}

asio::awaitable<ReplicationImpl::HealthMap> ReplicationImpl::GatherHealth() {
  std::vector<uint64_t> ids;
  std::vector<asio::awaitable<Result<WorkerHealthResponse>>> calls;
  for (const WorkerDirectory::Entry& w : directory_.Members()) {
    ids.push_back(w.id);
    calls.push_back(w.client->Health(kBalancerHealthDeadline));
  }
  asio::awaitable<std::vector<Result<WorkerHealthResponse>>> gather =
      GatherAll<WorkerHealthResponse>(executor_, std::move(calls));
  std::vector<Result<WorkerHealthResponse>> results = co_await std::move(gather);
  HealthMap out;
  for (size_t i = 0; i < ids.size(); ++i) {
    // A worker that answers under another id is not this member (its data directory was
    // emptied, and it joined again as a new worker).
    if (results[i].ok() && results[i]->worker_id() != ids[i]) {
      results[i] = Unavailable("the worker there is worker " +
                               std::to_string(results[i]->worker_id()) + " now");
    }
    out.emplace(ids[i], std::move(results[i]));
  }
  co_return out;
}

void ReplicationImpl::Form(const HealthMap& health) {
  for (const internal::v1::NodeAddress& node : state_.topology().nodes()) {
    if (node.node_id() == rpc::kWitnessNodeId || !node.raft_address().empty()) continue;
    auto it = health.find(node.node_id());
    if (it == health.end() || !it->second.ok() || it->second->raft_port() == 0) {
      return;  // every worker's raft port first
    }
  }
  Topology& topology = *state_.mutable_topology();
  topology.set_cluster_id(NewClusterId());
  for (internal::v1::NodeAddress& node : *topology.mutable_nodes()) {
    if (node.node_id() == rpc::kWitnessNodeId || !node.raft_address().empty()) continue;
    node.set_raft_address(HostOf(node.http_address()) + ":" +
                          std::to_string(health.at(node.node_id())->raft_port()));
  }
  if (Status saved = SaveStateLocked(); !saved.ok()) {
    spdlog::error("cannot keep the cluster state: {}", saved.ToString());
    return;
  }
  formed_ = true;
  spdlog::info("cluster {} formed: {} shards, replication factor {}", topology.cluster_id(),
               topology.shards(), topology.replication_factor());
}

// An empty --workers: the first MinWorkers(R) workers that joined found the cluster.
void ReplicationImpl::FormFromJoins() {
  std::vector<internal::v1::NodeAddress> joined;
  for (const internal::v1::NodeAddress& node : state_.topology().nodes()) {
    if (node.node_id() != rpc::kWitnessNodeId) joined.push_back(node);
  }
  if (joined.size() < cluster::MinWorkers(options_.replication_factor)) return;
  std::sort(joined.begin(), joined.end(),
            [](const auto& a, const auto& b) { return a.node_id() < b.node_id(); });
  const std::string advertised =
      options_.advertise_host.empty() ? options_.raft_host : options_.advertise_host;
  *state_.mutable_topology() =
      cluster::PlanTopology(joined, options_.replication_factor, options_.shards,
                            advertised + ":" + std::to_string(options_.raft_port), NewClusterId());
  if (Status saved = SaveStateLocked(); !saved.ok()) {
    spdlog::error("cannot keep the cluster state: {}", saved.ToString());
    return;
  }
  for (const internal::v1::ShardPlacement& p : state_.topology().placements()) {
    leaders_[p.shard()]->SetReplicas(rpc::DataVoters(p));
    leaders_[p.shard()]->NoteLeader(p.preferred_leader());
  }
  formed_ = true;
  spdlog::info("cluster {} formed by {} joined workers: {} shards, replication factor {}",
               state_.topology().cluster_id(), joined.size(), state_.topology().shards(),
               state_.topology().replication_factor());
}

void ReplicationImpl::OpenWitness() {
  Topology topology;
  {
    MutexLock lock(mu_);
    if (rpc::FindNode(state_.topology(), rpc::kWitnessNodeId) == nullptr) return;
    if (witness_ && witness_epoch_ == state_.topology().epoch()) return;
    topology = state_.topology();
  }
  if (witness_) {
    if (Status adopted = witness_->Adopt(topology); !adopted.ok()) {
      spdlog::error("the witness cannot take epoch {}: {}", topology.epoch(), adopted.ToString());
      return;
    }
    witness_epoch_ = topology.epoch();
    return;
  }
  WitnessOptions options;
  options.data_dir = options_.data_dir;
  options.listen_address = options_.raft_host + ":" + std::to_string(options_.raft_port);
  options.election_timeout_ms = options_.election_timeout_ms;
  options.heartbeat_timeout_ms = std::max(10u, options_.election_timeout_ms / 10);
  options.cluster_secret = options_.cluster_secret;
  options.log_budget_bytes = options_.log_budget_bytes;
  Result<std::unique_ptr<Witness>> witness = Witness::Open(options, topology);
  if (!witness.ok()) {
    spdlog::error("cannot open the witness: {}", witness.status().ToString());
    return;
  }
  MutexLock lock(mu_);
  witness_ = std::move(witness).value();
  witness_epoch_ = topology.epoch();
  witness_view_.store(witness_.get(), std::memory_order_release);
}

asio::awaitable<Result<internal::v1::TopologyResponse>> ReplicationImpl::PushTo(uint64_t id) {
  internal::v1::TopologyRequest request;
  {
    MutexLock lock(mu_);
    *request.mutable_topology() = state_.topology();
  }
  request.set_node_id(id);
  std::shared_ptr<rpc::WorkerClient> client = directory_.Client(id);
  if (!client) co_return NotFound("worker " + std::to_string(id) + " is no member");
  asio::awaitable<Result<internal::v1::TopologyResponse>> call =
      client->Topology(request, std::chrono::seconds(10));
  Result<internal::v1::TopologyResponse> answer = co_await std::move(call);
  if (!answer.ok()) {
    spdlog::warn("worker {} did not take the topology of epoch {}: {}", id,
                 request.topology().epoch(), answer.status().ToString());
    co_return answer;
  }
  MutexLock lock(mu_);
  if (!Contains(state_.adopted(), id)) state_.add_adopted(id);
  uint64_t& adopted = (*state_.mutable_adopted_epochs())[id];
  if (adopted < request.topology().epoch()) {
    adopted = request.topology().epoch();
    SaveOrLogLocked();
    spdlog::info("worker {} holds the topology of epoch {}", id, adopted);
  }
  co_return answer;
}

asio::awaitable<void> ReplicationImpl::PushTopology(const HealthMap& health) {
  std::vector<uint64_t> ids;
  std::vector<asio::awaitable<Result<internal::v1::TopologyResponse>>> calls;
  for (const auto& [id, h] : health) {
    {
      MutexLock lock(mu_);
      const uint64_t epoch = state_.topology().epoch();
      auto adopted = state_.adopted_epochs().find(id);
      const bool ever = Contains(state_.adopted(), id);
      const bool current = adopted != state_.adopted_epochs().end() && adopted->second >= epoch;
      if (ever && h.ok() && h->cluster_id() != state_.topology().cluster_id()) {
        spdlog::error(
            "worker {} adopted cluster {} before but now holds {}: its data directory was "
            "replaced; it is not given the topology again (restart it with --join to make it a "
            "new member)",
            id, state_.topology().cluster_id(), h->cluster_id());
        continue;
      }
      // A worker that reports an older epoch than it adopted lost it (a restored backup, ...):
      // it is sent the newest again.
      if (current && (!h.ok() || h->epoch() >= epoch)) continue;
      if (!h.ok() && ever) continue;  // not reachable now: at the next tick
    }
    ids.push_back(id);
    calls.push_back(PushTo(id));
  }
  asio::awaitable<std::vector<Result<internal::v1::TopologyResponse>>> gather =
      GatherAll<internal::v1::TopologyResponse>(executor_, std::move(calls));
  co_await std::move(gather);
}

Status ReplicationImpl::SaveStateLocked() {
  std::error_code error;
  std::filesystem::create_directories(options_.data_dir, error);
  return WriteFileDurably(StatePath(), state_.SerializeAsString());
}

void ReplicationImpl::NoteMoveBytes(const HealthMap& health) {
  MutexLock lock(mu_);
  const internal::v1::ReplicaMove& move = state_.move();
  if (move.kind() == internal::v1::ReplicaMove::NONE || move.to() == 0) return;
  auto it = health.find(move.to());
  if (it == health.end() || !it->second.ok()) return;
  for (const internal::v1::ReplicaHealth& replica : it->second->replicas()) {
    if (replica.shard() == move.shard()) move_bytes_ = std::max(move_bytes_, replica.copy_bytes());
  }
}

void ReplicationImpl::NoteAlive(const HealthMap& health, bool failures_count) {
  MutexLock lock(mu_);
  const auto now = std::chrono::steady_clock::now();
  for (const auto& [id, result] : health) {
    if (result.ok() || failures_count) alive_[id] = result.ok();
    if (result.ok()) last_seen_[id] = now;
  }
}

std::vector<ShardView> ReplicationImpl::Views(const HealthMap& health,
                                              const std::vector<ReplicaHealth>& witness) const {
  return cluster::ShardViews(static_cast<uint32_t>(leaders_.size()), health, witness);
}

void ReplicationImpl::NoteReady(const std::vector<ShardView>& views) {
  if (ready()) return;
  // With one voter a shard, a dead worker's shards have no leader until it is back: the others
  // serve meanwhile (answers partial), as once every reachable shard is led.
  const bool led = options_.replication_factor == 1 ? cluster::EveryReachableShardLed(views)
                                                    : cluster::EveryShardLedByData(views);
  if (!led) return;
  if (!ready_.exchange(true)) spdlog::info("every shard has a leader: ready");
}

asio::awaitable<void> ReplicationImpl::Balance(const std::vector<ShardView>& views) {
  const auto now = std::chrono::steady_clock::now();
  std::vector<std::pair<uint32_t, uint64_t>> moves;  // (shard, to)
  std::vector<asio::awaitable<Result<internal::v1::TransferResponse>>> calls;
  uint32_t moving = UINT32_MAX;  // the rebalancer's shard: it moves that one's leadership
  {
    MutexLock lock(mu_);
    if (state_.move().kind() != internal::v1::ReplicaMove::NONE) moving = state_.move().shard();
  }
  for (size_t s = 0; s < views.size(); ++s) {
    {
      MutexLock lock(mu_);
      if (stopping_) co_return;
    }
    const ShardView& view = views[s];
    if (view.leader == 0) continue;
    ShardLeader& shard = *leaders_[s];
    shard.NoteLeader(view.leader);
    if (s == moving) continue;
    const std::optional<uint64_t> preferred = cluster::LeaderTarget(view, shard.replicas());
    if (!preferred) continue;
    const uint64_t target = *preferred;
    if (now - last_transfer_[s] < kTransferBackoff) continue;
    std::shared_ptr<rpc::WorkerClient> client = directory_.Client(view.leader);
    if (!client) continue;
    last_transfer_[s] = now;
    moves.emplace_back(static_cast<uint32_t>(s), target);
    calls.push_back([](std::shared_ptr<rpc::WorkerClient> c, uint32_t shard,
                       uint64_t to) -> asio::awaitable<Result<internal::v1::TransferResponse>> {
      asio::awaitable<Result<internal::v1::TransferResponse>> call =
          c->Transfer(shard, to, Ms(2000));
      co_return co_await std::move(call);
    }(client, static_cast<uint32_t>(s), target));
  }
  // All at once, so that a tick lasts one transfer at most, not one per shard.
  asio::awaitable<std::vector<Result<internal::v1::TransferResponse>>> gather =
      GatherAll<internal::v1::TransferResponse>(executor_, std::move(calls));
  std::vector<Result<internal::v1::TransferResponse>> moved = co_await std::move(gather);
  for (size_t i = 0; i < moved.size(); ++i) {
    const auto [shard, preferred] = moves[i];
    if (moved[i].ok()) {
      spdlog::info("shard {}: leadership handed to {}", shard, rpc::NodeName(preferred));
      leaders_[shard]->NoteLeader(preferred);
    } else {
      spdlog::debug("shard {}: transfer to {} failed: {}", shard, preferred,
                    moved[i].status().ToString());
    }
  }
}

meta::WorkerState ReplicationImpl::StateOfLocked(uint64_t id,
                                                 std::chrono::steady_clock::time_point now) const {
  if (Contains(state_.draining(), id)) return meta::WorkerState::kDraining;
  if (Contains(state_.departed(), id)) return meta::WorkerState::kDead;
  auto seen = last_seen_.find(id);
  if (seen == last_seen_.end() || now - seen->second > options_.dead_worker_after) {
    return meta::WorkerState::kDead;
  }
  return meta::WorkerState::kActive;
}

meta::ClusterView ReplicationImpl::ViewLocked() const {
  meta::ClusterView view;
  view.replication_factor = state_.topology().replication_factor();
  if (rpc::FindNode(state_.topology(), rpc::kWitnessNodeId) != nullptr) {
    view.witness_id = rpc::kWitnessNodeId;
  }
  const auto now = std::chrono::steady_clock::now();
  for (const WorkerDirectory::Entry& w : directory_.Members()) {
    view.workers.push_back(meta::WorkerView{w.id, StateOfLocked(w.id, now)});
  }
  for (const internal::v1::ShardPlacement& p : state_.topology().placements()) {
    meta::ShardReplicas& shard = view.shards.emplace_back();
    shard.shard = p.shard();
    shard.voters.assign(p.voters().begin(), p.voters().end());
    const std::vector<uint64_t> data = rpc::DataVoters(p);
    if (!data.empty()) shard.leader = data.front();
  }
  return view;
}

void ReplicationImpl::BumpEpochLocked(std::string_view why) {
  Topology& topology = *state_.mutable_topology();
  topology.set_epoch(topology.epoch() + 1);
  for (const internal::v1::ShardPlacement& p : topology.placements()) {
    leaders_[p.shard()]->SetReplicas(rpc::DataVoters(p));
  }
  SaveOrLogLocked();
  spdlog::info("cluster map epoch {}: {}", topology.epoch(), why);
}

void ReplicationImpl::AdoptConfigurations(const std::vector<ShardView>& views) {
  MutexLock lock(mu_);
  const internal::v1::ReplicaMove& move = state_.move();
  for (internal::v1::ShardPlacement& p : *state_.mutable_topology()->mutable_placements()) {
    if (move.kind() != internal::v1::ReplicaMove::NONE && move.shard() == p.shard()) continue;
    const ShardView& view = views[p.shard()];
    if (view.leader == 0) continue;
    const ReplicaHealth& report = view.reports.at(view.leader);
    if (report.members_size() == 0) continue;
    std::set<uint64_t> voters;
    for (const internal::v1::GroupMember& m : report.members()) {
      if (m.role() == internal::v1::GroupMember::VOTER) voters.insert(m.node_id());
    }
    const std::set<uint64_t> mapped(p.voters().begin(), p.voters().end());
    if (voters == mapped || voters.empty()) continue;
    bool known = true;
    for (uint64_t v : voters) known = known && rpc::FindNode(state_.topology(), v) != nullptr;
    if (!known) continue;
    std::vector<uint64_t> kept;
    for (uint64_t v : p.voters()) {
      if (voters.count(v) > 0) kept.push_back(v);
    }
    for (uint64_t v : voters) {
      if (std::find(kept.begin(), kept.end(), v) == kept.end()) kept.push_back(v);
    }
    p.clear_voters();
    for (uint64_t v : kept) AddVoter(p, v);
    p.clear_joining();
    BumpEpochLocked("shard " + std::to_string(p.shard()) +
                    ": the map follows the group's own configuration");
  }
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
    return InvalidArgument(
        "this cluster runs with --replication-factor 1: a worker's shards have no other "
        "replica to move from; membership needs replication (3 or more)");
  }
  MutexLock lock(mu_);
  if (!directory_.Client(worker_id)) {
    return NotFound("worker " + std::to_string(worker_id) + " is no member of the cluster");
  }
  if (Contains(state_.draining(), worker_id)) return Status::Ok();
  const auto now = std::chrono::steady_clock::now();
  size_t active = 0;
  for (const WorkerDirectory::Entry& w : directory_.Members()) {
    if (w.id != worker_id && StateOfLocked(w.id, now) == meta::WorkerState::kActive) ++active;
  }
  if (active < cluster::MinWorkers(state_.topology().replication_factor())) {
    return InvalidArgument("worker " + std::to_string(worker_id) +
                           " cannot be drained: " + std::to_string(active) +
                           " other active workers cannot hold " + "replication factor " +
                           std::to_string(state_.topology().replication_factor()));
  }
  state_.add_draining(worker_id);
  RETURN_IF_ERROR(SaveStateLocked());
  spdlog::info("worker {} is decommissioned: its replicas move to the others", worker_id);
  return Status::Ok();
}
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
    std::optional<PartialAggregate> partial = PartialFrom(body);
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

}  // namespace

Result<std::unique_ptr<Replication>> Replication::Create(asio::any_io_executor executor,
                                                         ReplicationOptions options,
                                                         const std::vector<WorkerInfo>& workers,
                                                         WorkerDirectory::Factory clients) {
  if (!workers.empty()) {
    RETURN_IF_ERROR(
        cluster::CheckReplication(options.replication_factor, options.shards, workers.size()));
  } else {
    RETURN_IF_ERROR(cluster::CheckReplication(options.replication_factor, options.shards,
                                              cluster::MinWorkers(options.replication_factor)));
  }
  const std::string advertised =
      options.advertise_host.empty() ? options.raft_host : options.advertise_host;
  const bool witness_possible = options.replication_factor >= 3;
  if (witness_possible && (advertised == "0.0.0.0" || advertised == "::")) {
    return InvalidArgument("--host " + advertised +
                           " is no address peers can reach the witness at: set --advertise-host");
  }
  const std::string witness_address = advertised + ":" + std::to_string(options.raft_port);
  std::vector<internal::v1::NodeAddress> nodes;
  for (const WorkerInfo& w : workers) {
    internal::v1::NodeAddress& node = nodes.emplace_back();
    node.set_node_id(w.id);
    node.set_http_address(w.address.ToString());
  }
  ControlState state;
  if (!workers.empty()) {
    *state.mutable_topology() = cluster::PlanTopology(nodes, options.replication_factor,
                                                      options.shards, witness_address, 0);
  }
  const std::string path = (std::filesystem::path(options.data_dir) / kStateFile).string();
  ASSIGN_OR_RETURN(std::optional<std::string> saved, ReadFileIfExists(path));
  bool formed = false;
  if (saved) {
    ControlState kept;
    if (!kept.ParseFromString(*saved)) {
      return Internal(path + " does not decode; move it away only if the cluster is new");
    }
    const Topology& topology = kept.topology();
    const bool planned = topology.placements_size() > 0;
    auto refuse = [&](const std::string& why) {
      return InvalidArgument(
          path + " keeps a cluster of " + std::to_string(topology.shards()) +
          " shards, replication factor " + std::to_string(topology.replication_factor()) + " and " +
          std::to_string(topology.nodes_size()) + " nodes; " + why + ", or use a fresh --data-dir");
    };
    if (planned && (topology.shards() != options.shards ||
                    topology.replication_factor() != options.replication_factor)) {
      return refuse("start with the same --shards and --replication-factor");
    }
    for (const internal::v1::NodeAddress& node : nodes) {
      const internal::v1::NodeAddress* same = rpc::FindNode(topology, node.node_id());
      if (planned && (same == nullptr || same->http_address() != node.http_address())) {
        return refuse("--workers names worker " + std::to_string(node.node_id()) + " at " +
                      node.http_address() + ", which it does not hold there");
      }
    }
    const internal::v1::NodeAddress* witness = rpc::FindNode(topology, rpc::kWitnessNodeId);
    if (witness != nullptr && witness->raft_address() != witness_address) {
      return refuse("its witness is at " + witness->raft_address() +
                    "; start with the same --raft-port and --advertise-host");
    }
    state = std::move(kept);
    formed = planned && topology.cluster_id() != 0;
  }
  return std::unique_ptr<Replication>(std::make_unique<ReplicationImpl>(
      std::move(executor), std::move(options), std::move(clients), std::move(state), formed));
}

}  // namespace das::control
