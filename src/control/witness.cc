#include "control/witness.h"

#include <atomic>
#include <filesystem>
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
};

class WitnessImpl final : public Witness {
 public:
  ~WitnessImpl() override { Close(); }

  static Result<std::unique_ptr<Witness>> Open(WitnessOptions options,
                                               const internal::v1::Topology& topology) {
    auto witness = std::make_unique<WitnessImpl>();
    ASSIGN_OR_RETURN(witness->loop_, raft::Loop::Start("witness"));
    ASSIGN_OR_RETURN(witness->hub_, raft::Hub::Open(*witness->loop_, options.listen_address));
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
      ASSIGN_OR_RETURN(replica->group,
                       raft::Group::Open(*witness->loop_, std::move(group), replica->machine));
      witness->replicas_.emplace(placement.shard(), std::move(replica));
    }
    spdlog::info("witness of {} shards, raft on {}", witness->replicas_.size(),
                 self->raft_address());
    return std::unique_ptr<Witness>(std::move(witness));
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
    }
    return out;
  }

  void Transfer(uint32_t shard, uint64_t to, std::function<void(Status)> done) override {
    auto it = replicas_.find(shard);
    if (it == replicas_.end()) return done(NotFound("the witness has no replica of that shard"));
    it->second->group->Transfer(to, std::move(done));
  }

  void Close() override {
    for (auto& [shard, replica] : replicas_) replica->group->Close();
    replicas_.clear();
    if (hub_) hub_->Close();
    if (loop_) loop_->Stop();
  }

 private:
  std::unique_ptr<raft::Loop> loop_;
  std::unique_ptr<raft::Hub> hub_;
  std::map<uint32_t, std::unique_ptr<Replica>> replicas_;
};

}  // namespace

Result<std::unique_ptr<Witness>> Witness::Open(WitnessOptions options,
                                               const internal::v1::Topology& topology) {
  return WitnessImpl::Open(std::move(options), topology);
}

}  // namespace das::control
