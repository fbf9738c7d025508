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

#include "common/durable_file.h"
#include "common/hash.h"
#include "control/gather.h"
#include "control/topology_plan.h"
#include "control/witness.h"
#include "rpc/topology.h"

namespace das::control {
namespace {

namespace asio = boost::asio;
using internal::v1::ControlState;
using internal::v1::ReplicaHealth;
using internal::v1::Topology;
using internal::v1::WorkerHealthResponse;
using Ms = std::chrono::milliseconds;

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

// The topology with the parts only a running cluster knows (cluster id, the workers' raft
// addresses) left out, to compare a kept topology with the flags.
std::string Shape(Topology topology) {
  topology.set_cluster_id(0);
  for (internal::v1::NodeAddress& node : *topology.mutable_nodes()) {
    if (node.node_id() != rpc::kWitnessNodeId) node.clear_raft_address();
  }
  return topology.SerializeAsString();
}

// What one shard's replicas say, gathered from the workers' and the witness's health.
struct ShardView {
  std::map<uint64_t, ReplicaHealth> reports;  // by node id; absent: not reachable
  uint64_t leader = 0;
  uint64_t term = 0;
  uint64_t commit_index = 0;
};

class ReplicationImpl final : public Replication {
 public:
  ReplicationImpl(asio::any_io_executor executor, ReplicationOptions options,
                  std::map<uint64_t, rpc::WorkerClient*> clients, ControlState state, bool formed)
      : executor_(std::move(executor)),
        options_(std::move(options)),
        clients_(std::move(clients)),
        state_(std::move(state)),
        formed_(formed),
        shard_of_slot_(ShardOfSlot(state_.topology())),
        last_transfer_(state_.topology().shards()) {
    for (const internal::v1::ShardPlacement& p : state_.topology().placements()) {
      std::vector<uint64_t> data;
      for (uint64_t voter : p.voters()) {
        if (voter != rpc::kWitnessNodeId) data.push_back(voter);
      }
      leaders_.push_back(std::make_unique<ShardLeader>(executor_, p.shard(), data, clients_));
    }
  }
  ~ReplicationImpl() override {
    Stop();
    // Here, not in Stop(): /health may still read the witness until the server has stopped,
    // and the service (which owns this object) is destroyed after the server.
    witness_view_.store(nullptr, std::memory_order_release);
    if (witness_) witness_->Close();
  }

  void Start() override {
    {
      std::lock_guard lock(mu_);
      running_ = true;
    }
    asio::co_spawn(executor_, Run(), asio::detached);
  }

  // The background loop sees stopping_ at its next pause (at most a tick) or between shards;
  // the wait is bounded, since a push or a transfer in flight may take seconds.
  void Stop() override {
    std::unique_lock lock(mu_);
    stopping_ = true;
    if (!stopped_.wait_for(lock, kStopWait, [this] { return !running_; })) {
      spdlog::warn("replication: the background loop is still busy; stopping anyway");
    }
  }

  bool ready() const override { return ready_.load(std::memory_order_acquire); }
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
  std::vector<ReplicaHealth> WitnessHealth() override {
    Witness* witness = witness_view_.load(std::memory_order_acquire);
    return witness ? witness->Health() : std::vector<ReplicaHealth>{};
  }

  bool DescribeShards(const std::map<uint64_t, Result<WorkerHealthResponse>>& workers,
                      das::v1::HealthResponse& response) override;

  std::string StatePath() const {
    return (std::filesystem::path(options_.data_dir) / kStateFile).string();
  }

 private:
  asio::awaitable<void> Run();
  asio::awaitable<void> Tick();
  asio::awaitable<std::map<uint64_t, Result<WorkerHealthResponse>>> GatherHealth();
  void Form(const std::map<uint64_t, Result<WorkerHealthResponse>>& health);
  void OpenWitness();
  asio::awaitable<void> PushTopology(
      const std::map<uint64_t, Result<WorkerHealthResponse>>& health);
  asio::awaitable<void> Balance(const std::map<uint64_t, Result<WorkerHealthResponse>>& health);
  std::vector<ShardView> Views(const std::map<uint64_t, Result<WorkerHealthResponse>>& health);
  // Notes which workers' health answered: the balancer's checks (`failures_count`: a worker
  // that did not answer in kBalancerHealthDeadline is down) and every /health (whose shorter
  // deadline only ever proves a worker alive).
  void NoteAlive(const std::map<uint64_t, Result<WorkerHealthResponse>>& health,
                 bool failures_count);
  // Latches ready_ once every shard of `views` has a data replica as its leader.
  void NoteReady(const std::vector<ShardView>& views);
  Status SaveStateLocked();

  asio::any_io_executor executor_;
  const ReplicationOptions options_;
  const std::map<uint64_t, rpc::WorkerClient*> clients_;
  std::vector<std::unique_ptr<ShardLeader>> leaders_;

  std::mutex mu_;
  std::condition_variable stopped_;
  ControlState state_;                // GUARDED_BY(mu_) once Start() ran
  bool formed_ = false;               // GUARDED_BY(mu_): the workers' raft addresses are known
  bool stopping_ = false;             // GUARDED_BY(mu_)
  bool running_ = false;              // GUARDED_BY(mu_): Run() has not returned
  std::unique_ptr<Witness> witness_;  // set once by Run(); closed by Stop()
  std::atomic<Witness*> witness_view_{nullptr};
  std::atomic<bool> ready_{false};
  // Whether each worker's latest health check answered, for responding_nodes; GUARDED_BY(mu_)
  std::map<uint64_t, bool> alive_;
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
      std::lock_guard lock(mu_);
      if (stopping_) break;
      const bool settled = formed_ && state_.adopted_size() == static_cast<int>(clients_.size());
      timer.expires_after(settled ? kBalanceTick : kFormingTick);
    }
    auto [ignored] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    (void)ignored;
    std::lock_guard lock(mu_);
    if (stopping_) break;
  }
  std::lock_guard lock(mu_);
  running_ = false;
  stopped_.notify_all();
}

asio::awaitable<void> ReplicationImpl::Tick() {
  asio::awaitable<std::map<uint64_t, Result<WorkerHealthResponse>>> gather = GatherHealth();
  std::map<uint64_t, Result<WorkerHealthResponse>> health = co_await std::move(gather);
  NoteAlive(health, true);
  bool formed = false;
  {
    std::lock_guard lock(mu_);
    if (!formed_) Form(health);
    formed = formed_;
  }
  if (!formed) co_return;
  OpenWitness();
  asio::awaitable<void> push = PushTopology(health);
  co_await std::move(push);
  asio::awaitable<void> balance = Balance(health);
  co_await std::move(balance);
}

asio::awaitable<std::map<uint64_t, Result<WorkerHealthResponse>>> ReplicationImpl::GatherHealth() {
  std::vector<uint64_t> ids;
  std::vector<asio::awaitable<Result<WorkerHealthResponse>>> calls;
  for (const auto& [id, client] : clients_) {
    ids.push_back(id);
    calls.push_back(client->Health(kBalancerHealthDeadline));
  }
  asio::awaitable<std::vector<Result<WorkerHealthResponse>>> gather =
      GatherAll<WorkerHealthResponse>(executor_, std::move(calls));
  std::vector<Result<WorkerHealthResponse>> results = co_await std::move(gather);
  std::map<uint64_t, Result<WorkerHealthResponse>> out;
  for (size_t i = 0; i < ids.size(); ++i) out.emplace(ids[i], std::move(results[i]));
  co_return out;
}

void ReplicationImpl::Form(const std::map<uint64_t, Result<WorkerHealthResponse>>& health) {
  for (const auto& [id, result] : health) {
    if (!result.ok() || result->raft_port() == 0) return;  // every worker's raft port first
  }
  Topology& topology = *state_.mutable_topology();
  topology.set_cluster_id(NewClusterId());
  for (internal::v1::NodeAddress& node : *topology.mutable_nodes()) {
    if (node.node_id() == rpc::kWitnessNodeId) continue;
    const std::string http = node.http_address();
    const std::string host = http.substr(0, http.rfind(':'));
    node.set_raft_address(host + ":" + std::to_string(health.at(node.node_id())->raft_port()));
  }
  if (Status saved = SaveStateLocked(); !saved.ok()) {
    spdlog::error("cannot keep the cluster state: {}", saved.ToString());
    return;
  }
  formed_ = true;
  spdlog::info("cluster {} formed: {} shards, replication factor {}", topology.cluster_id(),
               topology.shards(), topology.replication_factor());
}

void ReplicationImpl::OpenWitness() {
  Topology topology;
  {
    std::lock_guard lock(mu_);
    if (witness_ || rpc::FindNode(state_.topology(), rpc::kWitnessNodeId) == nullptr) return;
    topology = state_.topology();
  }
  WitnessOptions options;
  options.data_dir = options_.data_dir;
  options.listen_address = options_.raft_host + ":" + std::to_string(options_.raft_port);
  options.election_timeout_ms = options_.election_timeout_ms;
  options.heartbeat_timeout_ms = std::max(10u, options_.election_timeout_ms / 10);
  options.cluster_secret = options_.cluster_secret;
  Result<std::unique_ptr<Witness>> witness = Witness::Open(options, topology);
  if (!witness.ok()) {
    spdlog::error("cannot open the witness: {}", witness.status().ToString());
    return;
  }
  std::lock_guard lock(mu_);
  witness_ = std::move(witness).value();
  witness_view_.store(witness_.get(), std::memory_order_release);
}

asio::awaitable<void> ReplicationImpl::PushTopology(
    const std::map<uint64_t, Result<WorkerHealthResponse>>& health) {
  for (const auto& [id, client] : clients_) {
    internal::v1::TopologyRequest request;
    {
      std::lock_guard lock(mu_);
      const auto& adopted = state_.adopted();
      if (std::find(adopted.begin(), adopted.end(), id) != adopted.end()) {
        const Result<WorkerHealthResponse>& h = health.at(id);
        if (h.ok() && h->cluster_id() != state_.topology().cluster_id()) {
          spdlog::error(
              "worker {} adopted cluster {} before but now holds {}: its data directory was "
              "replaced; it is not given the topology again (replacing a worker is not built "
              "yet)",
              id, state_.topology().cluster_id(), h->cluster_id());
        }
        continue;
      }
      *request.mutable_topology() = state_.topology();
    }
    request.set_node_id(id);
    asio::awaitable<Result<internal::v1::TopologyResponse>> call =
        client->Topology(request, std::chrono::seconds(10));
    Result<internal::v1::TopologyResponse> answer = co_await std::move(call);
    if (!answer.ok()) {
      spdlog::warn("worker {} did not take the topology: {}", id, answer.status().ToString());
      continue;
    }
    std::lock_guard lock(mu_);
    state_.add_adopted(id);
    if (Status saved = SaveStateLocked(); !saved.ok()) {
      spdlog::error("cannot keep the cluster state: {}", saved.ToString());
    }
    spdlog::info("worker {} holds the topology", id);
  }
}

Status ReplicationImpl::SaveStateLocked() {
  std::error_code error;
  std::filesystem::create_directories(options_.data_dir, error);
  return WriteFileDurably(StatePath(), state_.SerializeAsString());
}

void ReplicationImpl::NoteAlive(const std::map<uint64_t, Result<WorkerHealthResponse>>& health,
                                bool failures_count) {
  std::lock_guard lock(mu_);
  for (const auto& [id, result] : health) {
    if (result.ok() || failures_count) alive_[id] = result.ok();
  }
}

std::vector<ShardView> ReplicationImpl::Views(
    const std::map<uint64_t, Result<WorkerHealthResponse>>& health) {
  NoteAlive(health, false);
  std::vector<ShardView> views(leaders_.size());
  auto add = [&](uint64_t node, const ReplicaHealth& report) {
    if (report.shard() >= views.size()) return;
    ShardView& view = views[report.shard()];
    view.reports[node] = report;
    if (report.role() == "leader" && report.term() >= view.term) {
      view.leader = node;
      view.term = report.term();
      view.commit_index = report.commit_index();
    }
  };
  for (const auto& [id, result] : health) {
    if (!result.ok()) continue;
    for (const ReplicaHealth& report : result->replicas()) add(id, report);
  }
  if (Witness* witness = witness_view_.load(std::memory_order_acquire)) {
    for (const ReplicaHealth& report : witness->Health()) add(rpc::kWitnessNodeId, report);
  }
  for (ShardView& view : views) {
    for (const auto& [node, report] : view.reports) view.term = std::max(view.term, report.term());
  }
  NoteReady(views);
  return views;
}

void ReplicationImpl::NoteReady(const std::vector<ShardView>& views) {
  if (ready()) return;
  for (const ShardView& view : views) {
    if (view.leader == 0 || view.leader == rpc::kWitnessNodeId) return;
  }
  if (!ready_.exchange(true)) spdlog::info("every shard has a leader: ready");
}

asio::awaitable<void> ReplicationImpl::Balance(
    const std::map<uint64_t, Result<WorkerHealthResponse>>& health) {
  std::vector<ShardView> views = Views(health);
  const auto now = std::chrono::steady_clock::now();
  std::vector<std::pair<uint32_t, uint64_t>> moves;  // (shard, to)
  std::vector<asio::awaitable<Result<internal::v1::TransferResponse>>> calls;
  for (size_t s = 0; s < views.size(); ++s) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) co_return;
    }
    const ShardView& view = views[s];
    if (view.leader == 0) continue;
    ShardLeader& shard = *leaders_[s];
    shard.NoteLeader(view.leader);
    const std::vector<uint64_t>& data = shard.replicas();
    auto caught_up = [&](uint64_t node) {
      auto it = view.reports.find(node);
      return it != view.reports.end() && CaughtUp(it->second, view.commit_index);
    };
    // The witness hands its shards on by itself (control/witness.h).
    if (view.leader == rpc::kWitnessNodeId) continue;
    // The preferred data replica once it is caught up; or, while the leader's own store is
    // behind (it is installing a copy, so its reads and keyed writes wait), any data replica
    // that is caught up.
    uint64_t target = 0;
    if (caught_up(data.front())) {
      target = data.front();
    } else if (!caught_up(view.leader)) {
      for (uint64_t node : data) {
        if (node != view.leader && caught_up(node)) {
          target = node;
          break;
        }
      }
    }
    if (target == 0 || target == view.leader) continue;
    if (now - last_transfer_[s] < kTransferBackoff) continue;
    last_transfer_[s] = now;
    moves.emplace_back(static_cast<uint32_t>(s), target);
    calls.push_back(clients_.at(view.leader)->Transfer(static_cast<uint32_t>(s), target, Ms(2000)));
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
    std::optional<ExactSum> sum = ExactSum::FromBytes(body.exact_sum());
    if (!sum) {
      ++out.shards_missing;
      continue;
    }
    PartialAggregate partial{body.count(), *sum, std::nullopt, std::nullopt};
    if (body.has_min()) partial.min = body.min();
    if (body.has_max()) partial.max = body.max();
    out.partials.push_back(partial);
  }
  out.responding_workers = RespondingWorkers(answered, failed);
  co_return out;
}

uint32_t ReplicationImpl::RespondingWorkers(const std::set<uint64_t>& answered,
                                            const std::set<uint64_t>& failed) {
  // A worker no read needed counts when its latest health check (the balancer's, once a
  // second, or a /health) answered.
  uint32_t responding = 0;
  std::lock_guard lock(mu_);
  for (const auto& [id, client] : clients_) {
    auto alive = alive_.find(id);
    const bool live = alive != alive_.end() && alive->second;
    const bool not_needed_and_live = failed.count(id) == 0 && live;
    if (answered.count(id) > 0 || not_needed_and_live) ++responding;
  }
  return responding;
}

bool ReplicationImpl::DescribeShards(
    const std::map<uint64_t, Result<WorkerHealthResponse>>& workers,
    das::v1::HealthResponse& response) {
  std::vector<ShardView> views = Views(workers);
  bool all_healthy = true;
  Topology topology;
  {
    std::lock_guard lock(mu_);
    topology = state_.topology();
  }
  response.set_replication_factor(topology.replication_factor());
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
      healthy = healthy && live && CaughtUp(it->second, view.commit_index);
    }
    shard->set_healthy(healthy);
    all_healthy = all_healthy && healthy;
  }
  return all_healthy;
}

}  // namespace

Result<std::unique_ptr<Replication>> Replication::Create(
    asio::any_io_executor executor, ReplicationOptions options,
    const std::vector<WorkerInfo>& workers, std::map<uint64_t, rpc::WorkerClient*> clients) {
  RETURN_IF_ERROR(CheckReplication(options.replication_factor, options.shards, workers.size()));
  const std::string advertised =
      options.advertise_host.empty() ? options.raft_host : options.advertise_host;
  if (NeedsWitness(options.replication_factor, workers.size()) &&
      (advertised == "0.0.0.0" || advertised == "::")) {
    return InvalidArgument("--host " + advertised +
                           " is no address peers can reach the witness at: set --advertise-host");
  }
  std::vector<internal::v1::NodeAddress> nodes;
  for (const WorkerInfo& w : workers) {
    internal::v1::NodeAddress& node = nodes.emplace_back();
    node.set_node_id(w.id);
    node.set_http_address(w.address.ToString());
  }
  ControlState state;
  *state.mutable_topology() = PlanTopology(nodes, options.replication_factor, options.shards,
                                           advertised + ":" + std::to_string(options.raft_port), 0);
  const std::string path = (std::filesystem::path(options.data_dir) / kStateFile).string();
  ASSIGN_OR_RETURN(std::optional<std::string> saved, ReadFileIfExists(path));
  bool formed = false;
  if (saved) {
    ControlState kept;
    if (!kept.ParseFromString(*saved)) {
      return Internal(path + " does not decode; move it away only if the cluster is new");
    }
    if (Shape(kept.topology()) != Shape(state.topology())) {
      return InvalidArgument(
          path + " keeps a cluster of " + std::to_string(kept.topology().shards()) +
          " shards, replication factor " + std::to_string(kept.topology().replication_factor()) +
          " and " + std::to_string(kept.topology().nodes_size()) +
          " nodes; start with the same --shards, --replication-factor, --workers and "
          "--raft-port (changing them is not supported yet), or use a fresh --data-dir");
    }
    state = std::move(kept);
    formed = true;
  }
  return std::unique_ptr<Replication>(std::make_unique<ReplicationImpl>(
      std::move(executor), std::move(options), std::move(clients), std::move(state), formed));
}

}  // namespace das::control
