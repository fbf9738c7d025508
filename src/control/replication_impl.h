// Private to src/control/replication*.cc: the one implementation of Replication, its
// definitions spread over files by job:
//
//   replication.cc          forming the cluster, the witness, pushing topologies, the health
//                           tick, the leader balancer, adopting groups' configurations; Create
//   replication_moves.cc    the rebalancer: planning a move and carrying out its stages
//   replication_members.cc  join and decommission
//   replication_reads.cc    the unfiltered /analytics read and the shards' part of /health
#pragma once

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
#include "cluster/move_stages.h"
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

namespace das::control::replication_internal {

namespace asio = boost::asio;
using internal::v1::ControlState;
using internal::v1::ReplicaHealth;
using internal::v1::Topology;
using internal::v1::WorkerHealthResponse;
using Ms = std::chrono::milliseconds;
using cluster::Contains;
using cluster::Erase;
using cluster::ShardView;

inline constexpr char kStateFile[] = "cluster.pb";
inline constexpr auto kStopWait = std::chrono::seconds(5);

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

  void Observe(const cluster::HealthMap& workers,
               const std::vector<ReplicaHealth>& witness) override;
  bool DescribeShards(const cluster::HealthMap& workers, const std::vector<ReplicaHealth>& witness,
                      das::v1::HealthResponse& response) const override;

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
  // A new epoch of the topology, kept; the shards' leaders learn their replicas.
  void BumpEpochLocked(std::string_view why) REQUIRES(mu_);
  // The same for an epoch already raised in state_ (not saved here).
  void EpochRaisedLocked(std::string_view why) REQUIRES(mu_);
  // Makes the map agree with the groups' own configurations where no move is under way.
  void AdoptConfigurations(const std::vector<ShardView>& views);
  // Carries the current move on as far as it can go now, or plans the next one.
  asio::awaitable<void> Rebalance(const std::vector<ShardView>& views);
  // One step of the move under way (cluster/move_stages.h): true when it advanced (the next
  // may follow at once).
  asio::awaitable<bool> Step(const std::vector<ShardView>& views);
  asio::awaitable<bool> CarryOut(const internal::v1::ReplicaMove& move,
                                 const cluster::MoveStep& step, const ShardView& view);
  bool KeepStepLocked(const internal::v1::ReplicaMove& move, const cluster::MoveStep& step)
      REQUIRES(mu_);
  // `to` holds the topology's current epoch (pushed to it; the witness: opened here).
  asio::awaitable<bool> HoldsItsEpoch(uint64_t to);
  // One membership step at the shard's leader; true once done.
  asio::awaitable<bool> AtLeader(const ShardView& view, internal::v1::MembershipRequest request);
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

}  // namespace das::control::replication_internal
