#include "control/witness.h"

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

#include <spdlog/spdlog.h>

#include "common/mutex.h"
#include "raft/group.h"
#include "raft/hub.h"
#include "raft/loop.h"
#include "rpc/snapshot_manifest.h"
#include "rpc/topology.h"

namespace das::control {
namespace {

// A log without a state: every entry is accepted and dropped. Its snapshot is the manifest a
// data replica writes (rpc/snapshot_manifest.h), so a worker it reaches fetches a copy of the
// rows from another data replica.
class WitnessMachine final : public raft::StateMachine {
 public:
  explicit WitnessMachine(uint64_t shard) : shard_(shard) {}
  void Apply(uint64_t index, std::string_view) override {
    applied_.store(index, std::memory_order_relaxed);
  }
  Result<std::string> Snapshot(uint64_t, uint64_t) override {
    return rpc::EncodeManifest({shard_, applied_.load(std::memory_order_relaxed)});
  }
  // Never fails: a witness's own snapshot from before the manifest (8 bytes) restores too.
  Status Restore(std::string_view snapshot) override {
    Result<rpc::SnapshotManifest> manifest = rpc::DecodeManifest(snapshot);
    if (manifest.ok()) applied_.store(manifest->index, std::memory_order_relaxed);
    return Status::Ok();
  }

 private:
  const uint64_t shard_;
  std::atomic<uint64_t> applied_{0};
};

struct Replica {
  explicit Replica(uint32_t shard) : machine(shard) {}
  WitnessMachine machine;
  std::unique_ptr<raft::Group> group;
  size_t next_target = 0;  // handoff thread only
  std::chrono::steady_clock::time_point last_try{};
  std::atomic<bool> transferring{false};
};

// A transfer that has not completed within this is tried again (with the next target).
constexpr auto kTransferRetry = std::chrono::milliseconds(600);

class WitnessImpl final : public Witness {
 public:
  explicit WitnessImpl(WitnessOptions options) : options_(std::move(options)) {}
  ~WitnessImpl() override { Close(); }

  static Result<std::unique_ptr<Witness>> Open(WitnessOptions options,
                                               const internal::v1::Topology& topology) {
    auto witness = std::make_unique<WitnessImpl>(std::move(options));
    ASSIGN_OR_RETURN(witness->loop_, raft::Loop::Start("witness"));
    witness->loop_->SetLogBudget(witness->options_.log_budget_bytes);
    // Every shard's witness replica in one raft log (src/raft/README.md, "One log per node").
    RETURN_IF_ERROR(witness->loop_->OpenLog(
        (std::filesystem::path(witness->options_.data_dir) / "witness-log").string()));
    ASSIGN_OR_RETURN(witness->hub_,
                     raft::Hub::Open(*witness->loop_, witness->options_.listen_address,
                                     std::chrono::seconds(5), witness->options_.cluster_secret));
    RETURN_IF_ERROR(witness->Adopt(topology));
    witness->handoff_ = std::thread(
        [w = witness.get(), every = witness->options_.handoff_interval] { w->HandOffLoop(every); });
    return std::unique_ptr<Witness>(std::move(witness));
  }

  Status Adopt(const internal::v1::Topology& topology) override {
    MutexLock adopt_lock(adopt_mu_);
    const internal::v1::NodeAddress* self = rpc::FindNode(topology, rpc::kWitnessNodeId);
    if (self == nullptr) return InvalidArgument("the topology has no witness");
    RETURN_IF_ERROR(hub_->SetPeers(rpc::RaftPeers(topology)));
    std::map<uint32_t, std::vector<uint64_t>> data_voters;
    for (const internal::v1::ShardPlacement& placement : topology.placements()) {
      data_voters[placement.shard()] = rpc::DataVoters(placement);
    }
    const rpc::ReplicaChanges changes = rpc::ChangesOf(topology, rpc::kWitnessNodeId, Held());
    {
      MutexLock lock(mu_);
      data_voters_ = std::move(data_voters);
    }
    for (const rpc::ReplicaPlan& plan : changes.open) {
      auto replica = std::make_shared<Replica>(plan.shard);
      raft::GroupOptions group;
      group.hub = hub_.get();
      group.group_id = plan.shard;
      group.id = rpc::kWitnessNodeId;
      group.address = self->raft_address();
      group.data_dir = DirOf(plan.shard);
      group.election_timeout_ms = options_.election_timeout_ms;
      group.heartbeat_timeout_ms = options_.heartbeat_timeout_ms;
      group.snapshot_threshold = options_.snapshot_threshold;
      group.snapshot_trailing = options_.snapshot_trailing;
      for (uint64_t voter : plan.bootstrap) {
        group.voters.push_back(raft::Peer{voter, rpc::FindNode(topology, voter)->raft_address()});
      }
      ASSIGN_OR_RETURN(replica->group,
                       raft::Group::Open(*loop_, std::move(group), replica->machine));
      MutexLock lock(mu_);
      replicas_.emplace(plan.shard, std::move(replica));
    }
    std::vector<std::pair<uint32_t, std::shared_ptr<Replica>>> removed;
    {
      MutexLock lock(mu_);
      for (uint32_t shard : changes.close) {
        auto it = replicas_.find(shard);
        if (it == replicas_.end()) continue;
        removed.emplace_back(*it);
        replicas_.erase(it);
      }
    }
    for (auto& [shard, replica] : removed) {
      replica->group->Close();
      std::error_code error;
      std::filesystem::remove_all(DirOf(shard), error);
      spdlog::info("shard {}: the witness no longer votes in it; its log deleted", shard);
    }
    spdlog::info("witness of {} shards (epoch {}), raft on {}", changes.wanted.size(),
                 topology.epoch(), self->raft_address());
    return Status::Ok();
  }

  // Transfers every shard the witness leads to one of its data replicas.
  void HandOffLoop(std::chrono::milliseconds every) {
    UniqueLock lock(mu_);
    while (!stopping_) {
      const std::map<uint32_t, std::shared_ptr<Replica>> replicas = replicas_;
      lock.Unlock();
      for (const auto& [shard, replica] : replicas) HandOff(shard, replica);
      lock.Lock();
      wake_.wait_for(lock.native(), every, [this]() REQUIRES(mu_) { return stopping_; });
    }
  }

  void HandOff(uint32_t shard, const std::shared_ptr<Replica>& replica) {
    std::vector<uint64_t> targets;
    {
      MutexLock lock(mu_);
      if (auto it = data_voters_.find(shard); it != data_voters_.end()) targets = it->second;
    }
    if (targets.empty() || replica->transferring.load()) return;
    if (replica->group->Info().role != raft::Role::kLeader) return;
    const auto now = std::chrono::steady_clock::now();
    if (now - replica->last_try < kTransferRetry) return;
    replica->last_try = now;
    const uint64_t target = targets[replica->next_target++ % targets.size()];
    spdlog::info("shard {}: the witness leads; handing leadership to {}", shard,
                 rpc::NodeName(target));
    replica->transferring = true;
    replica->group->Transfer(target, [replica, shard, target](Status status) {
      if (!status.ok()) {
        spdlog::warn("shard {}: transfer to {} failed: {}", shard, rpc::NodeName(target),
                     status.ToString());
      }
      replica->transferring = false;
    });
  }

  void Health(HealthCallback done) override {
    std::vector<internal::v1::ReplicaHealth> out;
    std::vector<std::pair<raft::Group*, std::shared_ptr<const void>>> groups;
    {
      MutexLock lock(mu_);
      for (const auto& [shard, replica] : replicas_) {
        out.emplace_back().set_shard(shard);
        groups.emplace_back(replica->group.get(), replica);  // the replica owns its group
      }
    }
    raft::DescribeAll(std::move(groups), [out = std::move(out), done = std::move(done)](
                                             std::vector<raft::GroupDescription> groups) mutable {
      for (size_t i = 0; i < groups.size(); ++i) {
        rpc::DescribeGroup(groups[i].info, groups[i].members, out[i]);
        out[i].set_stored_index(groups[i].info.applied_index);  // the witness stores nothing
      }
      done(std::move(out));
    });
  }

  void Transfer(uint32_t shard, uint64_t to, std::function<void(Status)> done) override {
    std::shared_ptr<Replica> replica = Find(shard);
    if (!replica) return done(NotFound("the witness has no replica of that shard"));
    replica->group->Transfer(to, std::move(done));
  }

  void Close() override {
    {
      MutexLock lock(mu_);
      stopping_ = true;
    }
    wake_.notify_all();
    if (handoff_.joinable()) handoff_.join();
    std::map<uint32_t, std::shared_ptr<Replica>> replicas;
    {
      MutexLock lock(mu_);
      replicas.swap(replicas_);
    }
    for (auto& [shard, replica] : replicas) replica->group->Close();
    if (hub_) hub_->Close();
    if (loop_) loop_->Stop();
  }

 private:
  std::string DirOf(uint32_t shard) const {
    return (std::filesystem::path(options_.data_dir) / "witness" / std::to_string(shard)).string();
  }
  std::shared_ptr<Replica> Find(uint32_t shard) {
    MutexLock lock(mu_);
    auto it = replicas_.find(shard);
    return it == replicas_.end() ? nullptr : it->second;
  }
  // The shards it votes in now.
  std::vector<uint32_t> Held() {
    MutexLock lock(mu_);
    std::vector<uint32_t> shards;
    for (const auto& [shard, replica] : replicas_) shards.push_back(shard);
    return shards;
  }

  const WitnessOptions options_;
  std::unique_ptr<raft::Loop> loop_;
  std::unique_ptr<raft::Hub> hub_;
  std::thread handoff_;
  Mutex adopt_mu_;  // serialises Adopt
  Mutex mu_;
  std::map<uint32_t, std::shared_ptr<Replica>> replicas_ GUARDED_BY(mu_);
  // Each shard's data replicas, in the shard's order: where the witness hands leadership.
  std::map<uint32_t, std::vector<uint64_t>> data_voters_ GUARDED_BY(mu_);
  std::condition_variable wake_;
  bool stopping_ GUARDED_BY(mu_) = false;
};

}  // namespace

Result<std::unique_ptr<Witness>> Witness::Open(WitnessOptions options,
                                               const internal::v1::Topology& topology) {
  return WitnessImpl::Open(std::move(options), topology);
}

}  // namespace das::control
