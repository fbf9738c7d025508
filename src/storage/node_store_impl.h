// The node store's insides (storage/node_store.h), shared by node_store.cc (the database and
// its applier) and replica_store.cc (a replica's view of it). Nothing outside those includes it.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>

#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>
#include "common/mutex.h"

#include "storage/dir_lock.h"
#include "storage/duckdb_util.h"
#include "storage/node_store.h"
#include "storage/replica_state.h"
#include "storage/staged_insert.h"
#include "storage/work_queue.h"

namespace das::storage {

// One replica's place in the node store.
struct Partition {
  Partition(uint32_t id, const ReplicaStoreOptions& options)
      : id(id),
        clock(options.clock),
        request_window(options.request_window),
        retention_us(
            std::chrono::duration_cast<std::chrono::microseconds>(options.idempotency_retention)
                .count()) {}
  const uint32_t id;
  const Clock* const clock;
  const uint64_t request_window;
  const int64_t retention_us;
  RunningAggregate running;
  KeyIndex keys;
  std::unique_ptr<ReplicaState> state;  // set before it is listed; the applier thread's only
  // The rest is guarded by the node store's mutex.
  std::deque<WriteRequest> queue;
  bool blocked = false;           // a copy is being fetched or installed: the queue waits
  bool failed = false;            // a replacement gave up: every later write fails
  bool closing = false;           // Store::Stop: no new writes
  bool busy = false;              // in a round
  bool fetching = false;          // a fetcher thread runs
  uint64_t expedite_through = 0;  // someone waits until `running` applied this (Expedite)
  std::thread fetcher;
  std::atomic<bool> stopping{false};  // tells a fetch to give up
};

class NodeStoreImpl;

// A replica's view of the node store (the Store interface).
class ReplicaStore final : public Store {
 public:
  ReplicaStore(NodeStoreImpl& node, std::shared_ptr<Partition> partition)
      : node_(node), partition_(std::move(partition)) {}
  ~ReplicaStore() override { Stop(); }

  void Apply(ReplicatedEntry entry, WriteCallback done) override;
  uint64_t applied_index() const override { return partition_->running.applied_index(); }
  int64_t newest_ingest_us() const override { return partition_->running.newest_ingest_us(); }
  uint32_t replica() const override { return partition_->id; }
  size_t queue_depth() const override;
  std::optional<KeyRecord> FindKey(std::string_view key) const override;
  std::optional<std::vector<SubBatchOutcome>> FindRequest(uint64_t request_id,
                                                          uint64_t index) const override;
  int64_t key_retention_us() const override { return partition_->retention_us; }
  DiskState disk(bool measure_now = false) const override;
  uint64_t request_window() const override { return partition_->request_window; }
  void ComputeAggregate(AggregateCallback done) override;
  void ScanAggregate(AggregateCallback done) override;
  void RunOnReader(ReaderTask task) override;
  void ExportCopy(std::string path, std::function<void(Result<uint64_t>)> done) override;
  void ReplaceFromCopy(uint64_t min_index, CopyFetch fetch, StatusCallback done) override;
  void Expedite(uint64_t through) override;
  void Stop() override;

 private:
  NodeStoreImpl& node_;
  const std::shared_ptr<Partition> partition_;
  std::once_flag stopped_;
};

class NodeStoreImpl final : public NodeStore {
 public:
  NodeStoreImpl(const NodeStoreOptions& options, DirLock lock, duck::DatabaseHandle db)
      : db_path_((std::filesystem::path(options.data_dir) / options.file_name).string()),
        max_rows_per_round_(std::max<size_t>(options.max_rows_per_commit, 1)),
        min_round_interval_(options.min_commit_interval),
        commit_seconds_(options.commit_seconds),
        disk_reserve_bytes_(options.disk_reserve_bytes),
        free_bytes_(options.free_bytes),
        lock_(std::move(lock)),
        db_(std::move(db)) {}
  ~NodeStoreImpl() override { Stop(); }

  Status Start(duck::ConnectionHandle applier, std::vector<duck::ConnectionHandle> readers);

  Result<std::unique_ptr<Store>> OpenReplica(ReplicaStoreOptions options) override;
  Status RemoveReplica(uint32_t replica) override;
  Result<std::vector<uint32_t>> Replicas() override;
  size_t queue_depth() const override;
  // Measured again while full, so that room coming back shows without a write.
  DiskState disk(bool measure_now = false) const override {
    if (disk_reserve_bytes_ > 0 && (measure_now || disk_full_.load(std::memory_order_acquire))) {
      (void)DiskFull();
    }
    return DiskState{disk_full_.load(std::memory_order_acquire),
                     disk_free_.load(std::memory_order_acquire), disk_reserve_bytes_};
  }
  void Stop() override;

  // For ReplicaStore.
  void Enqueue(Partition& partition, WriteRequest request);
  size_t QueueDepth(const Partition& partition) const;
  void Read(std::function<void(Result<duckdb_connection>)> task);
  void Expedite(Partition& partition, uint64_t through);
  void Close(const std::shared_ptr<Partition>& partition);
  bool stopping() const { return stopping_flag_.load(std::memory_order_acquire); }

 private:
  // One round: per replica, the requests taken (or to fail), and the replacements to start
  // once it committed.
  struct Round {
    std::vector<std::pair<std::shared_ptr<Partition>, std::vector<WriteRequest>>> groups;
    struct Refused {
      std::shared_ptr<Partition> partition;
      std::vector<WriteRequest> requests;
      Status status;  // their answer
    };
    std::vector<Refused> refused;
    std::vector<std::pair<std::shared_ptr<Partition>, std::shared_ptr<WriteRequest::Replace>>>
        replaces;
    bool empty() const { return groups.empty() && refused.empty() && replaces.empty(); }
  };
  using Job = std::function<void()>;

  Status PrepareApplier();
  // Runs `job` on the applier thread and waits for it; kShuttingDown once the applier ended.
  Status RunOnApplier(std::function<Status()> job);
  void ApplierLoop();
  bool RunnableLocked() const REQUIRES(mu_);
  // Some replica has not applied what someone waits for (Expedite).
  bool WaitedLocked() REQUIRES(mu_);
  Round CollectLocked() REQUIRES(mu_);
  // The disk guard, measured now: true while rounds must wait for room (logs each change once).
  bool DiskFull() const;
  // While the disk is full: what to refuse (every queued entry of a replica being closed); the
  // others stay queued (their raft log holds them anyway).
  Round CollectRefusedLocked() REQUIRES(mu_);
  bool RefusableLocked() const REQUIRES(mu_);
  // Adds `partition`'s queued work to `round` (`rows` so far); false once the round is full.
  bool TakeLocked(const std::shared_ptr<Partition>& partition, Round& round, size_t& rows)
      REQUIRES(mu_);
  // On the applier: imports a copy into `replica` (ImportReplica) with DuckDB's optimizer on.
  Result<uint64_t> Import(uint32_t replica, const std::string& path, uint64_t min_index);
  void RunRound(Round& round);
  Status CommitRound(Round& round, std::vector<ReplicaState::Staged>& staged);
  void FinishRound(Round& round);
  // A round whose COMMIT found the disk full: its writes back at the front of their queues.
  void Requeue(Round& round);
  void PauseBetweenRounds(std::chrono::steady_clock::time_point started);
  void StartReplace(const std::shared_ptr<Partition>& partition,
                    std::shared_ptr<WriteRequest::Replace> replace);
  void Fetch(std::shared_ptr<Partition> partition, std::shared_ptr<WriteRequest::Replace> replace);
  Status Install(Partition& partition, const std::string& path, uint64_t min_index);
  // On the applier: the insert into `replica`'s rows table, its table created if missing.
  Result<duck::StagedInsert*> RowsInsert(uint32_t replica);
  Status OpenOnApplier(const std::shared_ptr<Partition>& partition,
                       const ReplicaStoreOptions& options);

  const std::string db_path_;
  const size_t max_rows_per_round_;
  const std::chrono::milliseconds min_round_interval_;
  prometheus::Histogram* const commit_seconds_;
  const uint64_t disk_reserve_bytes_;
  const std::function<Result<uint64_t>()> free_bytes_;
  mutable Mutex disk_mu_;  // one measurement and its log line at a time
  mutable std::atomic<bool> disk_full_{false};
  mutable std::atomic<uint64_t> disk_free_{0};

  mutable Mutex mu_;
  std::condition_variable work_;  // the applier: jobs, runnable writes, stop
  std::condition_variable idle_;  // Close(): a partition's work is done
  std::map<uint32_t, std::shared_ptr<Partition>> partitions_ GUARDED_BY(mu_);
  std::deque<Job> jobs_ GUARDED_BY(mu_);
  bool stopping_ GUARDED_BY(mu_) = false;
  bool applier_done_ GUARDED_BY(mu_) = false;
  bool expedite_ GUARDED_BY(mu_) = false;
  uint32_t next_start_ GUARDED_BY(mu_) = 0;  // round-robin start of CollectLocked
  std::atomic<bool> stopping_flag_{false};
  Mutex stop_mu_;
  bool stopped_ GUARDED_BY(stop_mu_) = false;

  // The applier thread's own.
  duck::ConnectionHandle conn_;
  std::map<uint32_t, duck::StagedInsert> rows_;  // each replica's rows table (RowsInsert)
  std::optional<duck::StagedInsert> keys_;
  std::optional<duck::StagedInsert> requests_;
  duck::PreparedHandle delete_expired_keys_, delete_old_requests_, store_applied_, seed_applied_;
  duck::PreparedHandle begin_, commit_;
  ApplierSinks sinks_;

  WorkQueue<std::function<void(duckdb_connection)>> reads_;
  // Released in Stop(), in this order: threads (and with them the connections), database, lock.
  DirLock lock_;
  duck::DatabaseHandle db_;
  std::thread applier_;
  std::vector<std::thread> readers_;
};

}  // namespace das::storage
