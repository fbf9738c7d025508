// ReplicaState: one replica's part of the node store, as the applier sees it: its applied
// index, its idempotency keys (memory and table), its request window and its newest ingest
// time. The applier stages a round's writes of every replica into shared inserts (one
// statement per table for the whole round, whatever the number of replicas) and commits them
// in one transaction; each replica then takes what it committed into memory.
//
// Not thread-safe: only the node store's applier thread uses it (storage/node_store.cc).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "storage/duckdb_util.h"
#include "storage/idempotency_keys.h"
#include "storage/request_window.h"
#include "storage/running_aggregate.h"
#include "storage/staged_insert.h"
#include "storage/store.h"

namespace das::storage {

// One Apply() call (or a ReplaceFromCopy), queued for the applier.
struct WriteRequest {
  std::vector<SubBatch> batches;
  WriteCallback done;
  size_t rows = 0;  // over all sub-batches
  // A committed raft entry (Store::Apply): its log index and the ingest time
  // its leader fixed (0: the applier's clock).
  uint64_t raft_index = 0;
  int64_t ingest_ts_us = 0;
  // The control node's id of the request (0: none); see RequestWindow.
  uint64_t request_id = 0;
  // The outcomes decided at commit (ReplicatedEntry::decided): staged as they are.
  std::optional<std::vector<SubBatchOutcome>> decided;
  // Set: no write but Store::ReplaceFromCopy (`batches` and `done` unused).
  struct Replace {
    uint64_t min_index = 0;
    CopyFetch fetch;
    StatusCallback done;
  };
  std::shared_ptr<Replace> replace = nullptr;
};

// The applier's statements (all on the applier's connection): the rows insert is the
// replica's own, the rest shared by every replica.
struct ApplierSinks {
  duck::StagedInsert* rows = nullptr;      // partition_key, value, ingest_ts: this replica's
  duck::StagedInsert* keys = nullptr;      // replica, key, fingerprint, rows_written, committed_at
  duck::StagedInsert* requests = nullptr;  // replica, request_id, raft_index, outcomes
  duckdb_prepared_statement delete_expired_keys = nullptr;  // replica $1, committed_at < $2
  duckdb_prepared_statement delete_old_requests = nullptr;  // replica $1, raft_index <= $2
  duckdb_prepared_statement store_applied = nullptr;        // replica $1, applied_index $2
  duckdb_prepared_statement seed_applied = nullptr;         // replica $1: a row if missing
};

struct ReplicaConfig {
  uint32_t replica = 0;
  std::chrono::seconds retention{24 * 3600};
  const Clock* clock = &Clock::Real();
  uint64_t request_window = 65536;
};

class ReplicaState {
 public:
  // What one round staged for this replica, until it commits or rolls back.
  struct Staged {
    std::vector<std::vector<SubBatchOutcome>> outcomes;  // per request
    // Keys this round stored; they point into the round's sub-batches.
    std::unordered_map<std::string_view, KeyRecord> new_keys;
    uint64_t applied_index = 0;   // the highest raft index the round applies (0: none)
    uint64_t recorded_index = 0;  // the highest raft index recorded with its request id
    // Per request: answered from the request window (its rows were stored by an earlier entry).
    std::vector<bool> repeated;
    int64_t newest_ingest_us = 0;  // the newest ingest time stored, with this round's rows
  };

  // Seeds the replica's applied-index row, deletes its expired keys, then loads its applied
  // index, request window, live keys and newest ingest time. `conn`, `sinks` (not owned),
  // `running` and `keys` (owned by the replica's store) outlive the state.
  static Result<std::unique_ptr<ReplicaState>> Load(duckdb_connection conn, ReplicaConfig config,
                                                    const ApplierSinks& sinks,
                                                    RunningAggregate* running, KeyIndex* keys);
  ReplicaState(const ReplicaState&) = delete;
  ReplicaState& operator=(const ReplicaState&) = delete;

  uint32_t replica() const { return config_.replica; }
  // The highest raft index whose entry is committed (0: none).
  uint64_t applied_index() const { return applied_index_; }
  // RequestWindow::FindCommitted: from any thread.
  std::optional<std::vector<SubBatchOutcome>> FindCommittedRequest(uint64_t request_id,
                                                                   uint64_t index) const;

  // Before the round's transaction (autocommitted on its own): forgets expired keys, every
  // prune interval or when `group` retries an expired key, so that its new key row never
  // collides with the old one. Logs a failure; the round goes on.
  void PruneIfDue(const std::vector<WriteRequest>& group);
  // In the round's open transaction: stages `group`, each sub-batch atomically and in order.
  Result<Staged> Stage(const std::vector<WriteRequest>& group);
  // After COMMIT: what Stage() did becomes the replica's memory (keys, applied index, the
  // running aggregate), then every request of `group` is called back with its outcomes.
  void Committed(std::vector<WriteRequest>& group, Staged& staged);
  // After a failed round (before ROLLBACK): forgets what Stage() did.
  void RolledBack();
  // In the round's transaction, after Stage(): inserts the rows staged (StagedInsert::Flush);
  // ClearRows forgets them after a failure.
  Status FlushRows() { return sinks_.rows->Flush(); }
  void ClearRows() { sinks_.rows->Clear(); }
  // After an import replaced the replica's tables (ImportReplica): loads everything again and
  // restarts the running aggregate from a scan. Fails only on a DuckDB failure.
  Status Reload();

 private:
  ReplicaState(duckdb_connection conn, ReplicaConfig config, const ApplierSinks& sinks,
               RunningAggregate* running, KeyIndex* keys);
  Status LoadAll();
  Status LoadKeys();
  Status LoadNewestIngest();
  Status PruneExpiredKeys(int64_t now_us);
  Status StoreAppliedIndex(uint64_t index);
  // The time a round is applied at: the latest ingest time its raft entries carry (so that
  // every replica decides key expiry alike), else the clock.
  int64_t GroupTime(const std::vector<WriteRequest>& group) const;
  bool PruneDue(const std::vector<WriteRequest>& group, int64_t now_us) const;
  Result<std::vector<SubBatchOutcome>> StageRequest(const WriteRequest& request, int64_t now_us,
                                                    Staged& staged);
  Result<SubBatchOutcome> StageSubBatch(const SubBatch& batch, int64_t ingest_us, Staged& staged);
  // Stores what `outcome` says was stored: the rows and key of a kOk sub-batch.
  void StageDecided(const SubBatch& batch, const SubBatchOutcome& outcome, int64_t ingest_us,
                    Staged& staged);
  void AddCommittedRows(const std::vector<WriteRequest>& group, const Staged& staged);
  // Stages the batch's rows at `ingest_us` (or at their own times), raising
  // staged.newest_ingest_us to the newest.
  void StageRows(const SubBatch& batch, int64_t ingest_us, Staged& staged);
  void StageKey(std::string_view key, const KeyRecord& record);

  duckdb_connection conn_;
  const ReplicaConfig config_;
  const ApplierSinks sinks_;
  const int64_t retention_us_;
  const Clock::Monotonic::duration prune_interval_;
  Clock::Monotonic last_prune_;
  uint64_t applied_index_ = 0;  // committed
  // The newest ingest time committed (INT64_MIN: no row): every later row's is above it.
  int64_t newest_ingest_us_ = 0;
  RunningAggregate* running_;
  KeyIndex& keys_;
  std::unique_ptr<RequestWindow> requests_;  // set by Load
};

}  // namespace das::storage
