#include "worker/idempotency_keys.h"

#include <xxhash.h>

#include <bit>
#include <utility>

namespace das::worker {
namespace {

template <typename T>
void AppendLittleEndian(std::string& out, T value) {
  for (size_t i = 0; i < sizeof(T); ++i) {
    out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
  }
}

}  // namespace

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

uint64_t Fingerprint(const std::vector<StoredRow>& rows, std::string& scratch) {
  scratch.clear();
  for (const StoredRow& row : rows) {
    AppendLittleEndian(scratch, static_cast<uint32_t>(row.partition_key.size()));
    scratch.append(row.partition_key);
    AppendLittleEndian(scratch, std::bit_cast<uint64_t>(row.value));
  }
  return XXH3_64bits(scratch.data(), scratch.size());
}

}  // namespace das::worker
