// The worker's aggregate over every committed row, kept up to date by the writer.
//
// Analytics read it instead of scanning the table: the writer adds a group's stored rows after
// COMMIT returned and before anyone is acknowledged, so every acknowledged row is in it, and
// nothing uncommitted is. It starts from a scan of the table when the store opens. The sum is
// exact (common/exact_sum.h): the same whatever the order of the rows, so it equals the scan.
// Thread-safety: every method may be called from any thread (one mutex, held for O(rows)).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <limits>
#include <vector>

#include "common/exact_sum.h"
#include "common/mutex.h"
#include "storage/store.h"

namespace das::storage {

class RunningAggregate {
 public:
  RunningAggregate() = default;

  // Starts over from `initial` (the table's aggregate when the store opens).
  void Reset(const Aggregate& initial) {
    MutexLock lock(mu_);
    count_ = initial.count;
    sum_ = initial.sum;
    min_ = initial.min;
    max_ = initial.max;
    applied_index_ = initial.applied_index;
  }

  // The last raft entry committed; set with the entry's rows, before anyone is answered.
  void SetAppliedIndex(uint64_t index) {
    MutexLock lock(mu_);
    applied_index_ = std::max(applied_index_, index);
  }
  uint64_t applied_index() const {
    MutexLock lock(mu_);
    return applied_index_;
  }

  void Add(const std::vector<StoredRow>& rows) {
    if (rows.empty()) return;
    MutexLock lock(mu_);
    for (const StoredRow& row : rows) {
      sum_.Add(row.value);
      min_ = min_ ? std::min(*min_, row.value) : row.value;
      max_ = max_ ? std::max(*max_, row.value) : row.value;
    }
    count_ += rows.size();
  }

  // The newest ingest time committed (INT64_MIN: no row yet); set after COMMIT, before anyone is
  // answered. Every row committed later has a later one (Store::Apply), so it names a snapshot.
  void SetNewestIngest(int64_t us) { newest_ingest_us_.store(us, std::memory_order_release); }
  int64_t newest_ingest_us() const { return newest_ingest_us_.load(std::memory_order_acquire); }

  Aggregate Snapshot() const {
    MutexLock lock(mu_);
    return Aggregate{count_, sum_, min_, max_, applied_index_};
  }

 private:
  mutable Mutex mu_;
  uint64_t count_ GUARDED_BY(mu_) = 0;
  ExactSum sum_ GUARDED_BY(mu_);
  std::optional<double> min_ GUARDED_BY(mu_);
  std::optional<double> max_ GUARDED_BY(mu_);
  uint64_t applied_index_ GUARDED_BY(mu_) = 0;
  std::atomic<int64_t> newest_ingest_us_{std::numeric_limits<int64_t>::min()};
};

}  // namespace das::storage
