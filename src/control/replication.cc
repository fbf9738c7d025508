// Replication (replication.h): the pieces wired together and the loop that drives them. Each
// tick gathers every member's health, then: the record notes who answered and forms the
// cluster once it can; the witness keeps the current epoch; the pusher sends it to the workers
// that lack it; the shards' views of this tick make the node ready, let the map follow the
// groups' own configurations, and feed the move executor and the leader balancer.
#include "control/replication.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <optional>
#include <utility>

#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "cluster/topology_plan.h"
#include "common/hash.h"
#include "common/mutex.h"
#include "control/cluster_record.h"
#include "control/gather.h"
#include "control/leader_balancer.h"
#include "control/move_executor.h"
#include "control/saved_state.h"
#include "control/topology_pusher.h"
#include "control/witness_keeper.h"
#include "rpc/topology.h"

namespace das::control {
namespace {

namespace asio = boost::asio;
using cluster::HealthMap;
using cluster::ShardView;
using internal::v1::ReplicaHealth;
using internal::v1::WorkerHealthResponse;
using Ms = std::chrono::milliseconds;

constexpr char kStateFile[] = "cluster.pb";
constexpr auto kStopWait = std::chrono::seconds(5);
constexpr Ms kFormingTick{200};
constexpr Ms kBalanceTick{1000};
// The loop's health checks: background work, so a loaded worker is given time.
constexpr Ms kTickHealthDeadline{3000};

std::string Advertised(const ReplicationOptions& options) {
  return options.advertise_host.empty() ? options.raft_host : options.advertise_host;
}

RecordOptions RecordOptionsOf(const ReplicationOptions& options) {
  RecordOptions out;
  out.replication_factor = options.replication_factor;
  out.shards = options.shards;
  out.state_path = (std::filesystem::path(options.data_dir) / kStateFile).string();
  out.witness_address = Advertised(options) + ":" + std::to_string(options.raft_port);
  out.dead_worker_after = options.dead_worker_after;
  return out;
}

WitnessOptions WitnessOptionsOf(const ReplicationOptions& options) {
  WitnessOptions out;
  out.data_dir = options.data_dir;
  out.listen_address = options.raft_host + ":" + std::to_string(options.raft_port);
  out.election_timeout_ms = options.election_timeout_ms;
  out.heartbeat_timeout_ms = std::max(10u, options.election_timeout_ms / 10);
  out.cluster_secret = options.cluster_secret;
  out.log_budget_bytes = options.log_budget_bytes;
  return out;
}

class ReplicationImpl final : public Replication {
 public:
  ReplicationImpl(asio::any_io_executor executor, const ReplicationOptions& options,
                  WorkerDirectory::Factory clients, LoadedState loaded)
      : executor_(std::move(executor)),
        replication_factor_(options.replication_factor),
        directory_(std::move(clients)),
        leaders_(MakeLeaders(options.shards, loaded.state.topology())),
        record_(RecordOptionsOf(options), std::move(loaded.state), loaded.formed, directory_,
                [this](const internal::v1::Topology& t) { PlacementsChanged(t); }),
        witness_(WitnessOptionsOf(options)),
        pusher_(executor_, record_, directory_),
        balancer_(executor_, leaders_, directory_, stopping_),
        moves_({record_, directory_, leaders_, pusher_, witness_, balancer_, stopping_}),
        shard_of_slot_(cluster::ShardOfSlot(options.shards)) {}

  ~ReplicationImpl() override {
    Stop();
    // Here, not in Stop(): /health may still read the witness until the server has stopped,
    // and the service (which owns this object) is destroyed after the server.
    witness_.Close();
    directory_.CloseAll();
  }

  void Start() override {
    {
      MutexLock lock(mu_);
      running_ = true;
    }
    asio::co_spawn(executor_, Run(), asio::detached);
  }

  // The loop sees stopping_ at its next pause (at most a tick) or between shards; the wait is
  // bounded, since a push or a transfer in flight may take seconds.
  void Stop() override {
    stopping_.store(true, std::memory_order_release);
    UniqueLock lock(mu_);
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
  std::pair<uint32_t, uint32_t> SlotsOf(uint32_t shard) const override {
    // A shard's slots are contiguous (rpc::ValidateTopology).
    auto first = std::find(shard_of_slot_.begin(), shard_of_slot_.end(), shard);
    auto end =
        std::find_if(first, shard_of_slot_.end(), [shard](uint32_t s) { return s != shard; });
    return {static_cast<uint32_t>(first - shard_of_slot_.begin()),
            static_cast<uint32_t>(end - shard_of_slot_.begin())};
  }
  uint32_t RespondingWorkers(const std::set<uint64_t>& answered,
                             const std::set<uint64_t>& failed) override {
    return record_.RespondingWorkers(answered, failed);
  }
  asio::awaitable<std::vector<ReplicaHealth>> WitnessHealth() override {
    asio::awaitable<std::vector<ReplicaHealth>> health = witness_.Health();
    co_return co_await std::move(health);
  }
  void Observe(const HealthMap& workers, const std::vector<ReplicaHealth>& witness) override {
    record_.NoteAlive(workers, false);
    NoteReady(cluster::ShardViews(shards(), workers, witness));
  }
  bool DescribeShards(const HealthMap& workers, const std::vector<ReplicaHealth>& witness,
                      das::v1::HealthResponse& response) const override;
  Result<internal::v1::JoinResponse> Join(const internal::v1::JoinRequest& request) override {
    return record_.Join(request);
  }
  Status Decommission(uint64_t worker_id) override { return record_.Decommission(worker_id); }
  std::string WorkerState(uint64_t worker_id) override {
    return record_.WorkerStateName(worker_id);
  }

 private:
  std::vector<std::unique_ptr<ShardLeader>> MakeLeaders(uint32_t shards,
                                                        const internal::v1::Topology& topology) {
    std::vector<std::unique_ptr<ShardLeader>> leaders;
    for (uint32_t s = 0; s < shards; ++s) {
      std::vector<uint64_t> data;
      if (s < static_cast<uint32_t>(topology.placements_size())) {
        data = rpc::DataVoters(topology.placements(static_cast<int>(s)));
      }
      leaders.push_back(std::make_unique<ShardLeader>(executor_, s, data, directory_));
    }
    return leaders;
  }
  // The record's placements changed (under its lock): each shard's leader learns its replicas
  // (and, when the cluster just formed, its preferred leader).
  void PlacementsChanged(const internal::v1::Topology& topology) {
    for (const internal::v1::ShardPlacement& p : topology.placements()) {
      ShardLeader& leader = *leaders_.at(p.shard());
      leader.SetReplicas(rpc::DataVoters(p));
      if (leader.leader() == 0) leader.NoteLeader(p.preferred_leader());
    }
  }
  asio::awaitable<void> Run();
  asio::awaitable<void> Tick();
  asio::awaitable<HealthMap> GatherHealth();
  void NoteReady(const std::vector<ShardView>& views);

  asio::any_io_executor executor_;
  const uint32_t replication_factor_;
  std::atomic<bool> stopping_{false};
  WorkerDirectory directory_;
  std::vector<std::unique_ptr<ShardLeader>> leaders_;
  ClusterRecord record_;
  WitnessKeeper witness_;
  TopologyPusher pusher_;
  LeaderBalancer balancer_;
  MoveExecutor moves_;
  const std::vector<uint32_t> shard_of_slot_;
  std::atomic<bool> ready_{false};

  mutable Mutex mu_;
  std::condition_variable stopped_;
  bool running_ GUARDED_BY(mu_) = false;  // Run() has not returned
};

asio::awaitable<void> ReplicationImpl::Run() {
  while (!stopping_.load(std::memory_order_acquire)) {
    try {
      asio::awaitable<void> tick = Tick();
      co_await std::move(tick);
    } catch (const std::exception& e) {
      spdlog::error("replication: {}", e.what());  // a bug; the next tick tries again
    }
    if (stopping_.load(std::memory_order_acquire)) break;
    asio::steady_timer timer(executor_, record_.Settled() ? kBalanceTick : kFormingTick);
    auto [ignored] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    (void)ignored;
  }
  MutexLock lock(mu_);
  running_ = false;
  stopped_.notify_all();
}

asio::awaitable<void> ReplicationImpl::Tick() {
  asio::awaitable<HealthMap> gather = GatherHealth();
  const HealthMap health = co_await std::move(gather);
  record_.NoteAlive(health, true);
  record_.NoteMoveBytes(health);
  if (!record_.Form(health)) co_return;
  witness_.Keep(record_.topology());
  asio::awaitable<void> push = pusher_.PushAll(health);
  co_await std::move(push);
  asio::awaitable<std::vector<ReplicaHealth>> witness_health = witness_.Health();
  const std::vector<ReplicaHealth> witness = co_await std::move(witness_health);
  const std::vector<ShardView> views = cluster::ShardViews(shards(), health, witness);
  NoteReady(views);
  record_.FollowGroups(views);
  asio::awaitable<void> rebalance = moves_.Rebalance(views);
  co_await std::move(rebalance);
  asio::awaitable<void> balance = balancer_.Balance(views, record_.MovingShard());
  co_await std::move(balance);
}

asio::awaitable<HealthMap> ReplicationImpl::GatherHealth() {
  std::vector<uint64_t> ids;
  std::vector<asio::awaitable<Result<WorkerHealthResponse>>> calls;
  for (const WorkerDirectory::Entry& w : directory_.Members()) {
    ids.push_back(w.id);
    calls.push_back(w.client->Health(kTickHealthDeadline));
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

void ReplicationImpl::NoteReady(const std::vector<ShardView>& views) {
  if (ready()) return;
  // With one voter a shard, a dead worker's shards have no leader until it is back: the others
  // serve meanwhile (answers partial), as once every reachable shard is led.
  const bool led = replication_factor_ == 1 ? cluster::EveryReachableShardLed(views)
                                            : cluster::EveryShardLedByData(views);
  if (!led) return;
  if (!ready_.exchange(true)) spdlog::info("every shard has a leader: ready");
}

bool ReplicationImpl::DescribeShards(const HealthMap& workers,
                                     const std::vector<ReplicaHealth>& witness,
                                     das::v1::HealthResponse& response) const {
  const std::vector<ShardView> views = cluster::ShardViews(shards(), workers, witness);
  const internal::v1::Topology topology = record_.DescribeRebalance(*response.mutable_rebalance());
  response.set_replication_factor(replication_factor_);
  bool all_healthy = true;
  for (const internal::v1::ShardPlacement& p : topology.placements()) {
    das::v1::ShardStatus& shard = *response.add_shards() =
        cluster::DescribeShard(p, views[p.shard()]);
    all_healthy = all_healthy && shard.healthy();
  }
  return all_healthy;
}

}  // namespace

Result<std::unique_ptr<Replication>> Replication::Create(asio::any_io_executor executor,
                                                         ReplicationOptions options,
                                                         const std::vector<WorkerInfo>& workers,
                                                         WorkerDirectory::Factory clients) {
  const size_t known =
      workers.empty() ? cluster::MinWorkers(options.replication_factor) : workers.size();
  RETURN_IF_ERROR(cluster::CheckReplication(options.replication_factor, options.shards, known));
  const std::string advertised = Advertised(options);
  if (options.replication_factor >= 3 && (advertised == "0.0.0.0" || advertised == "::")) {
    return InvalidArgument("--host " + advertised +
                           " is no address peers can reach the witness at: set --advertise-host");
  }
  ASSIGN_OR_RETURN(LoadedState loaded, LoadClusterState(RecordOptionsOf(options), workers));
  return std::unique_ptr<Replication>(std::make_unique<ReplicationImpl>(
      std::move(executor), options, std::move(clients), std::move(loaded)));
}

}  // namespace das::control
