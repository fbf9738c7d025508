// NodeStore: the worker's one DuckDB database, holding every replica the worker has (the shard
// replicas and the unreplicated store), and its one applier.
//
// The applier is one thread with one connection. Each round it takes what every replica has
// queued (Store::Apply: many raft entries of many shards), stages it into each
// replica's rows insert and one shared insert per other table (storage/replica_state.h) and
// commits it in one transaction, with each replica's applied index in that same transaction
// (a replay after a restart skips what is applied). A round starts when the previous one
// committed and there is work, after at least `min_commit_interval` unless someone waits
// (Store::Expedite).
// Callers are answered only after COMMIT (DuckDB syncs its WAL there). Reader threads with their
// own connections serve reads and copies (DuckDB MVCC: they never wait for the applier).
//
// A replica's store is a view of the database (OpenReplica): closing it (Store::Stop) finishes
// what it queued and leaves the others running; RemoveReplica then deletes its rows.
// A replica being replaced by a copy (Store::ReplaceFromCopy) has the copy fetched on a thread
// of its own; its later writes wait, the other replicas' go on.
//
// The disk guard (etcd's NOSPACE alarm): no round starts while the data directory's filesystem
// has less than `disk_reserve_bytes` free. Raft entries (Store::Apply) wait in memory, applied
// in order once there is room (their raft log holds them anyway). DuckDB is never written to the
// last byte: DuckDB 1.4.4 loses committed rows when an automatic checkpoint failed for lack of
// space and a later one succeeds (README, "Disks"), so a round that fails writing the file stops
// the process (its WAL is intact; a restart replays it and the raft logs). A COMMIT whose WAL write
// found no space is the exception: DuckDB keeps nothing of it and stays usable, so that round waits
// for room like the others.
//
// Thread-safety: every method may be called from any thread. Lifecycle: Open, OpenReplica...,
// stop every replica's store, Stop() (the destructor stops too).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "storage/store.h"

namespace prometheus {
class Histogram;
}

namespace das::storage {

struct NodeStoreOptions {
  std::string data_dir;  // created if missing; holds `file_name` and is locked (flock LOCK)
  std::string file_name = "store.duckdb";
  // Upper bound of rows the applier puts in one transaction.
  size_t max_rows_per_commit = 1'000'000;
  size_t reader_threads = 1;
  // DuckDB's own worker threads per query (0: DuckDB's default).
  size_t duckdb_threads = 0;
  // DuckDB's memory_limit for the database, that is for every replica of the node together
  // (0: DuckDB's default, 80 % of the machine; storage/memory_budget.h gives the worker's).
  uint64_t memory_limit_bytes = 0;
  // At least this long between the starts of two rounds (0: none): what is queued meanwhile
  // shares the next one. Someone waiting (Store::Expedite) cuts it short.
  std::chrono::milliseconds min_commit_interval{0};
  // Observes every round's duration in seconds, BEGIN to COMMIT (null: none). Not owned.
  prometheus::Histogram* commit_seconds = nullptr;
  // The disk guard (above): 0, none. Rounds resume once a quarter more than this is free.
  uint64_t disk_reserve_bytes = 0;
  // The free bytes of the data directory's filesystem (empty: statvfs on data_dir; tests give
  // their own). Called by the applier before a round while writes wait.
  std::function<Result<uint64_t>()> free_bytes;
};

struct ReplicaStoreOptions {
  // The replica's id: its shard, or kUnreplicatedReplica (storage/store_tables.h).
  uint32_t replica = 0;
  // How long an idempotency key is remembered after its batch committed.
  std::chrono::seconds idempotency_retention{24 * 3600};
  // Ingest timestamps of entries without one, key commit times, the prune interval; not owned.
  const Clock* clock = &Clock::Real();
  // How many raft entries a request id is remembered for (storage/request_window.h).
  uint64_t request_window = 65536;
  // A file in the one-replica layout (the replica's own DuckDB file from before the node store)
  // to import into the database before the replica opens, if it exists; deleted once the
  // import committed, never before.
  std::string migrate_from;
};

class NodeStore {
 public:
  // Opens (or creates) the database and its tables, and starts the applier and reader threads.
  // kUnavailable if the directory or file cannot be opened (e.g. locked by another process).
  static Result<std::unique_ptr<NodeStore>> Open(NodeStoreOptions options);
  virtual ~NodeStore() = default;
  NodeStore(const NodeStore&) = delete;
  NodeStore& operator=(const NodeStore&) = delete;

  // The store of one replica: loads its keys, request window, applied index and running
  // aggregate (after importing options.migrate_from, if that file exists). kInvalidArgument when
  // the replica is open already; kShuttingDown after Stop(). The store must be stopped before
  // this NodeStore.
  virtual Result<std::unique_ptr<Store>> OpenReplica(ReplicaStoreOptions options) = 0;
  // Deletes every row, key, request id and the applied index of `replica`, in one transaction.
  // REQUIRES: its store is stopped (or was never opened).
  virtual Status RemoveReplica(uint32_t replica) = 0;
  // The replicas the database holds (open or not), ascending.
  virtual Result<std::vector<uint32_t>> Replicas() = 0;
  // Writes queued for the applier, over every replica.
  virtual size_t queue_depth() const = 0;
  virtual DiskState disk(bool measure_now = false) const = 0;

  // Finishes queued work, fails work queued after it with kShuttingDown, joins the threads and
  // closes the database. Safe to call more than once.
  virtual void Stop() = 0;

 protected:
  NodeStore() = default;
};

}  // namespace das::storage
