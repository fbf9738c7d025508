// ReplicaHost: this worker's replicas of the replicated shards (docs/architecture.md): one raft
// loop and one raft port (a Hub) for all of them, and per shard replica its store in the
// worker's node store (storage/node_store.h), its raft log (<data-dir>/shards/<shard>/raft),
// its ShardReplica state machine and its raft::Group. A replica's DuckDB file from before the
// node store (<data-dir>/shards/<shard>/shard.duckdb) is imported into it when the replica
// opens, and deleted once imported.
//
// The topology comes from the control node (Adopt) and is kept in <data-dir>/topology.pb, so a
// restarted worker opens its replicas again without waiting for the control node. A topology
// from another cluster, or an older epoch than the one held, is refused. A newer epoch
// (docs/operations.md, "Membership") opens the replicas it adds to this worker (joining: they wait
// until their leader adds them, then get the log or a copy) and closes those it no longer places
// here (the group removed them first), deleting their data (rows first, then the raft log). Rows of
// replicas the topology does not place here (a removal a crash interrupted) are deleted too.
//
// A NOT_LEADER answer carries the leader's node id (decimal) as its detail, never a raft
// address: the control node knows nodes by id.
// Thread-safety: every method may be called from any thread but the raft loop's; callbacks run
// on the stores' writer threads or the raft loop thread and must not block. Lifecycle: Create,
// then Adopt (or LoadSaved) opens the replicas; Close() closes them, and the destructor closes.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/status.h"
#include "das/v1/internal.pb.h"
#include "storage/node_store.h"
#include "storage/store.h"

namespace das::replica {

class CopyFetcher;

// The most a copy chunk carries (ReplicaHost::ReadCopyChunk).
inline constexpr size_t kCopyChunkBytes = 4 << 20;

struct ReplicaHostOptions {
  uint64_t node_id = 0;     // this worker's id (its --id)
  std::string data_dir;     // the worker's data directory
  std::string listen_host;  // the raft port listens here (the worker's --host)
  uint16_t raft_port = 0;
  std::string cluster_secret;           // its raft handshakes prove it (empty: none)
  storage::NodeStore* store = nullptr;  // the worker's database (not owned; outlives the host)
  storage::ReplicaStoreOptions
      replica_store;  // for every replica's store (replica and migration set here)
  unsigned election_timeout_ms = 500;
  unsigned heartbeat_timeout_ms = 50;
  unsigned snapshot_threshold = 1024;
  unsigned snapshot_trailing = 8192;
  // What the worker's groups keep of their logs, in bytes (its --raft-log-mb; raft::Loop).
  uint64_t log_budget_bytes = 256ull << 20;
  // Fetches copies from other workers for replicas behind their leader's log (not owned; null:
  // such a replica cannot catch up).
  CopyFetcher* copies = nullptr;
};

class ReplicaHost {
 public:
  static std::unique_ptr<ReplicaHost> Create(ReplicaHostOptions options);
  virtual ~ReplicaHost() = default;
  ReplicaHost(const ReplicaHost&) = delete;
  ReplicaHost& operator=(const ReplicaHost&) = delete;

  // Opens the replicas of a topology kept in the data directory, if there is one and no
  // Adopt() opened one first.
  virtual Status LoadSaved() = 0;
  // Takes the control node's topology: the first one is stored and opened; the same one again
  // is a no-op; a newer epoch is stored, then its changes are made. kInvalidArgument for another
  // cluster's, for a node id that is not this worker's, for an older epoch, or for another
  // topology of the same epoch.
  virtual Status Adopt(const internal::v1::TopologyRequest& request) = 0;
  // The cluster id of the topology held or being opened (0: none yet), and its epoch.
  virtual uint64_t cluster_id() const = 0;
  virtual uint64_t epoch() const = 0;

  // One membership step of `request.shard` at this replica, which must lead it (else
  // kNotLeader naming the leader). A step already done answers OK at once.
  virtual void ChangeMembership(const internal::v1::MembershipRequest& request,
                                std::function<void(Status)> done) = 0;

  // Proposes `batches` on `shard` (see ShardReplica::Propose; they are read during the call
  // only). kUnavailable before a topology; kNotFound for a shard this worker holds no replica of.
  virtual void Write(uint32_t shard, uint64_t request_id, int64_t ingest_us,
                     const std::vector<const internal::v1::SubBatch*>& batches,
                     storage::WriteCallback done) = 0;
  // A linearizable read of `shard` at this replica, which must lead it (ShardReplica::ReadPoint):
  // `ready` gets the store once the read point is reached, and must submit its work to it
  // before returning.
  virtual void ReadWith(uint32_t shard, std::function<void(Result<storage::Store*>)> ready) = 0;
  // Hands leadership of `shard` to node `to`.
  virtual void Transfer(uint32_t shard, uint64_t to, std::function<void(Status)> done) = 0;
  // Makes a copy of this worker's replica of `shard` at an applied index of at least
  // `min_index` for another worker to fetch (ReadCopyChunk); kUnavailable when this replica is
  // behind that. The two newest copies of a shard are kept until fully read
  // (for 10 minutes at most); a request that one of them covers is answered with it.
  virtual void StartCopy(uint32_t shard, uint64_t min_index,
                         std::function<void(Result<internal::v1::CopyResponse>)> done) = 0;
  // Up to kCopyChunkBytes of copy `copy_id` from `offset`; the copy is deleted once its last
  // byte was read. kNotFound when it is gone.
  virtual Result<std::string> ReadCopyChunk(uint32_t shard, uint64_t copy_id, uint64_t offset) = 0;
  // One entry per replica held, with its rows. Never waits for the raft loop: `done` runs on
  // the loop thread once every group described itself (on the caller's, with nothing to ask).
  using HealthCallback = std::function<void(std::vector<internal::v1::ReplicaHealth>)>;
  virtual void Health(HealthCallback done) = 0;

  virtual void Close() = 0;

 protected:
  ReplicaHost() = default;
};

}  // namespace das::replica
