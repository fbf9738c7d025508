#include "control/witness.h"

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>
#include <utility>

#include <spdlog/spdlog.h>

#include "raft/group.h"
#include "raft/hub.h"
#include "raft/loop.h"
#include "rpc/topology.h"

namespace das::control {
namespace {

// A log without a state: every entry is accepted and dropped. Its snapshot is the applied
// index alone (8 bytes), so a restore is a no-op too.
class WitnessMachine final : public raft::StateMachine {
 public:
  void Apply(uint64_t index, std::string_view) override {
    applied_.store(index, std::memory_order_relaxed);
  }
  Result<std::string> Snapshot() override {
    const uint64_t index = applied_.load(std::memory_order_relaxed);
    std::string out(8, '\0');
    for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(index >> (8 * i));
    return out;
  }
  Status Restore(std::string_view) override { return Status::Ok(); }

 private:
  std::atomic<uint64_t> applied_{0};
};

struct Replica {
  WitnessMachine machine;
  std::unique_ptr<raft::Group> group;
  std::vector<uint64_t> data_voters;  // transfer targets, in the shard's order
  size_t next_target = 0;             // handoff thread only
  std::chrono::steady_clock::time_point last_try{};
  std::atomic<bool> transferring{false};
};

// A transfer that has not completed within this is tried again (with the next target).
constexpr auto kTransferRetry = std::chrono::milliseconds(600);

class WitnessImpl final : public Witness {
 public:
  ~WitnessImpl() override { Close(); }

  static Result<std::unique_ptr<Witness>> Open(WitnessOptions options,
                                               const internal::v1::Topology& topology) {
    auto witness = std::make_unique<WitnessImpl>();
    ASSIGN_OR_RETURN(witness->loop_, raft::Loop::Start("witness"));
    ASSIGN_OR_RETURN(witness->hub_,
                     raft::Hub::Open(*witness->loop_, options.listen_address,
                                     std::chrono::seconds(5), options.cluster_secret));
    const internal::v1::NodeAddress* self = rpc::FindNode(topology, rpc::kWitnessNodeId);
    if (self == nullptr) return InvalidArgument("the topology has no witness");
    for (const internal::v1::ShardPlacement& placement : topology.placements()) {
      bool mine = false;
      for (uint64_t voter : placement.voters()) mine = mine || voter == rpc::kWitnessNodeId;
      if (!mine) continue;
      auto replica = std::make_unique<Replica>();
      raft::GroupOptions group;
      group.hub = witness->hub_.get();
      group.group_id = placement.shard();
      group.id = rpc::kWitnessNodeId;
      group.address = self->raft_address();
      group.data_dir =
          (std::filesystem::path(options.data_dir) / "witness" / std::to_string(placement.shard()))
              .string();
      group.election_timeout_ms = options.election_timeout_ms;
      group.heartbeat_timeout_ms = options.heartbeat_timeout_ms;
      group.snapshot_threshold = options.snapshot_threshold;
      group.snapshot_trailing = options.snapshot_trailing;
      for (uint64_t voter : placement.voters()) {
        group.voters.push_back(raft::Peer{voter, rpc::FindNode(topology, voter)->raft_address()});
      }
      for (uint64_t voter : placement.voters()) {
        if (voter != rpc::kWitnessNodeId) replica->data_voters.push_back(voter);
      }
      ASSIGN_OR_RETURN(replica->group,
                       raft::Group::Open(*witness->loop_, std::move(group), replica->machine));
      witness->replicas_.emplace(placement.shard(), std::move(replica));
    }
    spdlog::info("witness of {} shards, raft on {}", witness->replicas_.size(),
                 self->raft_address());
    witness->handoff_ = std::thread(
        [w = witness.get(), every = options.handoff_interval] { w->HandOffLoop(every); });
    return std::unique_ptr<Witness>(std::move(witness));
  }

  // Transfers every shard the witness leads to one of its data replicas.
  void HandOffLoop(std::chrono::milliseconds every) {
    std::unique_lock lock(mu_);
    while (!stopping_) {
      lock.unlock();
      for (auto& [shard, replica] : replicas_) HandOff(shard, *replica);
      lock.lock();
      wake_.wait_for(lock, every, [this] { return stopping_; });
    }
  }

  void HandOff(uint32_t shard, Replica& replica) {
    if (replica.data_voters.empty() || replica.transferring.load()) return;
    if (replica.group->Info().role != raft::Role::kLeader) return;
    const auto now = std::chrono::steady_clock::now();
    if (now - replica.last_try < kTransferRetry) return;
    replica.last_try = now;
    const uint64_t target = replica.data_voters[replica.next_target++ % replica.data_voters.size()];
    spdlog::info("shard {}: the witness leads; handing leadership to {}", shard,
                 rpc::NodeName(target));
    replica.transferring = true;
    replica.group->Transfer(target, [&replica, shard, target](Status status) {
      if (!status.ok()) {
        spdlog::warn("shard {}: transfer to {} failed: {}", shard, rpc::NodeName(target),
                     status.ToString());
      }
      replica.transferring = false;
    });
  }

  std::vector<internal::v1::ReplicaHealth> Health() override {
    std::vector<internal::v1::ReplicaHealth> out;
    for (const auto& [shard, replica] : replicas_) {
      const raft::GroupInfo info = replica->group->Info();
      internal::v1::ReplicaHealth& health = out.emplace_back();
      health.set_shard(shard);
      health.set_role(std::string(raft::RoleName(info.role)));
      health.set_term(info.term);
      health.set_commit_index(info.commit_index);
      health.set_applied_index(info.applied_index);
      health.set_stored_index(info.applied_index);
      health.set_leader_id(info.leader_id);
      health.set_leader_changes(info.leader_changes);
      health.set_snapshots_taken(info.snapshots_taken);
      health.set_snapshots_restored(info.snapshots_restored);
    }
    return out;
  }

  void Transfer(uint32_t shard, uint64_t to, std::function<void(Status)> done) override {
    auto it = replicas_.find(shard);
    if (it == replicas_.end()) return done(NotFound("the witness has no replica of that shard"));
    it->second->group->Transfer(to, std::move(done));
  }

  void Close() override {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    wake_.notify_all();
    if (handoff_.joinable()) handoff_.join();
    for (auto& [shard, replica] : replicas_) replica->group->Close();
    replicas_.clear();
    if (hub_) hub_->Close();
    if (loop_) loop_->Stop();
  }

 private:
  std::unique_ptr<raft::Loop> loop_;
  std::unique_ptr<raft::Hub> hub_;
  std::map<uint32_t, std::unique_ptr<Replica>> replicas_;  // fixed once Open returned
  std::thread handoff_;
  std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;  // GUARDED_BY(mu_)
};

}  // namespace

Result<std::unique_ptr<Witness>> Witness::Open(WitnessOptions options,
                                               const internal::v1::Topology& topology) {
  return WitnessImpl::Open(std::move(options), topology);
}

}  // namespace das::control
