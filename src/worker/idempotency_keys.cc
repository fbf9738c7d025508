#include "worker/idempotency_keys.h"

#include <xxhash.h>

#include <utility>

namespace das::worker {

const KeyRecord* KeyIndex::Find(std::string_view key) const {
  auto it = map_.find(key);
  return it == map_.end() ? nullptr : &it->second;
}

void KeyIndex::Insert(std::string key, KeyRecord record) {
  map_.insert_or_assign(std::move(key), record);
}

size_t KeyIndex::EraseCommittedBefore(int64_t cutoff_us) {
  return std::erase_if(
      map_, [cutoff_us](const auto& entry) { return entry.second.committed_at_us < cutoff_us; });
}

size_t KeyIndex::Hash::operator()(std::string_view key) const {
  return static_cast<size_t>(XXH3_64bits(key.data(), key.size()));
}

}  // namespace das::worker
