// The stable hash that places partition keys. Changing it moves data between shards, so its
// values are pinned by golden tests (tests/unit/common/hash_test.cc).
#pragma once

#include <cstdint>
#include <string_view>

namespace das {

// The key space: slot = HashPartitionKey(key) mod kSlots. Fixed forever (docs/architecture.md).
inline constexpr uint32_t kSlots = 4096;

// XXH3_64bits of the key's bytes, seed 0.
uint64_t HashPartitionKey(std::string_view key);

}  // namespace das
