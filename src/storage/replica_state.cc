#include "storage/replica_state.h"

#include <algorithm>
#include <limits>
#include <utility>

#include <spdlog/spdlog.h>

#include "storage/store_tables.h"

namespace das::storage {
namespace {

using Code = SubBatchOutcome::Code;

constexpr std::chrono::seconds kMaxPruneInterval{60};

Status Bind(bool ok, std::string_view what) {
  return ok ? Status::Ok() : duck::Error(what, "invalid parameter");
}

}  // namespace

ReplicaState::ReplicaState(duckdb_connection conn, ReplicaConfig config, const ApplierSinks& sinks,
                           RunningAggregate* running, KeyIndex* keys)
    : conn_(conn),
      config_(config),
      sinks_(sinks),
      retention_us_(
          std::chrono::duration_cast<std::chrono::microseconds>(config.retention).count()),
      prune_interval_(std::min<Clock::Monotonic::duration>(config.retention, kMaxPruneInterval)),
      last_prune_(config.clock->Now()),
      running_(running),
      keys_(*keys) {}

Result<std::unique_ptr<ReplicaState>> ReplicaState::Load(duckdb_connection conn,
                                                         ReplicaConfig config,
                                                         const ApplierSinks& sinks,
                                                         RunningAggregate* running,
                                                         KeyIndex* keys) {
  std::unique_ptr<ReplicaState> state(new ReplicaState(conn, config, sinks, running, keys));
  RETURN_IF_ERROR(Bind(duckdb_bind_uint32(sinks.seed_applied, 1, config.replica) == DuckDBSuccess,
                       "bind the replica"));
  { ASSIGN_OR_RETURN(duck::QueryResult seeded, duck::Execute(sinks.seed_applied, "seed")); }
  RETURN_IF_ERROR(state->LoadAll());
  // Keys expire by the cluster's time their entries carried: this node's clock, which may run
  // ahead, prunes no further than the newest ingest time stored.
  if (state->newest_ingest_us_ != std::numeric_limits<int64_t>::min()) {
    RETURN_IF_ERROR(
        state->PruneExpiredKeys(std::min(config.clock->WallMicros(), state->newest_ingest_us_)));
  }
  return state;
}

Status ReplicaState::LoadAll() {
  ASSIGN_OR_RETURN(applied_index_, ReadAppliedIndex(conn_, config_.replica));
  if (requests_) {
    // Reloaded in place: other threads may look committed ids up meanwhile.
    RETURN_IF_ERROR(requests_->Reload(applied_index_));
  } else {
    ASSIGN_OR_RETURN(requests_, RequestWindow::Create(
                                    conn_, config_.replica, applied_index_, config_.request_window,
                                    {sinks_.requests, sinks_.delete_old_requests}));
  }
  keys_.Clear();
  RETURN_IF_ERROR(LoadKeys());
  RETURN_IF_ERROR(LoadNewestIngest());
  ASSIGN_OR_RETURN(Aggregate initial, ScanReplica(conn_, config_.replica));
  initial.applied_index = applied_index_;
  running_->Reset(initial);
  return Status::Ok();
}

Status ReplicaState::Reload() {
  RETURN_IF_ERROR(LoadAll());
  spdlog::info("replica {}: loaded at applied index {} ({} idempotency keys)", config_.replica,
               applied_index_, keys_.size());
  return Status::Ok();
}

Status ReplicaState::LoadNewestIngest() {
  const std::string sql = "SELECT epoch_us(max(ingest_ts)) FROM " + RowsTable(config_.replica);
  ASSIGN_OR_RETURN(duck::QueryResult result, duck::Query(conn_, sql.c_str()));
  newest_ingest_us_ = std::numeric_limits<int64_t>::min();
  if (std::optional<duck::Chunk> chunk = result.NextChunk(); chunk && chunk->size() == 1) {
    newest_ingest_us_ = chunk->Get<int64_t>(0, 0).value_or(newest_ingest_us_);
  }
  running_->SetNewestIngest(newest_ingest_us_);
  return Status::Ok();
}

Status ReplicaState::LoadKeys() {
  const std::string sql =
      "SELECT key, fingerprint, rows_written, committed_at FROM replica_keys WHERE replica = " +
      std::to_string(config_.replica);
  ASSIGN_OR_RETURN(duck::QueryResult result, duck::Query(conn_, sql.c_str()));
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

Status ReplicaState::StoreAppliedIndex(uint64_t index) {
  RETURN_IF_ERROR(
      Bind(duckdb_bind_uint32(sinks_.store_applied, 1, config_.replica) == DuckDBSuccess &&
               duckdb_bind_uint64(sinks_.store_applied, 2, index) == DuckDBSuccess,
           "bind the applied index"));
  ASSIGN_OR_RETURN(duck::QueryResult result,
                   duck::Execute(sinks_.store_applied, "store the applied index"));
  return Status::Ok();
}

int64_t ReplicaState::GroupTime(const std::vector<WriteRequest>& group) const {
  int64_t latest = 0;
  for (const WriteRequest& request : group) latest = std::max(latest, request.ingest_ts_us);
  return latest != 0 ? latest : config_.clock->WallMicros();
}

bool ReplicaState::PruneDue(const std::vector<WriteRequest>& group, int64_t now_us) const {
  if (config_.clock->Now() - last_prune_ >= prune_interval_) return true;
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

void ReplicaState::PruneIfDue(const std::vector<WriteRequest>& group) {
  const int64_t now_us = GroupTime(group);
  if (!PruneDue(group, now_us)) return;
  if (Status pruned = PruneExpiredKeys(now_us); !pruned.ok()) {
    spdlog::error("replica {}: pruning idempotency keys failed: {}", config_.replica,
                  pruned.ToString());
  }
}

Status ReplicaState::PruneExpiredKeys(int64_t now_us) {
  const int64_t cutoff_us = now_us - retention_us_;
  last_prune_ = config_.clock->Now();
  RETURN_IF_ERROR(
      Bind(duckdb_bind_uint32(sinks_.delete_expired_keys, 1, config_.replica) == DuckDBSuccess &&
               duckdb_bind_timestamp(sinks_.delete_expired_keys, 2, duck::Timestamp(cutoff_us)) ==
                   DuckDBSuccess,
           "bind the expiry cutoff"));
  // Autocommitted on its own: the index forgets the keys only once the table has.
  ASSIGN_OR_RETURN(duck::QueryResult result,
                   duck::Execute(sinks_.delete_expired_keys, "delete expired idempotency keys"));
  const size_t erased = keys_.EraseCommittedBefore(cutoff_us);
  if (erased > 0) {
    spdlog::debug("replica {}: forgot {} expired idempotency keys", config_.replica, erased);
  }
  return Status::Ok();
}

void ReplicaState::Committed(std::vector<WriteRequest>& group, Staged& staged) {
  requests_->Committed();
  for (const auto& [key, record] : staged.new_keys) keys_.Insert(std::string(key), record);
  applied_index_ = std::max(applied_index_, staged.applied_index);
  newest_ingest_us_ = staged.newest_ingest_us;
  running_->SetNewestIngest(newest_ingest_us_);
  AddCommittedRows(group, staged);  // before any acknowledgement
  running_->SetAppliedIndex(applied_index_);
  for (size_t i = 0; i < group.size(); ++i) group[i].done(std::move(staged.outcomes[i]));
}

void ReplicaState::RolledBack() { requests_->RolledBack(); }

void ReplicaState::AddCommittedRows(const std::vector<WriteRequest>& group, const Staged& staged) {
  for (size_t i = 0; i < group.size(); ++i) {
    if (staged.repeated[i]) continue;
    for (size_t b = 0; b < staged.outcomes[i].size(); ++b) {  // none for a skipped replay
      const SubBatch& batch = group[i].batches[b];
      if (staged.outcomes[i][b].code == Code::kOk && !batch.check_only) running_->Add(batch.rows);
    }
  }
}

Result<ReplicaState::Staged> ReplicaState::Stage(const std::vector<WriteRequest>& group) {
  const int64_t now_us = GroupTime(group);
  Staged staged;
  staged.newest_ingest_us = newest_ingest_us_;
  staged.outcomes.reserve(group.size());
  staged.repeated.assign(group.size(), false);
  for (size_t i = 0; i < group.size(); ++i) {
    const WriteRequest& request = group[i];
    std::vector<SubBatchOutcome>& outcomes = staged.outcomes.emplace_back();
    // A raft entry already committed here (a replay after a restart, or an entry a copy
    // brought): nothing to store. Its outcomes, when the window has them, are for a proposer
    // that may wait for it (a leader whose entry arrived in a copy); else none (nobody waits).
    if (request.raft_index != 0 && request.raft_index <= applied_index_) {
      staged.repeated[i] = true;
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
        staged.repeated[i] = true;
        staged.applied_index = std::max(staged.applied_index, request.raft_index);
        continue;
      }
    }
    ASSIGN_OR_RETURN(outcomes, StageRequest(request, now_us, staged));
  }
  // The newest request id recorded is a durable applied index already (ReadAppliedIndex).
  if (staged.applied_index > applied_index_ && staged.applied_index > staged.recorded_index) {
    RETURN_IF_ERROR(StoreAppliedIndex(staged.applied_index));
  }
  return staged;
}

Result<std::vector<SubBatchOutcome>> ReplicaState::StageRequest(const WriteRequest& request,
                                                                int64_t now_us, Staged& staged) {
  // Later than every row stored before (see ReplicatedEntry): a function of the entries and
  // the stored rows only, so every replica raises it alike.
  const int64_t proposed = request.ingest_ts_us != 0 ? request.ingest_ts_us : now_us;
  const int64_t ingest_us = std::max(proposed, staged.newest_ingest_us + 1);
  if (request.decided && request.decided->size() != request.batches.size()) {
    return Internal("entry " + std::to_string(request.raft_index) + " carries " +
                    std::to_string(request.decided->size()) + " decided outcomes for " +
                    std::to_string(request.batches.size()) + " sub-batches");
  }
  std::vector<SubBatchOutcome> outcomes;
  outcomes.reserve(request.batches.size());
  for (size_t b = 0; b < request.batches.size(); ++b) {
    const SubBatch& batch = request.batches[b];
    SubBatchOutcome outcome;
    if (request.decided) {
      outcome = (*request.decided)[b];
      StageDecided(batch, outcome, ingest_us, staged);
    } else {
      ASSIGN_OR_RETURN(outcome, StageSubBatch(batch, ingest_us, staged));
    }
    outcomes.push_back(outcome);
  }
  staged.applied_index = std::max(staged.applied_index, request.raft_index);
  if (request.request_id != 0) {
    RETURN_IF_ERROR(requests_->Record(request.request_id, request.raft_index, outcomes));
    staged.recorded_index = std::max(staged.recorded_index, request.raft_index);
  }
  return outcomes;
}

void ReplicaState::StageDecided(const SubBatch& batch, const SubBatchOutcome& outcome,
                                int64_t ingest_us, Staged& staged) {
  if (outcome.code != Code::kOk || batch.check_only) return;  // nothing to store
  StageRows(batch, ingest_us, staged);
  if (batch.idempotency_key.empty()) return;
  const KeyRecord record{batch.fingerprint, batch.rows.size(), ingest_us};
  StageKey(batch.idempotency_key, record);
  staged.new_keys.insert_or_assign(batch.idempotency_key, record);
}

std::optional<std::vector<SubBatchOutcome>> ReplicaState::FindCommittedRequest(
    uint64_t request_id, uint64_t index) const {
  return requests_->FindCommitted(request_id, index);
}

Result<SubBatchOutcome> ReplicaState::StageSubBatch(const SubBatch& batch, int64_t ingest_us,
                                                    Staged& staged) {
  const uint64_t rows = batch.rows.size();
  if (batch.idempotency_key.empty()) {
    if (batch.check_only) return SubBatchOutcome{Code::kOk, 0};
    StageRows(batch, ingest_us, staged);
    return SubBatchOutcome{Code::kOk, rows};
  }
  const KeyRecord* earlier = keys_.Find(batch.idempotency_key);
  if (earlier == nullptr) {
    auto it = staged.new_keys.find(batch.idempotency_key);
    if (it != staged.new_keys.end()) earlier = &it->second;
  }
  if (earlier != nullptr) {
    if (earlier->fingerprint != batch.fingerprint) return SubBatchOutcome{Code::kKeyConflict, 0};
    return SubBatchOutcome{Code::kDuplicate, earlier->rows_written};
  }
  if (batch.check_only) return SubBatchOutcome{Code::kOk, 0};
  const KeyRecord record{batch.fingerprint, rows, ingest_us};
  StageRows(batch, ingest_us, staged);
  StageKey(batch.idempotency_key, record);
  staged.new_keys.emplace(batch.idempotency_key, record);
  return SubBatchOutcome{Code::kOk, rows};
}

void ReplicaState::StageRows(const SubBatch& batch, int64_t ingest_us, Staged& staged) {
  const bool own_times = batch.row_ingest_us.size() == batch.rows.size();
  int64_t& newest = staged.newest_ingest_us;
  for (size_t r = 0; r < batch.rows.size(); ++r) {
    const int64_t at = own_times ? batch.row_ingest_us[r] : ingest_us;
    newest = std::max(newest, at);
    sinks_.rows->Add(batch.rows[r].partition_key);
    sinks_.rows->Add(batch.rows[r].value);
    sinks_.rows->AddTimestamp(at);
    sinks_.rows->EndRow();
  }
}

void ReplicaState::StageKey(std::string_view key, const KeyRecord& record) {
  sinks_.keys->Add(static_cast<uint64_t>(config_.replica));
  sinks_.keys->Add(key);
  sinks_.keys->Add(record.fingerprint);
  sinks_.keys->Add(record.rows_written);
  sinks_.keys->AddTimestamp(record.committed_at_us);
  sinks_.keys->EndRow();
}

}  // namespace das::storage
