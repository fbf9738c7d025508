#include "common/hash.h"

#include <xxhash.h>

namespace das {

uint64_t HashPartitionKey(std::string_view key) { return XXH3_64bits(key.data(), key.size()); }

}  // namespace das
