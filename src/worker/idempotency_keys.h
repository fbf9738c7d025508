// The idempotency keys the store remembers, held in memory so that the writer answers a retry
// without asking DuckDB. The table idempotency_keys is the durable copy; the writer changes
// both, the table first (in the same transaction as the rows), this index only after COMMIT.
// Not thread-safe: owned and used by the writer thread only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "worker/store.h"

namespace das::worker {

// What the first sub-batch with a key stored.
struct KeyRecord {
  uint64_t fingerprint = 0;  // of the whole client batch (common/fingerprint.h)
  uint64_t rows_written = 0;
  int64_t committed_at_us = 0;  // microseconds since the Unix epoch
};

class KeyIndex {
 public:
  const KeyRecord* Find(std::string_view key) const;
  void Insert(std::string key, KeyRecord record);
  // Forgets the keys committed before `cutoff_us`; returns how many.
  size_t EraseCommittedBefore(int64_t cutoff_us);
  size_t size() const { return map_.size(); }

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view key) const;
  };
  std::unordered_map<std::string, KeyRecord, Hash, std::equal_to<>> map_;
};

}  // namespace das::worker
