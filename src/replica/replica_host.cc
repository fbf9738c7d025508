#include "replica/replica_host.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <utility>

#include <spdlog/spdlog.h>

#include "common/durable_file.h"
#include "common/hash.h"
#include "common/log.h"
#include "common/mutex.h"
#include "raft/group.h"
#include "raft/hub.h"
#include "raft/loop.h"
#include "replica/copy_fetcher.h"
#include "replica/shard_replica.h"
#include "rpc/topology.h"

namespace das::replica {
namespace {

using internal::v1::TopologyRequest;

constexpr char kTopologyFile[] = "topology.pb";
// In a replica's directory: copies made for other workers, and the one fetched for this one.
constexpr char kCopyOutPrefix[] = "copy-out-";
constexpr char kCopyIn[] = "copy-in.duckdb";
constexpr size_t kCopiesKept = 2;
// A replica's own DuckDB file before the node store: imported at open (storage/node_store.h).
constexpr char kOldStoreFile[] = "shard.duckdb";

// A copy made for another worker, until it was fully read, a newer one replaced it, or it
// expired.
struct OutgoingCopy {
  std::string path;
  uint64_t size = 0;
  uint64_t applied_index = 0;
  uint64_t checksum = 0;
  std::chrono::steady_clock::time_point touched;  // made, or a chunk of it last read
};
// A copy nobody read a chunk of in this long is deleted (a paced fetch reads one every
// 4 MiB / --copy-bytes-per-s, however large the copy); until then a fetcher that retries is
// given the same one (no second export).
constexpr std::chrono::minutes kCopyLifetime{10};

internal::v1::CopyResponse Describe(uint64_t id, const OutgoingCopy& copy) {
  internal::v1::CopyResponse response;
  response.set_copy_id(id);
  response.set_applied_index(copy.applied_index);
  response.set_size_bytes(copy.size);
  response.set_checksum(copy.checksum);
  return response;
}

// REQUIRES: the replica's copy_mu held. Deletes the copies past their lifetime.
void ExpireCopies(std::map<uint64_t, OutgoingCopy>& outgoing) {
  const auto now = std::chrono::steady_clock::now();
  std::error_code error;
  for (auto it = outgoing.begin(); it != outgoing.end();) {
    if (now - it->second.touched < kCopyLifetime) {
      ++it;
      continue;
    }
    std::filesystem::remove(it->second.path, error);
    it = outgoing.erase(it);
  }
}

struct Replica {
  uint32_t shard = 0;
  std::filesystem::path dir;
  std::unique_ptr<storage::Store> store;
  std::unique_ptr<ShardReplica> machine;
  std::unique_ptr<raft::Group> group;
  Mutex copy_mu;
  std::map<uint64_t, OutgoingCopy> outgoing GUARDED_BY(copy_mu);  // by copy id
  std::atomic<uint64_t> copies_served{0};
  std::atomic<uint64_t> copy_bytes{0};  // of copies fetched for it (ReplicaHealth.copy_bytes)
};

// A replica's health: what its store and state machine say (any thread)...
void DescribeStore(Replica& replica, internal::v1::ReplicaHealth& health) {
  health.set_stored_index(replica.store->applied_index());
  health.set_copies_installed(replica.machine->copies_installed());
  health.set_copies_served(replica.copies_served.load(std::memory_order_relaxed));
  health.set_snapshot_index(replica.machine->snapshot_index());
  health.set_restoring(replica.machine->restoring());
  health.set_queued_writes(replica.store->queue_depth());
  health.set_copy_bytes(replica.copy_bytes.load(std::memory_order_relaxed));
  health.set_disk_full(replica.store->disk().full);
  // Answered on this thread, from the running aggregate.
  replica.store->ComputeAggregate([&health](Result<storage::Aggregate> aggregate) {
    if (aggregate.ok()) health.set_rows(aggregate->count);
  });
}

Result<std::string> ReadAt(const std::string& path, uint64_t offset, size_t length) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Unavailable("cannot open " + path + ": " + std::strerror(errno));
  std::string data(length, '\0');
  size_t got = 0;
  while (got < length) {
    const ssize_t n =
        ::pread(fd, data.data() + got, length - got, static_cast<off_t>(offset + got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  if (got != length) return Unavailable("cannot read " + path + " at " + std::to_string(offset));
  return data;
}

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
    MutexLock lock(mu_);
    // The control node's topology came first (Adopt opened it, the kept one or a newer one).
    if (open_.load(std::memory_order_acquire)) return Status::Ok();
    return OpenLocked(request);
  }

  Status Adopt(const TopologyRequest& request) override {
    MutexLock lock(mu_);
    if (closed_.load(std::memory_order_acquire)) {
      return ShuttingDown("worker " + std::to_string(options_.node_id) + " is stopping");
    }
    if (request.node_id() != options_.node_id) {
      return InvalidArgument("the control node names this worker " +
                             std::to_string(request.node_id()) + ", but its --id is " +
                             std::to_string(options_.node_id));
    }
    std::shared_ptr<const TopologyRequest> held = Held();
    if (held) {
      const internal::v1::Topology& mine = held->topology();
      if (request.topology().cluster_id() != mine.cluster_id()) {
        return InvalidArgument("this worker belongs to cluster " +
                               std::to_string(mine.cluster_id()) + ", not " +
                               std::to_string(request.topology().cluster_id()));
      }
      if (request.topology().epoch() < mine.epoch()) {
        return InvalidArgument("stale topology: epoch " +
                               std::to_string(request.topology().epoch()) + ", this worker holds " +
                               std::to_string(mine.epoch()));
      }
      if (request.SerializeAsString() == held->SerializeAsString()) return Status::Ok();
      if (request.topology().epoch() == mine.epoch()) {
        return InvalidArgument("the topology of epoch " + std::to_string(mine.epoch()) +
                               " differs from the one this worker keeps");
      }
    }
    RETURN_IF_ERROR(rpc::ValidateTopology(request.topology(), kSlots));
    if (rpc::FindNode(request.topology(), request.node_id()) == nullptr) {
      return InvalidArgument("the topology does not name this worker");
    }
    std::error_code error;
    std::filesystem::create_directories(options_.data_dir, error);
    RETURN_IF_ERROR(WriteFileDurably(TopologyPath(), request.SerializeAsString()));
    if (!held) return OpenLocked(request);
    return ReconcileLocked(request);
  }

  uint64_t cluster_id() const override {
    std::shared_ptr<const TopologyRequest> held = Held();
    if (!held) return saved_cluster_id_.load(std::memory_order_acquire);
    return held->topology().cluster_id();
  }

  uint64_t epoch() const override {
    std::shared_ptr<const TopologyRequest> held = Held();
    return held ? held->topology().epoch() : 0;
  }

  void ChangeMembership(const internal::v1::MembershipRequest& request,
                        std::function<void(Status)> done) override {
    Result<std::shared_ptr<Replica>> found = Find(request.shard());
    if (!found.ok()) return done(std::move(found).status());
    std::shared_ptr<Replica> replica = *found;
    const raft::GroupInfo info = replica->group->Info();
    if (info.role != raft::Role::kLeader) {
      return done(NotLeader("this replica does not lead shard " + std::to_string(request.shard()),
                            info.leader_id == 0 ? "" : std::to_string(info.leader_id)));
    }
    using internal::v1::GroupMember;
    using internal::v1::MembershipRequest;
    std::optional<raft::MemberRole> now;
    for (const raft::Member& member : replica->group->Members()) {
      if (member.id == request.node_id()) now = member.role;
    }
    const uint64_t node = request.node_id();
    auto finish = [done = std::move(done)](Status status) { done(std::move(status)); };
    switch (request.op()) {
      case MembershipRequest::ADD_SPARE: {
        if (now) return finish(Status::Ok());
        std::shared_ptr<const TopologyRequest> held = Held();
        const internal::v1::NodeAddress* address = rpc::FindNode(held->topology(), node);
        if (address == nullptr) {
          return finish(InvalidArgument("node " + std::to_string(node) +
                                        " is not in the topology this worker holds"));
        }
        // Named "<raft address>#<id>" in the group's configuration: unique whatever address
        // another member had when it was added (libraft refuses two members at one address;
        // members keep their ids, not their addresses). Peers are dialed where the topology
        // says they are now (raft::Hub::SetPeers), never by this name.
        return replica->group->AddSpare(node, address->raft_address() + "#" + std::to_string(node),
                                        std::move(finish));
      }
      case MembershipRequest::ASSIGN: {
        const raft::MemberRole role =
            request.role() == GroupMember::VOTER     ? raft::MemberRole::kVoter
            : request.role() == GroupMember::STANDBY ? raft::MemberRole::kStandby
                                                     : raft::MemberRole::kSpare;
        if (!now) {
          return finish(NotFound("node " + std::to_string(node) + " is not a member of shard " +
                                 std::to_string(request.shard())));
        }
        if (*now == role) return finish(Status::Ok());
        return replica->group->Assign(node, role, std::move(finish));
      }
      case MembershipRequest::REMOVE:
        if (!now) return finish(Status::Ok());
        return replica->group->Remove(node, std::move(finish));
      default:
        return finish(InvalidArgument("unknown membership operation"));
    }
  }

  void Write(uint32_t shard, uint64_t request_id, int64_t ingest_us,
             const std::vector<const internal::v1::SubBatch*>& batches,
             storage::WriteCallback done) override {
    Result<std::shared_ptr<Replica>> replica = Find(shard);
    if (!replica.ok()) return done(std::move(replica).status());
    // The shard's only voter (--replication-factor 1) with a full disk: its log would take the
    // entry, but no replica could apply it (and so answer its reads) until there is room.
    if (SoleVoter(shard) && (*replica)->store->disk(/*measure_now=*/true).full) {
      const storage::DiskState disk = (*replica)->store->disk();
      return done(Unavailable("the worker's disk is full (" +
                              std::to_string(disk.free_bytes >> 20) +
                              " MiB free, below --disk-reserve-mb " +
                              std::to_string(disk.reserve_bytes >> 20) + "); nothing was stored"));
    }
    (*replica)->machine->Propose(
        request_id, ingest_us, batches,
        [this, done = std::move(done)](Result<std::vector<storage::SubBatchOutcome>> outcome) {
          if (!outcome.ok()) return done(std::move(outcome).status());
          done(std::move(outcome));
        });
  }

  void ReadWith(uint32_t shard, std::function<void(Result<storage::Store*>)> ready) override {
    Result<std::shared_ptr<Replica>> found = Find(shard);
    if (!found.ok()) return ready(std::move(found).status());
    std::shared_ptr<Replica> replica = *found;
    replica->machine->ReadPoint([this, replica, ready = std::move(ready)](Status reached) {
      if (!reached.ok()) return ready(std::move(reached));
      ready(replica->store.get());
    });
  }

  void Transfer(uint32_t shard, uint64_t to, std::function<void(Status)> done) override {
    Result<std::shared_ptr<Replica>> replica = Find(shard);
    if (!replica.ok()) return done(std::move(replica).status());
    (*replica)->group->Transfer(to, std::move(done));
  }

  void StartCopy(uint32_t shard, uint64_t min_index,
                 std::function<void(Result<internal::v1::CopyResponse>)> done) override {
    Result<std::shared_ptr<Replica>> found = Find(shard);
    if (!found.ok()) return done(std::move(found).status());
    std::shared_ptr<Replica> replica = *found;
    const uint64_t applied = replica->store->applied_index();
    if (applied < min_index) {
      return done(Unavailable("worker " + std::to_string(options_.node_id) +
                              "'s replica of shard " + std::to_string(shard) +
                              " holds the entries up to " + std::to_string(applied) +
                              ", not up to " + std::to_string(min_index)));
    }
    {
      MutexLock lock(replica->copy_mu);
      ExpireCopies(replica->outgoing);
      // A retry (its last attempt timed out, or lost a chunk) gets the copy made for it.
      for (auto it = replica->outgoing.rbegin(); it != replica->outgoing.rend(); ++it) {
        if (it->second.applied_index >= min_index) return done(Describe(it->first, it->second));
      }
    }
    const uint64_t id = next_copy_id_.fetch_add(1, std::memory_order_relaxed);
    std::string path = (replica->dir / (kCopyOutPrefix + std::to_string(id) + ".duckdb")).string();
    replica->store->ExportCopy(path, [replica, id, path,
                                      done = std::move(done)](Result<uint64_t> exported) {
      std::error_code error;
      Result<uint64_t> checksum = exported.ok() ? HashFile(path) : exported.status();
      const uint64_t size = std::filesystem::file_size(path, error);
      if (!checksum.ok() || error) {
        std::filesystem::remove(path, error);
        return done(checksum.ok() ? Unavailable("cannot size " + path) : checksum.status());
      }
      const OutgoingCopy copy{path, size, *exported, *checksum, std::chrono::steady_clock::now()};
      {
        MutexLock lock(replica->copy_mu);
        replica->outgoing.emplace(id, copy);
        while (replica->outgoing.size() > kCopiesKept) {
          std::filesystem::remove(replica->outgoing.begin()->second.path, error);
          replica->outgoing.erase(replica->outgoing.begin());
        }
      }
      spdlog::info("shard {}: made copy {} at entry {} ({} bytes) for another replica",
                   replica->shard, id, *exported, size);
      done(Describe(id, copy));
    });
  }

  Result<std::string> ReadCopyChunk(uint32_t shard, uint64_t copy_id, uint64_t offset) override {
    ASSIGN_OR_RETURN(std::shared_ptr<Replica> replica, Find(shard));
    MutexLock lock(replica->copy_mu);
    auto it = replica->outgoing.find(copy_id);
    if (it == replica->outgoing.end()) {
      return NotFound("copy " + std::to_string(copy_id) + " of shard " + std::to_string(shard) +
                      " is gone; ask for a new one");
    }
    OutgoingCopy& copy = it->second;
    copy.touched = std::chrono::steady_clock::now();
    if (offset >= copy.size) {
      return InvalidArgument("offset " + std::to_string(offset) + " is past the copy's " +
                             std::to_string(copy.size) + " bytes");
    }
    const size_t length =
        static_cast<size_t>(std::min<uint64_t>(kCopyChunkBytes, copy.size - offset));
    ASSIGN_OR_RETURN(std::string data, ReadAt(copy.path, offset, length));
    if (offset + length == copy.size) {  // read to the end: done with it
      std::error_code error;
      std::filesystem::remove(copy.path, error);
      replica->outgoing.erase(it);
      replica->copies_served.fetch_add(1, std::memory_order_relaxed);
    }
    return data;
  }

  void Health(HealthCallback done) override {
    if (!open_.load(std::memory_order_acquire)) return done({});
    std::vector<internal::v1::ReplicaHealth> out;
    std::vector<std::pair<raft::Group*, std::shared_ptr<const void>>> groups;
    for (const auto& [shard, replica] : Replicas()) {
      internal::v1::ReplicaHealth& health = out.emplace_back();
      health.set_shard(shard);
      DescribeStore(*replica, health);
      groups.emplace_back(replica->group.get(), replica);  // the replica owns its group
    }
    raft::DescribeAll(std::move(groups), [out = std::move(out), done = std::move(done)](
                                             std::vector<raft::GroupDescription> groups) mutable {
      for (size_t i = 0; i < groups.size(); ++i) {
        rpc::DescribeGroup(groups[i].info, groups[i].members, out[i]);
      }
      done(std::move(out));
    });
  }

  // REQUIRES: no Write/Read/Transfer/Health call runs or follows (the worker stops its HTTP
  // server first): they use the replicas without the lock.
  void Close() override {
    MutexLock lock(mu_);
    closed_.store(true, std::memory_order_release);
    if (!open_.exchange(false)) return;
    std::map<uint32_t, std::shared_ptr<Replica>> replicas;
    {
      WriterLock replicas_lock(replicas_mu_);
      replicas.swap(replicas_);
    }
    CloseReplicas(replicas);
    if (hub_) hub_->Close();
    if (loop_) loop_->Stop();
    spdlog::info("replicas closed");
  }

 private:
  std::string TopologyPath() const {
    return (std::filesystem::path(options_.data_dir) / kTopologyFile).string();
  }

  std::string RaftLogDir() const {
    return (std::filesystem::path(options_.data_dir) / "raft-log").string();
  }

  std::shared_ptr<const TopologyRequest> Held() const {
    MutexLock lock(held_mu_);
    return held_;
  }

  std::map<uint32_t, std::shared_ptr<Replica>> Replicas() const {
    ReaderLock lock(replicas_mu_);
    return replicas_;
  }
  // The shards it holds a replica of now.
  std::vector<uint32_t> HeldShards() const {
    ReaderLock lock(replicas_mu_);
    std::vector<uint32_t> shards;
    for (const auto& [shard, replica] : replicas_) shards.push_back(shard);
    return shards;
  }

  Result<std::shared_ptr<Replica>> Find(uint32_t shard) {
    if (closed_.load(std::memory_order_acquire)) {
      return ShuttingDown("worker " + std::to_string(options_.node_id) + " is stopping");
    }
    if (!open_.load(std::memory_order_acquire)) {
      return Unavailable("worker " + std::to_string(options_.node_id) +
                         " has no topology yet (the control node sends it)");
    }
    ReaderLock lock(replicas_mu_);
    auto it = replicas_.find(shard);
    if (it == replicas_.end()) {
      return NotFound("worker " + std::to_string(options_.node_id) + " holds no replica of shard " +
                      std::to_string(shard));
    }
    return it->second;
  }

  // REQUIRES: mu_ held, nothing open yet.
  Status OpenLocked(const TopologyRequest& request) REQUIRES(mu_) {
    const internal::v1::NodeAddress* self = rpc::FindNode(request.topology(), request.node_id());
    if (self == nullptr) return InvalidArgument("the topology does not name this worker");
    ASSIGN_OR_RETURN(loop_, raft::Loop::Start("raft"));
    loop_->SetLogBudget(options_.log_budget_bytes);
    // Every replica's raft log in one (src/raft/README.md, "One log per node").
    if (Status log = loop_->OpenLog(RaftLogDir()); !log.ok()) {
      CloseOpenedLocked();
      return log;
    }
    ASSIGN_OR_RETURN(
        hub_,
        raft::Hub::Open(*loop_, options_.listen_host + ":" + std::to_string(options_.raft_port),
                        std::chrono::seconds(5), options_.cluster_secret));
    if (Status peers = hub_->SetPeers(rpc::RaftPeers(request.topology())); !peers.ok()) {
      CloseOpenedLocked();
      return peers;
    }
    {
      MutexLock lock(held_mu_);
      held_ = std::make_shared<const TopologyRequest>(request);
    }
    const rpc::ReplicaChanges changes = rpc::ChangesOf(request.topology(), request.node_id(), {});
    for (const rpc::ReplicaPlan& plan : changes.open) {
      Result<std::shared_ptr<Replica>> replica = OpenReplica(request.topology(), plan, *self);
      if (!replica.ok()) {
        CloseOpenedLocked();
        return std::move(replica).status();
      }
      WriterLock lock(replicas_mu_);
      replicas_.emplace(plan.shard, std::move(replica).value());
    }
    RemoveStrayRows(changes.wanted);
    open_.store(true, std::memory_order_release);
    spdlog::info("holding {} shard replicas of cluster {} (epoch {}), raft on {}",
                 Replicas().size(), request.topology().cluster_id(), request.topology().epoch(),
                 self->raft_address());
    return Status::Ok();
  }

  // REQUIRES: mu_ held, a topology open. Takes a newer topology: opens the replicas it adds
  // here (joining: their leader adds them), closes those it no longer places here (their groups
  // removed them) and deletes their data.
  Status ReconcileLocked(const TopologyRequest& request) REQUIRES(mu_) {
    const internal::v1::NodeAddress* self = rpc::FindNode(request.topology(), request.node_id());
    RETURN_IF_ERROR(hub_->SetPeers(rpc::RaftPeers(request.topology())));
    {
      MutexLock lock(held_mu_);
      held_ = std::make_shared<const TopologyRequest>(request);
    }
    const rpc::ReplicaChanges changes =
        rpc::ChangesOf(request.topology(), request.node_id(), HeldShards());
    Status status = Status::Ok();
    for (const rpc::ReplicaPlan& plan : changes.open) {
      Result<std::shared_ptr<Replica>> replica = OpenReplica(request.topology(), plan, *self);
      if (!replica.ok()) {
        spdlog::error("shard {}: cannot open a replica: {}", plan.shard,
                      replica.status().ToString());
        status = std::move(replica).status();
        continue;
      }
      spdlog::info("shard {}: replica opened ({})", plan.shard,
                   plan.bootstrap.empty() ? "joining" : "founding");
      WriterLock lock(replicas_mu_);
      replicas_.emplace(plan.shard, std::move(replica).value());
    }
    std::map<uint32_t, std::shared_ptr<Replica>> removed;
    {
      WriterLock lock(replicas_mu_);
      for (uint32_t shard : changes.close) {
        auto it = replicas_.find(shard);
        if (it == replicas_.end()) continue;
        removed.insert(*it);
        replicas_.erase(it);
      }
    }
    CloseReplicas(removed);
    for (const auto& [shard, replica] : removed) {
      // Rows first: a crash before the raft log goes leaves a log without rows, which a
      // later open of the replica catches up from its leader.
      if (Status deleted = options_.store->RemoveReplica(shard); !deleted.ok()) {
        spdlog::error("shard {}: cannot delete the removed replica's rows: {}", shard,
                      deleted.ToString());
        continue;
      }
      if (Status dropped = loop_->DropFromLog(shard); !dropped.ok()) {
        spdlog::error("shard {}: cannot forget the removed replica's raft log: {}", shard,
                      dropped.ToString());
        continue;
      }
      std::error_code error;
      std::filesystem::remove_all(replica->dir, error);
      spdlog::info("shard {}: replica removed from this worker, its data deleted", shard);
    }
    RemoveStrayRows(changes.wanted);
    return status;
  }

  // Deletes the rows of replicas the store holds that the topology does not place here (a
  // removal that a crash interrupted), never the unreplicated store's.
  void RemoveStrayRows(const std::set<uint32_t>& wanted) {
    Result<std::vector<uint32_t>> held = options_.store->Replicas();
    if (!held.ok()) {
      spdlog::error("cannot list the store's replicas: {}", held.status().ToString());
      return;
    }
    for (uint32_t replica : *held) {
      if (replica == storage::kUnreplicatedReplica || wanted.count(replica) > 0) continue;
      if (Status deleted = options_.store->RemoveReplica(replica); !deleted.ok()) {
        spdlog::error("shard {}: cannot delete a stray replica's rows: {}", replica,
                      deleted.ToString());
        continue;
      }
      spdlog::info("shard {}: rows of a replica no longer placed here deleted", replica);
    }
  }

  // Stops `replicas` (no more Apply, then the stores): their in-flight calls complete.
  static void CloseReplicas(const std::map<uint32_t, std::shared_ptr<Replica>>& replicas) {
    for (auto& [shard, replica] : replicas) replica->machine->BeginClose();
    for (auto& [shard, replica] : replicas) replica->group->Close();  // no more Apply
    for (auto& [shard, replica] : replicas) {
      replica->machine->CancelReads();
      replica->store->Stop();  // runs the callbacks of what Apply queued
    }
  }

  Result<std::shared_ptr<Replica>> OpenReplica(const internal::v1::Topology& topology,
                                               const rpc::ReplicaPlan& plan,
                                               const internal::v1::NodeAddress& self) {
    const std::filesystem::path dir =
        std::filesystem::path(options_.data_dir) / "shards" / std::to_string(plan.shard);
    auto replica = std::make_shared<Replica>();
    replica->shard = plan.shard;
    replica->dir = dir;
    RemoveStaleCopies(dir);
    std::error_code error;
    std::filesystem::create_directories(dir, error);
    if (error) return Unavailable("cannot create " + dir.string() + ": " + error.message());
    storage::ReplicaStoreOptions store_options = options_.replica_store;
    store_options.replica = plan.shard;
    store_options.migrate_from = (dir / kOldStoreFile).string();
    const LogContext log(plan.shard);
    ASSIGN_OR_RETURN(replica->store, options_.store->OpenReplica(store_options));
    replica->machine = std::make_unique<ShardReplica>(
        plan.shard, *replica->store,
        [this, replica = replica.get()](uint64_t min_index, const std::atomic<bool>& stopping) {
          return FetchCopy(*replica, min_index, stopping);
        });
    raft::GroupOptions group;
    group.hub = hub_.get();
    group.group_id = plan.shard;
    group.id = self.node_id();
    group.address = self.raft_address();
    group.data_dir = (dir / "raft").string();
    group.election_timeout_ms = options_.election_timeout_ms;
    group.heartbeat_timeout_ms = options_.heartbeat_timeout_ms;
    group.snapshot_threshold = options_.snapshot_threshold;
    group.snapshot_trailing = options_.snapshot_trailing;
    for (uint64_t voter : plan.bootstrap) {
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

  // For a replica behind its leader's log: a copy from one of the other data replicas.
  Result<std::string> FetchCopy(Replica& replica, uint64_t min_index,
                                const std::atomic<bool>& stopping) {
    if (options_.copies == nullptr) return Unavailable("this worker fetches no copies");
    const std::string path = (replica.dir / kCopyIn).string();
    Status last = Unavailable("shard " + std::to_string(replica.shard) +
                              " has no other data replica to copy from");
    for (const std::string& peer : PeersOf(replica.shard)) {
      Result<uint64_t> fetched = options_.copies->Fetch(peer, replica.shard, min_index, path,
                                                        stopping, replica.copy_bytes);
      if (fetched.ok()) return path;
      last = std::move(fetched).status();
      if (stopping.load(std::memory_order_acquire)) break;
      spdlog::info("shard {}: no copy from {}: {}", replica.shard, peer, last.ToString());
    }
    return last;
  }

  // Whether this node is the shard's only voter.
  bool SoleVoter(uint32_t shard) const {
    std::shared_ptr<const TopologyRequest> held = Held();
    if (!held || shard >= static_cast<uint32_t>(held->topology().placements_size())) return false;
    return held->topology().placements(static_cast<int>(shard)).voters_size() == 1;
  }

  // The internal API addresses of the shard's other data replicas, where a copy can come from.
  std::vector<std::string> PeersOf(uint32_t shard) const {
    std::vector<std::string> out;
    std::shared_ptr<const TopologyRequest> held = Held();
    if (!held || shard >= static_cast<uint32_t>(held->topology().placements_size())) return out;
    for (uint64_t voter : rpc::DataVoters(held->topology().placements(static_cast<int>(shard)))) {
      const internal::v1::NodeAddress* node = rpc::FindNode(held->topology(), voter);
      if (voter != options_.node_id && node != nullptr && !node->http_address().empty()) {
        out.push_back(node->http_address());
      }
    }
    return out;
  }

  // Copies a previous run made or fetched and did not finish with.
  static void RemoveStaleCopies(const std::filesystem::path& dir) {
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
      const std::string name = entry.path().filename().string();
      if (name.starts_with(kCopyOutPrefix) || name.starts_with(kCopyIn)) {
        std::filesystem::remove(entry.path(), error);
      }
    }
  }

  void CloseOpenedLocked() REQUIRES(mu_) {
    std::map<uint32_t, std::shared_ptr<Replica>> replicas;
    {
      WriterLock lock(replicas_mu_);
      replicas.swap(replicas_);
    }
    CloseReplicas(replicas);
    {
      MutexLock lock(held_mu_);
      held_.reset();
    }
    hub_.reset();
    if (loop_) loop_->Stop();
    loop_.reset();
  }

  const ReplicaHostOptions options_;
  Mutex mu_;  // serialises Adopt, LoadSaved and Close
  mutable Mutex held_mu_;
  std::shared_ptr<const TopologyRequest> held_ GUARDED_BY(held_mu_);  // replaced whole
  std::unique_ptr<raft::Loop> loop_;
  std::unique_ptr<raft::Hub> hub_;
  mutable SharedMutex replicas_mu_;
  std::map<uint32_t, std::shared_ptr<Replica>> replicas_ GUARDED_BY(replicas_mu_);
  std::atomic<bool> open_{false};
  std::atomic<bool> closed_{false};            // Close() ran: every later request is refused
  std::atomic<uint64_t> saved_cluster_id_{0};  // of the kept topology, while it opens
  // Copy ids: distinct across restarts too, so a fetch never reads another run's copy.
  std::atomic<uint64_t> next_copy_id_{static_cast<uint64_t>(
      std::chrono::system_clock::now().time_since_epoch() / std::chrono::microseconds(1))};
};

}  // namespace

std::unique_ptr<ReplicaHost> ReplicaHost::Create(ReplicaHostOptions options) {
  return std::make_unique<ReplicaHostImpl>(std::move(options));
}

}  // namespace das::replica
