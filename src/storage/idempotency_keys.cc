#include "storage/idempotency_keys.h"

#include <xxhash.h>

#include <utility>

namespace das::storage {

// The writer thread reads without the lock: it is the only thread that changes the map. The
// analysis cannot know which thread calls, hence its exemption here alone.
const KeyRecord* KeyIndex::Find(std::string_view key) const {
  auto it = map_.find(key);
  return it == map_.end() ? nullptr : &it->second;
}

std::optional<KeyRecord> KeyIndex::Lookup(std::string_view key) const {
  ReaderLock lock(mu_);
  auto it = map_.find(key);
  if (it == map_.end()) return std::nullopt;
  return it->second;
}

void KeyIndex::Insert(std::string key, KeyRecord record) {
  WriterLock lock(mu_);
  map_.insert_or_assign(std::move(key), record);
}

size_t KeyIndex::EraseCommittedBefore(int64_t cutoff_us) {
  WriterLock lock(mu_);
  return std::erase_if(
      map_, [cutoff_us](const auto& entry) { return entry.second.committed_at_us < cutoff_us; });
}

void KeyIndex::Clear() {
  WriterLock lock(mu_);
  map_.clear();
}

size_t KeyIndex::size() const {
  ReaderLock lock(mu_);
  return map_.size();
}

size_t KeyIndex::Hash::operator()(std::string_view key) const {
  return static_cast<size_t>(XXH3_64bits(key.data(), key.size()));
}

}  // namespace das::storage
