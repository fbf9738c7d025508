#include "worker/replica_host.h"

#include <atomic>
#include <filesystem>
#include <map>
#include <utility>

#include <spdlog/spdlog.h>

#include "common/durable_file.h"
#include "common/hash.h"
#include "raft/group.h"
#include "raft/hub.h"
#include "raft/loop.h"
#include "rpc/topology.h"
#include "worker/shard_replica.h"

namespace das::worker {
namespace {

using internal::v1::TopologyRequest;

constexpr char kTopologyFile[] = "topology.pb";

struct Replica {
  uint32_t shard = 0;
  std::unique_ptr<Store> store;
  std::unique_ptr<ShardReplica> machine;
  std::unique_ptr<raft::Group> group;
};

class ReplicaHostImpl final : public ReplicaHost {
 public:
  explicit ReplicaHostImpl(ReplicaHostOptions options) : options_(std::move(options)) {}
  ~ReplicaHostImpl() override { Close(); }

  Status LoadSaved() override {
    ASSIGN_OR_RETURN(std::optional<std::string> saved, ReadFileIfExists(TopologyPath()));
    if (!saved) return Status::Ok();
    TopologyRequest request;
    if (!request.ParseFromString(*saved)) {
      return Internal(TopologyPath() + " does not decode; move it away to start afresh");
    }
    // Known before the replicas are open (that takes a while): the control node must not take
    // this worker for one that lost its data.
    saved_cluster_id_.store(request.topology().cluster_id(), std::memory_order_release);
    std::lock_guard lock(mu_);
    return OpenLocked(request);
  }

  Status Adopt(const TopologyRequest& request) override {
    std::lock_guard lock(mu_);
    if (open_.load(std::memory_order_acquire)) {
      if (request.SerializeAsString() == held_.SerializeAsString()) return Status::Ok();
      if (request.topology().cluster_id() != held_.topology().cluster_id()) {
        return InvalidArgument("this worker belongs to cluster " +
                               std::to_string(held_.topology().cluster_id()) + ", not " +
                               std::to_string(request.topology().cluster_id()));
      }
      return InvalidArgument(
          "the topology differs from the one this worker keeps; changing it is not supported");
    }
    if (request.node_id() != options_.node_id) {
      return InvalidArgument("the control node names this worker " +
                             std::to_string(request.node_id()) + ", but its --id is " +
                             std::to_string(options_.node_id));
    }
    RETURN_IF_ERROR(rpc::ValidateTopology(request.topology(), kSlots));
    std::error_code error;
    std::filesystem::create_directories(options_.data_dir, error);
    RETURN_IF_ERROR(WriteFileDurably(TopologyPath(), request.SerializeAsString()));
    return OpenLocked(request);
  }

  uint64_t cluster_id() const override {
    if (!open_.load(std::memory_order_acquire)) {
      return saved_cluster_id_.load(std::memory_order_acquire);
    }
    return held_.topology().cluster_id();
  }

  void Write(uint32_t shard, uint64_t request_id, std::vector<SubBatch> batches,
             WriteCallback done) override {
    Result<Replica*> replica = Find(shard);
    if (!replica.ok()) return done(std::move(replica).status());
    (*replica)->machine->Propose(
        request_id, std::move(batches),
        [this, done = std::move(done)](Result<std::vector<SubBatchOutcome>> outcome) {
          if (!outcome.ok()) return done(NamedLeader(std::move(outcome).status()));
          done(std::move(outcome));
        });
  }

  void Read(uint32_t shard, AggregateCallback done) override {
    Result<Replica*> replica = Find(shard);
    if (!replica.ok()) return done(std::move(replica).status());
    (*replica)->machine->Read([this, done = std::move(done)](Result<Aggregate> aggregate) {
      if (!aggregate.ok()) return done(NamedLeader(std::move(aggregate).status()));
      done(std::move(aggregate));
    });
  }

  void Transfer(uint32_t shard, uint64_t to, std::function<void(Status)> done) override {
    Result<Replica*> replica = Find(shard);
    if (!replica.ok()) return done(std::move(replica).status());
    (*replica)->group->Transfer(to, std::move(done));
  }

  std::vector<internal::v1::ReplicaHealth> Health() override {
    std::vector<internal::v1::ReplicaHealth> out;
    if (!open_.load(std::memory_order_acquire)) return out;
    for (const auto& [shard, replica] : replicas_) {
      const raft::GroupInfo info = replica->group->Info();
      internal::v1::ReplicaHealth& health = out.emplace_back();
      health.set_shard(shard);
      health.set_role(std::string(raft::RoleName(info.role)));
      health.set_term(info.term);
      health.set_commit_index(info.commit_index);
      health.set_applied_index(info.applied_index);
      health.set_stored_index(replica->store->applied_index());
      health.set_leader_id(info.leader_id);
      replica->store->ComputeAggregate([&health](Result<Aggregate> aggregate) {
        if (aggregate.ok()) health.set_rows(aggregate->count);
      });
    }
    return out;
  }

  // REQUIRES: no Write/Read/Transfer/Health call runs or follows (the worker stops its HTTP
  // server first): they use the replicas without the lock.
  void Close() override {
    std::lock_guard lock(mu_);
    if (!open_.exchange(false)) return;
    for (auto& [shard, replica] : replicas_) replica->machine->BeginClose();
    for (auto& [shard, replica] : replicas_) replica->group->Close();  // no more Apply
    for (auto& [shard, replica] : replicas_) {
      replica->machine->CancelReads();
      replica->store->Stop();  // runs the callbacks of what Apply queued
    }
    replicas_.clear();
    if (hub_) hub_->Close();
    if (loop_) loop_->Stop();
    spdlog::info("replicas closed");
  }

 private:
  std::string TopologyPath() const {
    return (std::filesystem::path(options_.data_dir) / kTopologyFile).string();
  }

  Result<Replica*> Find(uint32_t shard) {
    if (!open_.load(std::memory_order_acquire)) {
      return Unavailable("worker " + std::to_string(options_.node_id) +
                         " has no topology yet (the control node sends it)");
    }
    auto it = replicas_.find(shard);
    if (it == replicas_.end()) {
      return NotFound("worker " + std::to_string(options_.node_id) + " holds no replica of shard " +
                      std::to_string(shard));
    }
    return it->second.get();
  }

  // kNotLeader's detail, a raft address from libraft, becomes the leader's node id.
  Status NamedLeader(Status status) const {
    if (status.code() != StatusCode::kNotLeader) return status;
    const uint64_t leader = rpc::NodeByRaftAddress(held_.topology(), status.detail());
    return NotLeader(status.message(), leader == 0 ? "" : std::to_string(leader));
  }

  // REQUIRES: mu_ held, nothing open yet.
  Status OpenLocked(const TopologyRequest& request) {
    const internal::v1::NodeAddress* self = rpc::FindNode(request.topology(), request.node_id());
    if (self == nullptr) return InvalidArgument("the topology does not name this worker");
    ASSIGN_OR_RETURN(loop_, raft::Loop::Start("raft"));
    ASSIGN_OR_RETURN(hub_, raft::Hub::Open(*loop_, options_.listen_host + ":" +
                                                       std::to_string(options_.raft_port)));
    for (const internal::v1::ShardPlacement& placement : request.topology().placements()) {
      bool mine = false;
      for (uint64_t voter : placement.voters()) mine = mine || voter == request.node_id();
      if (!mine) continue;
      Result<std::unique_ptr<Replica>> replica = OpenReplica(request.topology(), placement, *self);
      if (!replica.ok()) {
        CloseOpenedLocked();
        return std::move(replica).status();
      }
      replicas_.emplace(placement.shard(), std::move(replica).value());
    }
    held_ = request;
    open_.store(true, std::memory_order_release);
    spdlog::info("holding {} shard replicas of cluster {}, raft on {}", replicas_.size(),
                 request.topology().cluster_id(), self->raft_address());
    return Status::Ok();
  }

  Result<std::unique_ptr<Replica>> OpenReplica(const internal::v1::Topology& topology,
                                               const internal::v1::ShardPlacement& placement,
                                               const internal::v1::NodeAddress& self) {
    const std::filesystem::path dir =
        std::filesystem::path(options_.data_dir) / "shards" / std::to_string(placement.shard());
    auto replica = std::make_unique<Replica>();
    replica->shard = placement.shard();
    StoreOptions store_options = options_.store;
    store_options.data_dir = dir.string();
    store_options.file_name = "shard.duckdb";
    ASSIGN_OR_RETURN(replica->store, Store::Open(store_options));
    replica->machine = std::make_unique<ShardReplica>(placement.shard(), *replica->store);
    raft::GroupOptions group;
    group.hub = hub_.get();
    group.group_id = placement.shard();
    group.id = self.node_id();
    group.address = self.raft_address();
    group.data_dir = (dir / "raft").string();
    group.election_timeout_ms = options_.election_timeout_ms;
    group.heartbeat_timeout_ms = options_.heartbeat_timeout_ms;
    group.snapshot_threshold = options_.snapshot_threshold;
    group.snapshot_trailing = options_.snapshot_trailing;
    for (uint64_t voter : placement.voters()) {
      group.voters.push_back(raft::Peer{voter, rpc::FindNode(topology, voter)->raft_address()});
    }
    Result<std::unique_ptr<raft::Group>> opened =
        raft::Group::Open(*loop_, std::move(group), *replica->machine);
    if (!opened.ok()) {
      replica->store->Stop();
      return std::move(opened).status();
    }
    replica->group = std::move(opened).value();
    replica->machine->Attach(replica->group.get());
    return replica;
  }

  void CloseOpenedLocked() {
    for (auto& [shard, replica] : replicas_) replica->group->Close();
    for (auto& [shard, replica] : replicas_) replica->store->Stop();
    replicas_.clear();
    hub_.reset();
    if (loop_) loop_->Stop();
    loop_.reset();
  }

  const ReplicaHostOptions options_;
  std::mutex mu_;  // serialises Adopt, LoadSaved and Close
  // Set once, before open_ becomes true; read without the lock afterwards.
  TopologyRequest held_;
  std::unique_ptr<raft::Loop> loop_;
  std::unique_ptr<raft::Hub> hub_;
  std::map<uint32_t, std::unique_ptr<Replica>> replicas_;
  std::atomic<bool> open_{false};
  std::atomic<uint64_t> saved_cluster_id_{0};  // of the kept topology, while it opens
};

}  // namespace

std::unique_ptr<ReplicaHost> ReplicaHost::Create(ReplicaHostOptions options) {
  return std::make_unique<ReplicaHostImpl>(std::move(options));
}

}  // namespace das::worker
