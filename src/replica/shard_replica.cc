#include "replica/shard_replica.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <optional>
#include <random>
#include <utility>

#include <spdlog/spdlog.h>

#include "das/v1/internal.pb.h"
#include "rpc/arena.h"
#include "rpc/borrowed.h"
#include "rpc/snapshot_manifest.h"

namespace das::replica {
namespace {

// Request ids are random 64-bit numbers: unique across leaders and restarts in practice, so a
// late or replayed entry never completes another proposer.
uint64_t RandomSeed() {
  std::random_device device;
  return (static_cast<uint64_t>(device()) << 32) ^ device() ^
         static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
}

// The raft entry of a write: its sub-batches encoded as they came, borrowed, not copied.
std::string Encode(uint64_t request_id, int64_t ingest_us,
                   const std::vector<const internal::v1::SubBatch*>& batches) {
  internal::v1::RaftEntry entry;
  rpc::Borrowed<internal::v1::SubBatch> borrowed(*entry.mutable_batches());
  entry.set_request_id(request_id);
  entry.set_ingest_ts_us(ingest_us);
  for (const internal::v1::SubBatch* batch : batches) borrowed.Add(*batch);
  return entry.SerializeAsString();
}

std::vector<storage::SubBatch> Decode(internal::v1::RaftEntry& entry) {
  std::vector<storage::SubBatch> batches;
  batches.reserve(entry.batches_size());
  for (internal::v1::SubBatch& in : *entry.mutable_batches()) {
    storage::SubBatch batch;
    batch.rows.reserve(in.rows_size());
    for (internal::v1::RowWire& row : *in.mutable_rows()) {
      batch.rows.push_back(
          storage::StoredRow{std::move(*row.mutable_partition_key()), row.value()});
    }
    batch.idempotency_key = std::move(*in.mutable_idempotency_key());
    batch.fingerprint = in.batch_fingerprint();
    batch.check_only = in.check_only();
    batch.row_ingest_us.assign(in.row_ingest_us().begin(), in.row_ingest_us().end());
    batches.push_back(std::move(batch));
  }
  return batches;
}

}  // namespace

ShardReplica::ShardReplica(uint64_t shard_id, storage::Store& store, CopySource copies,
                           const Clock& clock)
    : shard_id_(shard_id),
      store_(store),
      copies_(std::move(copies)),
      clock_(clock),
      next_request_id_(RandomSeed()),
      decider_(store) {}

void ShardReplica::Propose(uint64_t request_id, int64_t ingest_us,
                           const std::vector<const internal::v1::SubBatch*>& batches,
                           storage::WriteCallback done) {
  if (request_id == 0) request_id = next_request_id_.fetch_add(1, std::memory_order_relaxed);
  {
    MutexLock lock(mu_);
    waiting_.emplace(request_id, std::move(done));
  }
  std::string entry = Encode(request_id, ingest_us != 0 ? ingest_us : clock_.WallMicros(), batches);
  group_->Propose(std::move(entry), [this, request_id](Result<uint64_t> index) {
    // Committed: the outcome comes from Apply's store callback (it may already have come).
    if (!index.ok()) Complete(request_id, std::move(index).status());
  });
}

void ShardReplica::Apply(uint64_t index, std::string_view bytes) {
  // Decoded once, on an arena freed whole when the rows went to the store.
  google::protobuf::Arena arena(rpc::DecodeArena(bytes.size()));
  auto& entry = *google::protobuf::Arena::CreateMessage<internal::v1::RaftEntry>(&arena);
  if (!entry.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    // Every replica refuses it alike, so they stay equal; nobody proposes such an entry.
    spdlog::error("shard {}: raft entry {} does not decode; skipped", shard_id_, index);
    return;
  }
  const uint64_t request_id = entry.request_id();
  last_seen_index_.store(index, std::memory_order_release);
  storage::ReplicatedEntry replicated{index, entry.ingest_ts_us(), Decode(entry), request_id};
  // Decided here, in the order of the log, and answered now: the entry is on a majority's log,
  // a restart applies it again from there, and a read waits until the store applied it. Not
  // while the store has entries to apply that this replica could not decide (a copy being
  // installed, and what was handed meanwhile): the store decides those from what it holds, and
  // their proposers wait for it. An entry the store holds already (a replay after a restart, or
  // one a copy brought) is answered by the store from its request window.
  const uint64_t applied = store_.applied_index();
  const bool replay = index <= applied;
  const bool decide =
      !replay && restoring_.load(std::memory_order_acquire) == 0 && applied >= undecided_through_;
  if (decide) {
    replicated.decided =
        decider_.Decide(index, request_id, replicated.ingest_ts_us, replicated.batches);
    Complete(request_id, *replicated.decided);
  } else if (!replay) {
    undecided_through_ = index;
  }
  store_.Apply(std::move(replicated), [this, index, request_id](
                                          Result<std::vector<storage::SubBatchOutcome>> r) {
    if (!r.ok() && r.status().code() != StatusCode::kShuttingDown) {
      // libraft counts the entry applied; skipping it would leave this replica without it for
      // good. A restart replays it from the log (the store's applied index did not move).
      spdlog::critical("shard {}: committed entry {} could not be applied: {}; stopping", shard_id_,
                       index, r.status().ToString());
      std::abort();
    }
    if (r.ok()) decider_.Committed(index);
    Complete(request_id, std::move(r));  // answered already when decided here
    ReleaseReads();
  });
  if (!decide) {
    bool waited = false;
    {
      MutexLock lock(mu_);
      waited = waiting_.count(request_id) > 0;
    }
    if (waited) store_.Expedite(index);  // its proposer waits for the store: no batching delay
  }
}

void ShardReplica::Complete(uint64_t request_id,
                            Result<std::vector<storage::SubBatchOutcome>> outcome) {
  std::vector<storage::WriteCallback> done;
  {
    MutexLock lock(mu_);
    auto [first, last] = waiting_.equal_range(request_id);
    // None: a follower, a replay, or answered already.
    for (auto it = first; it != last; ++it) done.push_back(std::move(it->second));
    waiting_.erase(first, last);
  }
  for (storage::WriteCallback& callback : done) callback(outcome);
}

void ShardReplica::Read(storage::AggregateCallback done) {
  ReadPoint([this, done = std::move(done)](Status ready) {
    if (!ready.ok()) return done(std::move(ready));
    store_.ComputeAggregate(done);
  });
}

void ShardReplica::ReadPoint(storage::StatusCallback ready) {
  std::vector<storage::StatusCallback> batch;
  bool closing = false;
  {
    MutexLock lock(mu_);
    closing = closing_;
    if (closing) {
      batch.push_back(std::move(ready));
    } else {
      next_reads_.push_back(std::move(ready));
      // A read that arrives while a barrier runs waits for the next one: only a barrier begun
      // after the read arrived vouches for every write acknowledged before it.
      if (barrier_running_) return;
      barrier_running_ = true;
      batch.swap(next_reads_);
    }
  }
  if (closing) {
    batch.front()(ShuttingDown("shard " + std::to_string(shard_id_) + " is closing"));
    return;
  }
  StartBarrier(std::move(batch));
}

void ShardReplica::StartBarrier(std::vector<storage::StatusCallback> reads) {
  auto shared = std::make_shared<std::vector<storage::StatusCallback>>(std::move(reads));
  group_->Barrier([this, shared](Result<uint64_t> index) {
    if (!index.ok()) {
      for (storage::StatusCallback& done : *shared) done(index.status());
    } else {
      // On the loop thread: every entry before the barrier was handed to the store.
      ReadWhenApplied(last_seen_index_.load(std::memory_order_acquire), std::move(*shared));
    }
    std::vector<storage::StatusCallback> next;
    {
      MutexLock lock(mu_);
      // Closing: no new barrier (the group goes away); CancelReads answers what waits.
      if (!closing_) next.swap(next_reads_);
      barrier_running_ = !next.empty();
    }
    if (!next.empty()) StartBarrier(std::move(next));
  });
}

void ShardReplica::ReadWhenApplied(uint64_t target, std::vector<storage::StatusCallback> reads) {
  {
    MutexLock lock(mu_);
    // Checked under the lock ReleaseReads takes after the store moved its index, so no read
    // registers after the release that would have answered it.
    if (store_.applied_index() < target) {
      for (storage::StatusCallback& done : reads) applied_waiters_.emplace(target, std::move(done));
      reads.clear();
    }
  }
  if (reads.empty()) {
    store_.Expedite(target);  // the reads wait for the store: no batching delay
    return;
  }
  for (storage::StatusCallback& done : reads) done(Status::Ok());
}

void ShardReplica::BeginClose() {
  MutexLock lock(mu_);
  closing_ = true;
}

void ShardReplica::ReleaseReads() {
  std::vector<storage::StatusCallback> ready;
  {
    MutexLock lock(mu_);
    const uint64_t applied = store_.applied_index();
    auto end = applied_waiters_.upper_bound(applied);
    for (auto it = applied_waiters_.begin(); it != end; ++it)
      ready.push_back(std::move(it->second));
    applied_waiters_.erase(applied_waiters_.begin(), end);
  }
  for (storage::StatusCallback& done : ready) done(Status::Ok());
}

void ShardReplica::CancelReads() {
  std::vector<storage::StatusCallback> cancelled;
  {
    MutexLock lock(mu_);
    for (auto& [target, done] : applied_waiters_) cancelled.push_back(std::move(done));
    applied_waiters_.clear();
    for (storage::StatusCallback& done : next_reads_) cancelled.push_back(std::move(done));
    next_reads_.clear();
  }
  for (storage::StatusCallback& done : cancelled) {
    done(ShuttingDown("shard " + std::to_string(shard_id_) + " is closing"));
  }
}

Result<std::string> ShardReplica::Snapshot(uint64_t, uint64_t kept_from) {
  // The snapshot is a manifest, never the rows (rpc/snapshot_manifest.h), and names the last
  // entry handed to the store. The store applies asynchronously, so it may not hold that entry
  // yet: that is fine while the log keeps what the store lacks (a restart replays it, see
  // Replay). Never a wait here: this is the raft loop every group shares.
  const uint64_t seen = last_seen_index_.load(std::memory_order_acquire);
  // A copy in flight can take long, and its entries are not in this store yet.
  if (restoring_.load(std::memory_order_acquire) > 0) {
    return Unavailable("shard " + std::to_string(shard_id_) + ": installing a copy");
  }
  const uint64_t applied = store_.applied_index();
  if (applied + 1 < kept_from && applied < seen) {
    store_.Expedite(seen);  // raft retries after the next entry: no batching delay meanwhile
    return Unavailable("shard " + std::to_string(shard_id_) + ": store at " +
                       std::to_string(applied) + ", the log would keep only from " +
                       std::to_string(kept_from));
  }
  snapshot_index_.store(seen, std::memory_order_relaxed);
  return rpc::EncodeManifest({shard_id_, seen});
}

void ShardReplica::Replay(uint64_t log_start, uint64_t index, std::string_view entry) {
  // The log no longer reaches back to what the store holds (it lost nothing: a copy from
  // another data replica brings it, which Restore asks for next).
  if (store_.applied_index() + 1 < log_start) return;
  Apply(index, entry);
}

Status ShardReplica::Restore(std::string_view snapshot) {
  ASSIGN_OR_RETURN(const rpc::SnapshotManifest manifest, rpc::DecodeManifest(snapshot));
  const uint64_t index = manifest.index;
  // Raft's log now starts after `index`: whatever the store did not apply, a copy brings.
  // On the loop thread, like Apply, the only other writer of it.
  const uint64_t handed = last_seen_index_.load(std::memory_order_acquire);
  if (handed < index) last_seen_index_.store(index, std::memory_order_release);
  // Handed to the store already (replayed at start, or applied before the leader sent this):
  // the store will hold it.
  if (handed >= index) return Status::Ok();
  // A replica whose store already covers the manifest restores nothing.
  const uint64_t applied = store_.applied_index();
  if (applied >= index) return Status::Ok();
  if (!copies_) {
    return Unavailable("shard " + std::to_string(shard_id_) + ": catching up from index " +
                       std::to_string(applied) + " to " + std::to_string(index) +
                       " needs a copy of a data replica, and this replica has no source of one");
  }
  spdlog::info(
      "shard {}: the log resumes after entry {}, the store holds up to {}: fetching a "
      "copy of another data replica",
      shard_id_, index, applied);
  restoring_.fetch_add(1, std::memory_order_acq_rel);
  store_.ReplaceFromCopy(
      index, [this, index](const std::atomic<bool>& stopping) { return copies_(index, stopping); },
      [this, index](Status installed) {
        restoring_.fetch_sub(1, std::memory_order_acq_rel);
        if (installed.ok()) {
          copies_installed_.fetch_add(1, std::memory_order_relaxed);
          spdlog::info("shard {}: caught up from a copy (at least entry {})", shard_id_, index);
          ReleaseReads();
        }
      });
  return Status::Ok();
}

}  // namespace das::replica
