// The idempotency keys the store remembers, held in memory so that the writer answers a retry
// without asking DuckDB. The table idempotency_keys is the durable copy; the writer changes
// both, the table first (in the same transaction as the rows), this index only after COMMIT,
// so what the index holds is committed.
// Thread-safety: the writer thread is the only one that changes it (Insert, Erase...) and may
// use Find; any thread may call Lookup (a shared lock; the writer's changes take it exclusively).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/mutex.h"
#include "storage/store.h"

namespace das::storage {

class KeyIndex {
 public:
  // REQUIRES: on the writer thread (the pointer stays valid until the writer changes the index).
  const KeyRecord* Find(std::string_view key) const NO_THREAD_SAFETY_ANALYSIS;
  // From any thread: a copy of the record, if any.
  std::optional<KeyRecord> Lookup(std::string_view key) const;
  // REQUIRES: on the writer thread, for this and the next two.
  void Insert(std::string key, KeyRecord record);
  // Forgets the keys committed before `cutoff_us`; returns how many.
  size_t EraseCommittedBefore(int64_t cutoff_us);
  // Forgets every key (before loading another store's).
  void Clear();
  size_t size() const;

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view key) const;
  };
  mutable SharedMutex mu_;
  std::unordered_map<std::string, KeyRecord, Hash, std::equal_to<>> map_ GUARDED_BY(mu_);
};

}  // namespace das::storage
