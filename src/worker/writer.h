// The store's writer: owns the write connection and the in-memory idempotency keys, and applies
// a group of write requests in one DuckDB transaction (group commit).
//
// Not thread-safe: Store::Open creates it, then only the writer thread uses it.
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
#include "worker/duckdb_util.h"
#include "worker/idempotency_keys.h"
#include "worker/request_window.h"
#include "worker/running_aggregate.h"
#include "worker/staged_insert.h"
#include "worker/store.h"

namespace das::worker {

// One Write() call, queued for the writer.
struct WriteRequest {
  std::vector<SubBatch> batches;
  WriteCallback done;
  size_t rows = 0;  // over all sub-batches
  // A committed raft entry (Store::Apply): its log index (0: a plain Write) and the ingest time
  // its leader fixed (0: the writer's clock).
  uint64_t raft_index = 0;
  int64_t ingest_ts_us = 0;
  // The control node's id of the request (0: none); see RequestWindow.
  uint64_t request_id = 0;
  // Set: no write but Store::ReplaceFromCopy (`batches` and `done` unused).
  struct Replace {
    uint64_t min_index = 0;
    CopyFetch fetch;
    StatusCallback done;
  };
  std::shared_ptr<Replace> replace = nullptr;
};

// The applied index of the store whose tables `catalog` names ("" for the connection's own
// database, "das_copy." for an attached copy): the larger of raft_applied's and the newest
// recorded request id's (a transaction whose last entry records its id stores no other).
Result<uint64_t> ReadAppliedIndex(duckdb_connection conn, const std::string& catalog);

class Writer {
 public:
  // Creates the tables if missing, deletes the expired idempotency keys and loads the live ones.
  // `db_path` names the database in logs.
  // `running` (owned by the store, outliving the writer) gets every committed row.
  // `running`, `keys` and `clock` (not owned) outlive the writer; `keys` is filled here.
  static Result<Writer> Create(duck::ConnectionHandle conn, std::string db_path,
                               std::chrono::seconds retention, RunningAggregate* running,
                               KeyIndex* keys, const Clock* clock, uint64_t request_window);

  // The highest raft index whose entry is committed in this store (0: none).
  uint64_t applied_index() const { return applied_index_; }

  // Applies `group` in one transaction, each sub-batch atomically and in order, then calls
  // every request back: with its outcomes only after COMMIT returned (so they are durable), or
  // with the error if anything failed (the transaction is rolled back: nothing of the group is
  // stored). May first forget expired keys (see PruneDue).
  void Apply(std::vector<WriteRequest>& group);

  // Replaces every table's contents by those of the DuckDB file at `path` (a copy of another
  // replica's store, Store::ExportCopy) in one transaction, and reloads the keys, the request
  // window and the applied index from them. kUnavailable when the copy's applied index is below
  // `min_index` (nothing changes then).
  Status ImportCopy(const std::string& path, uint64_t min_index);
  // The write connection, for a scan on the writer thread.
  duckdb_connection connection() const { return conn_.get(); }
  // The write connection runs without DuckDB's optimizer: DuckDB plans the transaction's
  // inserts anew at every execution (see staged_insert.h), and optimizing a plain INSERT is a
  // tenth of a replica transaction's CPU for nothing (bench/RESULTS.md). A copy's import and
  // the scan after it turn it on while they run: they read whole tables.
  Status SetOptimizer(bool on);

 private:
  // Keys this transaction stored so far; they point into the group's sub-batches.
  using PendingKeys = std::unordered_map<std::string_view, KeyRecord>;
  struct GroupResult {
    std::vector<std::vector<SubBatchOutcome>> outcomes;  // per request
    PendingKeys new_keys;
    uint64_t applied_index = 0;   // the highest raft index the group applies (0: none)
    uint64_t recorded_index = 0;  // the highest raft index recorded with its request id
    // Per request: answered from the request window (its rows were stored by an earlier entry).
    std::vector<bool> repeated;
    int64_t newest_ingest_us = 0;  // the newest ingest time stored, with this group's rows
  };

  Writer(duck::ConnectionHandle conn, std::string db_path, std::chrono::seconds retention,
         RunningAggregate* running, KeyIndex* keys, const Clock* clock, uint64_t request_window);
  Status ImportAttached(uint64_t min_index);
  Result<std::vector<SubBatchOutcome>> ApplyRequest(const WriteRequest& request, int64_t now_us,
                                                    GroupResult& result);
  Status PrepareStatements();
  Status LoadKeys();
  Status LoadNewestIngest();
  Status LoadAppliedIndex();
  // The time a group is applied at: the latest ingest time its raft entries carry (so that
  // every replica decides key expiry alike), else the writer's clock.
  int64_t GroupTime(const std::vector<WriteRequest>& group) const;
  Status StoreAppliedIndex(uint64_t index);

  // Keys are forgotten (table and index) when older than the retention: every prune interval
  // (the retention, at most 60 s) and before a group that retries an expired key, so that its
  // new key row never collides with the old one.
  bool PruneDue(const std::vector<WriteRequest>& group, int64_t now_us) const;
  Status PruneExpiredKeys(int64_t now_us);

  Result<GroupResult> RunTransaction(std::vector<WriteRequest>& group, int64_t now_us);
  Result<GroupResult> AppendGroup(std::vector<WriteRequest>& group, int64_t now_us);
  Result<GroupResult> AppendAndFlush(std::vector<WriteRequest>& group, int64_t now_us);
  Result<SubBatchOutcome> ApplySubBatch(const SubBatch& batch, int64_t now_us,
                                        PendingKeys& new_keys);
  void AddCommittedRows(const std::vector<WriteRequest>& group, const GroupResult& result);
  void StageRows(const std::vector<StoredRow>& rows, int64_t now_us);
  void StageKey(std::string_view key, const KeyRecord& record);

  duck::ConnectionHandle conn_;
  std::string db_path_;
  int64_t retention_us_;
  const Clock* clock_;
  Clock::Monotonic::duration prune_interval_;
  Clock::Monotonic last_prune_;
  duck::PreparedHandle delete_expired_keys_;
  duck::PreparedHandle store_applied_index_;
  duck::PreparedHandle begin_;
  duck::PreparedHandle commit_;
  uint64_t applied_index_ = 0;  // committed
  // The newest ingest time committed (INT64_MIN: no row): every later row's is above it.
  int64_t newest_ingest_us_ = 0;
  // The transaction's rows and new keys, staged until it flushes them before COMMIT (so they
  // hold nothing between transactions), and cleared after a failure.
  std::optional<duck::StagedInsert> rows_insert_;  // set by PrepareStatements
  std::optional<duck::StagedInsert> keys_insert_;
  RunningAggregate* running_;
  KeyIndex& keys_;
  uint64_t request_window_;
  std::optional<RequestWindow> requests_;  // set by Create
};

}  // namespace das::worker
