#include "worker/writer.h"

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <optional>
#include <utility>

#include <spdlog/spdlog.h>

namespace das::worker {
namespace {

using Code = SubBatchOutcome::Code;

constexpr const char* kCreateRows =
    "CREATE TABLE IF NOT EXISTS rows (partition_key VARCHAR NOT NULL, value DOUBLE NOT NULL, "
    "ingest_ts TIMESTAMP NOT NULL)";
// Keys are VARCHAR: callers validate them as UTF-8.
constexpr const char* kCreateKeys =
    "CREATE TABLE IF NOT EXISTS idempotency_keys (key VARCHAR PRIMARY KEY, "
    "fingerprint UBIGINT NOT NULL, rows_written UBIGINT NOT NULL, "
    "committed_at TIMESTAMP NOT NULL)";
constexpr const char* kKeysTable = "idempotency_keys";
constexpr const char* kDeleteExpiredKeys = "DELETE FROM idempotency_keys WHERE committed_at < $1";
constexpr const char* kSelectKeys =
    "SELECT key, fingerprint, rows_written, committed_at FROM idempotency_keys";
constexpr std::chrono::seconds kMaxPruneInterval{60};
// NULL for an empty table.
constexpr const char* kSelectNewestIngest = "SELECT epoch_us(max(ingest_ts)) FROM rows";
// The raft index of the last entry applied, in the same transaction as the entry's rows, so
// that a replay after a restart skips what is already stored (DESIGN.md section 6).
constexpr const char* kCreateApplied =
    "CREATE TABLE IF NOT EXISTS raft_applied (id INTEGER PRIMARY KEY, applied_index UBIGINT "
    "NOT NULL)";
// The row exists from the start, so that storing an index is an UPDATE: an INSERT OR REPLACE
// (a MERGE in DuckDB 1.4) costs about 2 ms of CPU per transaction, several times the rest.
constexpr const char* kSeedApplied =
    "INSERT INTO raft_applied SELECT 1, 0 WHERE NOT EXISTS (SELECT 1 FROM raft_applied)";
constexpr const char* kStoreApplied = "UPDATE raft_applied SET applied_index = $1 WHERE id = 1";

// A copy of another replica's store (Store::ExportCopy), attached read-only while its tables
// replace this store's. The keys and the applied index go in with INSERT OR REPLACE: a key
// deleted and inserted again in one transaction trips DuckDB's unique index.
constexpr const char* kCopyAlias = "das_copy";
// Columns by name, never by position, so a copy made by another version of this layout cannot
// mix them up (store.cc's WriteCopy names the same ones).
constexpr const char* kImportCopy[] = {
    "DELETE FROM rows",
    "INSERT INTO rows (partition_key, value, ingest_ts) "
    "SELECT partition_key, value, ingest_ts FROM das_copy.rows",
    "DELETE FROM idempotency_keys WHERE key NOT IN (SELECT key FROM das_copy.idempotency_keys)",
    "INSERT OR REPLACE INTO idempotency_keys (key, fingerprint, rows_written, committed_at) "
    "SELECT key, fingerprint, rows_written, committed_at FROM das_copy.idempotency_keys",
    "DELETE FROM raft_requests",
    "INSERT INTO raft_requests (request_id, raft_index, outcomes) "
    "SELECT request_id, raft_index, outcomes FROM das_copy.raft_requests",
    "INSERT OR REPLACE INTO raft_applied (id, applied_index) "
    "SELECT id, applied_index FROM das_copy.raft_applied",
};

}  // namespace

Writer::Writer(duck::ConnectionHandle conn, std::string db_path, std::chrono::seconds retention,
               RunningAggregate* running, KeyIndex* keys, const Clock* clock,
               uint64_t request_window)
    : conn_(std::move(conn)),
      db_path_(std::move(db_path)),
      retention_us_(std::chrono::duration_cast<std::chrono::microseconds>(retention).count()),
      clock_(clock),
      prune_interval_(std::min<Clock::Monotonic::duration>(retention, kMaxPruneInterval)),
      last_prune_(clock->Now()),
      running_(running),
      keys_(*keys),
      request_window_(request_window) {}

Result<Writer> Writer::Create(duck::ConnectionHandle conn, std::string db_path,
                              std::chrono::seconds retention, RunningAggregate* running,
                              KeyIndex* keys, const Clock* clock, uint64_t request_window) {
  Writer writer(std::move(conn), std::move(db_path), retention, running, keys, clock,
                request_window);
  RETURN_IF_ERROR(duck::Exec(writer.conn_.get(), kCreateRows));
  RETURN_IF_ERROR(duck::Exec(writer.conn_.get(), kCreateKeys));
  RETURN_IF_ERROR(duck::Exec(writer.conn_.get(), kCreateApplied));
  RETURN_IF_ERROR(duck::Exec(writer.conn_.get(), kSeedApplied));
  RETURN_IF_ERROR(writer.PrepareStatements());
  RETURN_IF_ERROR(writer.LoadAppliedIndex());
  ASSIGN_OR_RETURN(
      RequestWindow requests,
      RequestWindow::Create(writer.conn_.get(), writer.applied_index_, request_window));
  writer.requests_.emplace(std::move(requests));
  RETURN_IF_ERROR(writer.PruneExpiredKeys(clock->WallMicros()));
  RETURN_IF_ERROR(writer.LoadKeys());
  RETURN_IF_ERROR(writer.LoadNewestIngest());
  RETURN_IF_ERROR(writer.SetOptimizer(false));
  spdlog::info("store {}: {} live idempotency keys loaded", writer.db_path_, writer.keys_.size());
  return writer;
}

Status Writer::SetOptimizer(bool on) {
  return duck::Exec(conn_.get(), on ? "PRAGMA enable_optimizer" : "PRAGMA disable_optimizer");
}

Status Writer::PrepareStatements() {
  ASSIGN_OR_RETURN(delete_expired_keys_, duck::Prepare(conn_.get(), kDeleteExpiredKeys));
  ASSIGN_OR_RETURN(store_applied_index_, duck::Prepare(conn_.get(), kStoreApplied));
  // Parsed once: parsing BEGIN and COMMIT anew costs a tenth of a small transaction.
  ASSIGN_OR_RETURN(begin_, duck::Prepare(conn_.get(), "BEGIN TRANSACTION"));
  ASSIGN_OR_RETURN(commit_, duck::Prepare(conn_.get(), "COMMIT"));
  ASSIGN_OR_RETURN(duck::StagedInsert rows,
                   duck::StagedInsert::Create(conn_.get(), "rows",
                                              {{"partition_key", duck::ColumnType::kVarchar},
                                               {"value", duck::ColumnType::kDouble},
                                               {"ingest_ts", duck::ColumnType::kTimestamp}}));
  rows_insert_.emplace(std::move(rows));
  ASSIGN_OR_RETURN(duck::StagedInsert keys,
                   duck::StagedInsert::Create(conn_.get(), kKeysTable,
                                              {{"key", duck::ColumnType::kVarchar},
                                               {"fingerprint", duck::ColumnType::kUBigInt},
                                               {"rows_written", duck::ColumnType::kUBigInt},
                                               {"committed_at", duck::ColumnType::kTimestamp}}));
  keys_insert_.emplace(std::move(keys));
  return Status::Ok();
}

Result<uint64_t> ReadAppliedIndex(duckdb_connection conn, const std::string& catalog) {
  const std::string sql = "SELECT greatest((SELECT coalesce(max(applied_index), 0) FROM " +
                          catalog + "raft_applied), (SELECT coalesce(max(raft_index), 0) FROM " +
                          catalog + "raft_requests))::UBIGINT";
  ASSIGN_OR_RETURN(duck::QueryResult result, duck::Query(conn, sql.c_str()));
  std::optional<duck::Chunk> chunk = result.NextChunk();
  return chunk && chunk->size() == 1 ? chunk->Data<uint64_t>(0)[0] : 0;
}

Status Writer::LoadAppliedIndex() {
  RETURN_IF_ERROR(RequestWindow::CreateTable(conn_.get()));
  ASSIGN_OR_RETURN(applied_index_, ReadAppliedIndex(conn_.get(), ""));
  return Status::Ok();
}

Status Writer::StoreAppliedIndex(uint64_t index) {
  if (duckdb_bind_uint64(store_applied_index_.get(), 1, index) == DuckDBError) {
    return duck::Error("bind the applied index", "invalid parameter");
  }
  ASSIGN_OR_RETURN(duck::QueryResult result,
                   duck::Execute(store_applied_index_.get(), "store the applied index"));
  return Status::Ok();
}

int64_t Writer::GroupTime(const std::vector<WriteRequest>& group) const {
  int64_t latest = 0;
  for (const WriteRequest& request : group) latest = std::max(latest, request.ingest_ts_us);
  return latest != 0 ? latest : clock_->WallMicros();
}

Status Writer::LoadNewestIngest() {
  ASSIGN_OR_RETURN(duck::QueryResult result, duck::Query(conn_.get(), kSelectNewestIngest));
  newest_ingest_us_ = std::numeric_limits<int64_t>::min();
  if (std::optional<duck::Chunk> chunk = result.NextChunk(); chunk && chunk->size() == 1) {
    newest_ingest_us_ = chunk->Get<int64_t>(0, 0).value_or(newest_ingest_us_);
  }
  running_->SetNewestIngest(newest_ingest_us_);
  return Status::Ok();
}

Status Writer::LoadKeys() {
  ASSIGN_OR_RETURN(duck::QueryResult result, duck::Query(conn_.get(), kSelectKeys));
  // Every column is NOT NULL, so the validity masks need no look.
  while (std::optional<duck::Chunk> chunk = result.NextChunk()) {
    const auto* fingerprints = chunk->Data<uint64_t>(1);
    const auto* rows_written = chunk->Data<uint64_t>(2);
    const auto* committed_at = chunk->Data<duckdb_timestamp>(3);
    for (size_t i = 0; i < chunk->size(); ++i) {
      keys_.Insert(std::string(chunk->String(0, i)),
                   KeyRecord{fingerprints[i], rows_written[i], committed_at[i].micros});
    }
  }
  return Status::Ok();
}

bool Writer::PruneDue(const std::vector<WriteRequest>& group, int64_t now_us) const {
  if (clock_->Now() - last_prune_ >= prune_interval_) return true;
  const int64_t cutoff_us = now_us - retention_us_;
  for (const WriteRequest& request : group) {
    for (const SubBatch& batch : request.batches) {
      if (batch.idempotency_key.empty()) continue;
      const KeyRecord* record = keys_.Find(batch.idempotency_key);
      if (record != nullptr && record->committed_at_us < cutoff_us) return true;
    }
  }
  return false;
}

Status Writer::PruneExpiredKeys(int64_t now_us) {
  const int64_t cutoff_us = now_us - retention_us_;
  last_prune_ = clock_->Now();
  if (duckdb_bind_timestamp(delete_expired_keys_.get(), 1, duck::Timestamp(cutoff_us)) ==
      DuckDBError) {
    return duck::Error("bind the expiry cutoff", "invalid parameter");
  }
  // Autocommitted on its own: the index forgets the keys only once the table has.
  ASSIGN_OR_RETURN(duck::QueryResult result,
                   duck::Execute(delete_expired_keys_.get(), "delete expired idempotency keys"));
  const size_t erased = keys_.EraseCommittedBefore(cutoff_us);
  if (erased > 0) spdlog::debug("store {}: forgot {} expired idempotency keys", db_path_, erased);
  return Status::Ok();
}

void Writer::Apply(std::vector<WriteRequest>& group) {
  const int64_t now_us = GroupTime(group);
  if (PruneDue(group, now_us)) {
    Status pruned = PruneExpiredKeys(now_us);
    if (!pruned.ok()) {
      spdlog::error("store {}: pruning idempotency keys failed: {}", db_path_, pruned.ToString());
    }
  }
  Result<GroupResult> result = RunTransaction(group, now_us);
  if (!result.ok()) {
    spdlog::error("store {}: write of {} requests rolled back: {}", db_path_, group.size(),
                  result.status().ToString());
    for (WriteRequest& request : group) request.done(result.status());
    return;
  }
  requests_->Committed();
  for (const auto& [key, record] : result->new_keys) keys_.Insert(std::string(key), record);
  applied_index_ = std::max(applied_index_, result->applied_index);
  newest_ingest_us_ = result->newest_ingest_us;
  running_->SetNewestIngest(newest_ingest_us_);
  AddCommittedRows(group, *result);  // before any acknowledgement
  running_->SetAppliedIndex(applied_index_);
  for (size_t i = 0; i < group.size(); ++i) group[i].done(std::move(result->outcomes[i]));
}

Status Writer::ImportCopy(const std::string& path, uint64_t min_index) {
  const std::string attach = "ATTACH " + duck::Quote(path) + " AS " + kCopyAlias + " (READ_ONLY)";
  // One a failed DETACH may have left behind would refuse every later attempt.
  RETURN_IF_ERROR(
      duck::Exec(conn_.get(), (std::string("DETACH DATABASE IF EXISTS ") + kCopyAlias).c_str()));
  RETURN_IF_ERROR(duck::Exec(conn_.get(), attach.c_str()));
  Status imported = ImportAttached(min_index);
  Status detached = duck::Exec(conn_.get(), (std::string("DETACH ") + kCopyAlias).c_str());
  RETURN_IF_ERROR(imported);
  return detached;
}

Status Writer::ImportAttached(uint64_t min_index) {
  ASSIGN_OR_RETURN(const uint64_t copy_index,
                   ReadAppliedIndex(conn_.get(), std::string(kCopyAlias) + "."));
  if (copy_index < min_index) {
    return Unavailable("the copy holds the entries up to " + std::to_string(copy_index) +
                       ", not up to " + std::to_string(min_index));
  }
  RETURN_IF_ERROR(duck::Exec(conn_.get(), "BEGIN TRANSACTION"));
  Status copied = Status::Ok();
  for (const char* sql : kImportCopy) {
    copied = duck::Exec(conn_.get(), sql);
    if (!copied.ok()) break;
  }
  if (copied.ok()) copied = duck::Exec(conn_.get(), "COMMIT");
  if (!copied.ok()) {
    Status rolled_back = duck::Exec(conn_.get(), "ROLLBACK");
    if (!rolled_back.ok()) spdlog::debug("store {}: {}", db_path_, rolled_back.ToString());
    return copied;
  }
  // The committed contents are the copy's: everything in memory follows them. Past COMMIT a
  // failure would leave memory and table apart; a restart loads them again, as at any open.
  applied_index_ = copy_index;
  keys_.Clear();
  Status reloaded = LoadKeys();
  if (reloaded.ok()) reloaded = LoadNewestIngest();
  if (reloaded.ok()) reloaded = requests_->Reload(applied_index_);
  if (!reloaded.ok()) {
    spdlog::critical("store {}: installed a copy but cannot reload it: {}; stopping", db_path_,
                     reloaded.ToString());
    std::abort();
  }
  spdlog::info("store {}: installed a copy at applied index {} ({} idempotency keys)", db_path_,
               applied_index_, keys_.size());
  return Status::Ok();
}

void Writer::AddCommittedRows(const std::vector<WriteRequest>& group, const GroupResult& result) {
  for (size_t i = 0; i < group.size(); ++i) {
    if (result.repeated[i]) continue;
    for (size_t b = 0; b < result.outcomes[i].size(); ++b) {  // none for a skipped replay
      const SubBatch& batch = group[i].batches[b];
      if (result.outcomes[i][b].code == Code::kOk && !batch.check_only) running_->Add(batch.rows);
    }
  }
}

Result<Writer::GroupResult> Writer::RunTransaction(std::vector<WriteRequest>& group,
                                                   int64_t now_us) {
  { ASSIGN_OR_RETURN(duck::QueryResult begun, duck::Execute(begin_.get(), "BEGIN")); }
  Result<GroupResult> result = AppendAndFlush(group, now_us);
  if (result.ok()) {
    Result<duck::QueryResult> commit = duck::Execute(commit_.get(), "COMMIT");
    Status committed = commit.ok() ? Status::Ok() : std::move(commit).status();
    if (committed.ok()) return result;
    result = std::move(committed);
    requests_->RolledBack();
  }
  // Also after a failed COMMIT: DuckDB may keep the failed transaction open until ROLLBACK.
  Status rolled_back = duck::Exec(conn_.get(), "ROLLBACK");
  if (!rolled_back.ok()) spdlog::debug("store {}: {}", db_path_, rolled_back.ToString());
  return result;
}

Result<Writer::GroupResult> Writer::AppendAndFlush(std::vector<WriteRequest>& group,
                                                   int64_t now_us) {
  Result<GroupResult> result = AppendGroup(group, now_us);
  if (result.ok()) {
    Status flushed = rows_insert_->Flush();
    if (flushed.ok()) flushed = keys_insert_->Flush();
    if (flushed.ok()) flushed = requests_->Flush();
    if (flushed.ok()) return result;
    result = std::move(flushed);
  }
  rows_insert_->Clear();
  keys_insert_->Clear();
  requests_->RolledBack();
  return result;
}

Result<Writer::GroupResult> Writer::AppendGroup(std::vector<WriteRequest>& group, int64_t now_us) {
  GroupResult result;
  result.newest_ingest_us = newest_ingest_us_;
  result.outcomes.reserve(group.size());
  result.repeated.assign(group.size(), false);
  for (size_t i = 0; i < group.size(); ++i) {
    const WriteRequest& request = group[i];
    std::vector<SubBatchOutcome>& outcomes = result.outcomes.emplace_back();
    // A raft entry this store already committed (a replay after a restart, or an entry a copy
    // brought): nothing to store. Its outcomes, when the window has them, are for a proposer
    // that may wait for it (a leader whose entry arrived in a copy); else none (nobody waits).
    if (request.raft_index != 0 && request.raft_index <= applied_index_) {
      result.repeated[i] = true;
      if (request.request_id == 0) continue;
      if (std::optional<std::vector<SubBatchOutcome>> first =
              requests_->Find(request.request_id, request.raft_index)) {
        outcomes = std::move(*first);
      }
      continue;
    }
    if (request.request_id != 0) {
      if (std::optional<std::vector<SubBatchOutcome>> first =
              requests_->Find(request.request_id, request.raft_index)) {
        // An internal retry of an entry already applied: its first outcome, nothing stored.
        outcomes = std::move(*first);
        result.repeated[i] = true;
        result.applied_index = std::max(result.applied_index, request.raft_index);
        continue;
      }
    }
    ASSIGN_OR_RETURN(outcomes, ApplyRequest(request, now_us, result));
  }
  // The newest request id recorded is a durable applied index already (LoadAppliedIndex).
  if (result.applied_index > applied_index_ && result.applied_index > result.recorded_index) {
    RETURN_IF_ERROR(StoreAppliedIndex(result.applied_index));
  }
  return result;
}

Result<std::vector<SubBatchOutcome>> Writer::ApplyRequest(const WriteRequest& request,
                                                          int64_t now_us, GroupResult& result) {
  // Later than every row stored before (see ReplicatedEntry): a function of the entries and
  // the stored rows only, so every replica raises it alike.
  const int64_t proposed = request.ingest_ts_us != 0 ? request.ingest_ts_us : now_us;
  const int64_t ingest_us = std::max(proposed, result.newest_ingest_us + 1);
  std::vector<SubBatchOutcome> outcomes;
  outcomes.reserve(request.batches.size());
  for (const SubBatch& batch : request.batches) {
    ASSIGN_OR_RETURN(SubBatchOutcome outcome, ApplySubBatch(batch, ingest_us, result.new_keys));
    if (outcome.code == Code::kOk && outcome.rows_written > 0) result.newest_ingest_us = ingest_us;
    outcomes.push_back(outcome);
  }
  result.applied_index = std::max(result.applied_index, request.raft_index);
  if (request.request_id != 0) {
    RETURN_IF_ERROR(requests_->Record(request.request_id, request.raft_index, outcomes));
    result.recorded_index = std::max(result.recorded_index, request.raft_index);
  }
  return outcomes;
}

Result<SubBatchOutcome> Writer::ApplySubBatch(const SubBatch& batch, int64_t now_us,
                                              PendingKeys& new_keys) {
  const uint64_t rows = batch.rows.size();
  if (batch.idempotency_key.empty()) {
    if (batch.check_only) return SubBatchOutcome{Code::kOk, 0};
    StageRows(batch.rows, now_us);
    return SubBatchOutcome{Code::kOk, rows};
  }
  const KeyRecord* earlier = keys_.Find(batch.idempotency_key);
  if (earlier == nullptr) {
    auto it = new_keys.find(batch.idempotency_key);
    if (it != new_keys.end()) earlier = &it->second;
  }
  if (earlier != nullptr) {
    if (earlier->fingerprint != batch.fingerprint) return SubBatchOutcome{Code::kKeyConflict, 0};
    return SubBatchOutcome{Code::kDuplicate, earlier->rows_written};
  }
  if (batch.check_only) return SubBatchOutcome{Code::kOk, 0};
  const KeyRecord record{batch.fingerprint, rows, now_us};
  StageRows(batch.rows, now_us);
  StageKey(batch.idempotency_key, record);
  new_keys.emplace(batch.idempotency_key, record);
  return SubBatchOutcome{Code::kOk, rows};
}

void Writer::StageRows(const std::vector<StoredRow>& rows, int64_t now_us) {
  for (const StoredRow& row : rows) {
    rows_insert_->Add(row.partition_key);
    rows_insert_->Add(row.value);
    rows_insert_->AddTimestamp(now_us);
    rows_insert_->EndRow();
  }
}

void Writer::StageKey(std::string_view key, const KeyRecord& record) {
  keys_insert_->Add(key);
  keys_insert_->Add(record.fingerprint);
  keys_insert_->Add(record.rows_written);
  keys_insert_->AddTimestamp(record.committed_at_us);
  keys_insert_->EndRow();
}

}  // namespace das::worker
