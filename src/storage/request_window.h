// RequestWindow: the ids of a shard replica's recent raft entries and their outcomes, so that
// an internal retry (the control node sends a request again after an ambiguous failure, through
// the same or a new leader) is answered with the first outcome and never stored twice
// (docs/architecture.md). An id is remembered for the `window` entries that follow it: every
// replica applies the same log, so every replica decides alike. The ids are stored in the node
// store's table replica_requests (one row per entry, with the replica's id), in the transaction
// of their entry, so the window survives restarts.
//
// Thread-safety: the node store's applier thread owns it; FindCommitted() may be called from
// any thread.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <vector>

#include "common/mutex.h"
#include "common/status.h"
#include "storage/duckdb_util.h"
#include "storage/staged_insert.h"
#include "storage/store.h"

namespace das::storage {

class RequestWindow {
 public:
  // The applier's shared statements: the staged insert every replica's ids go into
  // (replica, request_id, raft_index, outcomes) and the prune (replica $1, raft_index <= $2).
  struct Sinks {
    duck::StagedInsert* insert = nullptr;
    duckdb_prepared_statement delete_old = nullptr;
  };
  // Loads the ids `replica` recorded in the last `window` entries up to `applied_index`.
  // `conn` (not owned) is the applier's connection; it and `sinks` outlive the window. The
  // newest id of a replica always stays in the table, so its highest raft_index is a durable
  // applied index in itself (storage/store_tables.h, ReadAppliedIndex).
  static Result<std::unique_ptr<RequestWindow>> Create(duckdb_connection conn, uint32_t replica,
                                                       uint64_t applied_index, uint64_t window,
                                                       Sinks sinks);

  // Forgets what it holds and loads the table again (after a copy replaced its contents).
  Status Reload(uint64_t applied_index);

  // The outcomes of the entry that carried `request_id`, if that entry is at most `window`
  // entries before `index` (committed, or recorded in the transaction running now). The
  // distance alone decides, never how far pruning got, so every replica decides alike.
  // On the applier thread only, the one that changes the committed ids: it reads them without
  // the lock, which the analysis cannot know.
  std::optional<std::vector<SubBatchOutcome>> Find(uint64_t request_id,
                                                   uint64_t index) const NO_THREAD_SAFETY_ANALYSIS;
  // The same over the committed ids only, from any thread.
  std::optional<std::vector<SubBatchOutcome>> FindCommitted(uint64_t request_id,
                                                            uint64_t index) const;

  // In the running transaction: remembers `request_id` (entry `index`) with its outcomes, and
  // forgets, now and then, ids that fell out of the window.
  Status Record(uint64_t request_id, uint64_t index, const std::vector<SubBatchOutcome>& outcomes);
  // After COMMIT: what Record() did becomes the window. On a failure, before ROLLBACK: it is
  // forgotten, with the rows staged for the failed transaction.
  void Committed();
  void RolledBack();

  size_t size() const;

 private:
  struct Entry {
    uint64_t index = 0;
    std::vector<SubBatchOutcome> outcomes;
  };
  RequestWindow(duckdb_connection conn, uint32_t replica, uint64_t window, Sinks sinks)
      : conn_(conn), replica_(replica), window_(window), sinks_(sinks) {}
  Status Load(uint64_t applied_index);
  Status Prune(uint64_t newest_index);

  duckdb_connection conn_;
  uint32_t replica_;
  uint64_t window_;
  Sinks sinks_;
  // The committed ids: changed by the applier thread under mu_, read by it without (Find).
  mutable Mutex mu_;
  std::unordered_map<uint64_t, Entry> by_id_ GUARDED_BY(mu_);
  std::deque<std::pair<uint64_t, uint64_t>> order_;  // (index, request id), oldest first
  std::unordered_map<uint64_t, Entry> pending_;      // recorded in the running transaction
  std::vector<std::pair<uint64_t, uint64_t>> pending_order_;
  uint64_t pruned_below_ = 0;    // committed: ids of entries at or below it left the table
  uint64_t pending_cutoff_ = 0;  // the running transaction's prune (>= pruned_below_)
};

}  // namespace das::storage
