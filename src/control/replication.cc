// Replication's lifecycle and its tick: forming the cluster, the witness, pushing topologies,
// the health view, the leader balancer (replication_impl.h).
#include "control/replication_impl.h"

namespace das::control {
namespace replication_internal {
namespace {

constexpr Ms kFormingTick{200};
constexpr Ms kBalanceTick{1000};
// A leader is asked to hand a shard back to its preferred worker at most this often.
constexpr auto kTransferBackoff = std::chrono::seconds(5);
// The balancer's health checks: background work, so a loaded worker is given time.
constexpr Ms kBalancerHealthDeadline{3000};

uint64_t NewClusterId() {
  std::random_device device;
  const uint64_t id = (static_cast<uint64_t>(device()) << 32) ^ device();
  return id != 0 ? id : 1;
}

}  // namespace

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
  Topology& topology = *state_.mutable_topology();
  if (!cluster::FillRaftAddresses(topology, health)) return;  // every worker's raft port first
  topology.set_cluster_id(NewClusterId());
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
  EpochRaisedLocked(why);
  SaveOrLogLocked();
}

void ReplicationImpl::EpochRaisedLocked(std::string_view why) {
  for (const internal::v1::ShardPlacement& p : state_.topology().placements()) {
    leaders_[p.shard()]->SetReplicas(rpc::DataVoters(p));
  }
  spdlog::info("cluster map epoch {}: {}", state_.topology().epoch(), why);
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
    for (uint64_t v : kept) cluster::AddVoter(p, v);
    p.clear_joining();
    BumpEpochLocked("shard " + std::to_string(p.shard()) +
                    ": the map follows the group's own configuration");
  }
}

}  // namespace replication_internal

namespace asio = boost::asio;
using internal::v1::ControlState;
using internal::v1::Topology;
using replication_internal::kStateFile;
using replication_internal::ReplicationImpl;

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
