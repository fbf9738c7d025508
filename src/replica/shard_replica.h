// ShardReplica: a shard's replicated state machine on this worker. It is the raft::StateMachine
// of the shard's group: each committed entry (a das.internal.v1.RaftEntry) is decided on the
// raft loop in the order of the log (replica/entry_decider.h: request ids, idempotency keys) and
// goes to the store's Apply with its outcomes (queued off the raft loop thread, many entries
// per DuckDB transaction, the applied index in the same transaction). Propose() turns a write
// into an entry with the leader's ingest time and a request id, and answers with that entry's
// outcomes once the entry is committed, keyed or not (the log is the durable point); only
// while a copy is being installed does the store decide, and the proposer wait for it.
//
// Thread-safety: Propose from any thread; Apply/Snapshot/Restore on the raft loop thread;
// callbacks on the store's writer thread (or, for a refused proposal, on the loop thread).
// Lifecycle: create, open the raft::Group with it, Attach() the group. To stop: close the
// group (no more Apply), then stop the store (it runs the callbacks of what Apply queued, which
// use the replica), then destroy the replica. A committed entry the store fails to apply stops
// the process (a restart replays it): a replica never skips one.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/mutex.h"
#include "raft/group.h"
#include "replica/entry_decider.h"
#include "storage/store.h"

namespace das::internal::v1 {
class SubBatch;
}

namespace das::replica {

// Fetches a copy of the shard's store at an applied index of at least `min_index` from another
// data replica, into a local file whose path it returns (Store::ReplaceFromCopy's CopyFetch).
using CopySource =
    std::function<Result<std::string>(uint64_t min_index, const std::atomic<bool>& stopping)>;

class ShardReplica final : public raft::StateMachine {
 public:
  // `store` and `clock` (not owned) outlive the replica. Without `copies` a replica behind a
  // snapshot cannot catch up (Restore fails).
  ShardReplica(uint64_t shard_id, storage::Store& store, CopySource copies = nullptr,
               const Clock& clock = Clock::Real());
  ShardReplica(const ShardReplica&) = delete;
  ShardReplica& operator=(const ShardReplica&) = delete;

  // REQUIRES: before Propose; `group` replicates this replica's shard and outlives its use.
  void Attach(raft::Group* group) { group_ = group; }

  // Proposes `batches` as one entry named `request_id` (0: a random id); `done` gets one
  // outcome per sub-batch once the entry is committed (no idempotency key) or once this replica
  // applied it (keyed parts), or kNotLeader (detail: the
  // leader's raft address) / kUnavailable when the entry was not committed through this leader
  // (it may still be later). A retry with the same request id within the store's request
  // window is answered with the first entry's outcomes and stores nothing again.
  // `ingest_us`: the cluster's time the control node sent (WriteRequest.ingest_time_us), the
  // entry's ingest time; 0: this node's wall clock.
  // `batches` are encoded into the entry as they are (no conversion), during the call only.
  void Propose(uint64_t request_id, int64_t ingest_us,
               const std::vector<const internal::v1::SubBatch*>& batches,
               storage::WriteCallback done);

  // A linearizable read of the shard's aggregate: `done` once this replica confirmed it leads
  // (one raft barrier shared by the reads waiting at that moment) and its store applied every
  // entry committed before that barrier, or with why not (kNotLeader with the leader's raft
  // address, kUnavailable). Callbacks run on the store's writer thread or the loop thread.
  void Read(storage::AggregateCallback done);
  // The same linearizable read point for any read: `ready` gets OK once it is reached (then it
  // may read the store: it runs while the replica exists, and what it submits to the store
  // before it returns is answered even if the replica closes next), or why not, as for Read.
  void ReadPoint(storage::StatusCallback ready);
  // Before the group is closed: no barrier is started any more, and reads arriving from now on
  // fail with kShuttingDown.
  void BeginClose();
  // Fails the reads still waiting with kShuttingDown. REQUIRES: the group is closed.
  void CancelReads();

  // raft::StateMachine, on the loop thread.
  void Apply(uint64_t index, std::string_view entry) override;
  // The manifest of the last entry handed to the store, at once; fails (raft retries after the
  // next entry) while the store lags further than the log will keep, or installs a copy.
  Result<std::string> Snapshot(uint64_t index, uint64_t kept_from) override;
  // A manifest whose entries were handed to the store (or that it holds) restores nothing;
  // else the store is replaced by a copy of another data replica's (fetched off the loop
  // thread, on the store's writer, before any later entry is applied there: reads and keyed
  // writes wait for it).
  Status Restore(std::string_view snapshot) override;
  // At start: an entry the log kept up to its snapshot is applied like any other (the store
  // skips what it holds), unless the log does not reach back to the store's applied index.
  void Replay(uint64_t log_start, uint64_t index, std::string_view entry) override;

  // How many copies this replica installed since it started.
  uint64_t copies_installed() const { return copies_installed_.load(std::memory_order_relaxed); }
  // The applied index of the last manifest Snapshot() returned (0: none since the start).
  uint64_t snapshot_index() const { return snapshot_index_.load(std::memory_order_relaxed); }
  // A copy is being fetched or installed.
  bool restoring() const { return restoring_.load(std::memory_order_acquire) > 0; }

 private:
  // Completes the proposer of `request_id`, if it is waiting here (only on the proposing
  // leader, never for a replay).
  void Complete(uint64_t request_id, Result<std::vector<storage::SubBatchOutcome>> outcome);
  // On the loop thread: one barrier for `reads`, then the next batch of reads, if any.
  void StartBarrier(std::vector<storage::StatusCallback> reads);
  // Answers `reads` once the store applied `target` (now, or from ReleaseReads).
  void ReadWhenApplied(uint64_t target, std::vector<storage::StatusCallback> reads);
  // After the store applied an entry: answers the reads waiting for it.
  void ReleaseReads();

  const uint64_t shard_id_;
  storage::Store& store_;
  const CopySource copies_;
  const Clock& clock_;
  raft::Group* group_ = nullptr;
  std::atomic<int> restoring_{0};  // copies being fetched or installed
  std::atomic<uint64_t> copies_installed_{0};
  std::atomic<uint64_t> snapshot_index_{0};
  std::atomic<uint64_t> next_request_id_;
  std::atomic<uint64_t> last_seen_index_{0};  // the last entry handed to the store
  EntryDecider decider_;
  // The last entry handed to the store undecided (a copy was being installed): entries are
  // decided here again once the store applied it. Loop thread only.
  uint64_t undecided_through_ = 0;

  Mutex mu_;
  // Proposers by request id (a retry on the same leader may wait beside the first).
  std::unordered_multimap<uint64_t, storage::WriteCallback> waiting_ GUARDED_BY(mu_);
  std::vector<storage::StatusCallback> next_reads_ GUARDED_BY(mu_);  // for the next barrier
  bool barrier_running_ GUARDED_BY(mu_) = false;
  bool closing_ GUARDED_BY(mu_) = false;
  // Reads whose barrier passed, by the store index they wait for.
  std::multimap<uint64_t, storage::StatusCallback> applied_waiters_ GUARDED_BY(mu_);
};

}  // namespace das::replica
