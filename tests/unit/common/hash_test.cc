#include "common/hash.h"

#include <gtest/gtest.h>

namespace das {
namespace {

// Golden values from `printf '%s' KEY | xxhsum -H3` (xxHash 0.8.1). If one of these changes,
// every stored row would be looked for on the wrong worker: never update them casually.
TEST(HashPartitionKeyTest, MatchesXxh3GoldenValues) {
  EXPECT_EQ(HashPartitionKey(""), 0x2d06800538d394c2ULL);
  EXPECT_EQ(HashPartitionKey("a"), 0xe6c632b61e964e1fULL);
  EXPECT_EQ(HashPartitionKey("user-42"), 0x50fe4b21cf7b09cdULL);
  EXPECT_EQ(HashPartitionKey("partition_key"), 0x9b263353a0fa9167ULL);
  EXPECT_EQ(HashPartitionKey("ключ"), 0x9a137c08c1e55edeULL);
}

TEST(HashPartitionKeyTest, HashesBytesNotCStrings) {
  std::string with_nul("a\0b", 3);
  EXPECT_NE(HashPartitionKey(with_nul), HashPartitionKey("a"));
}

}  // namespace
}  // namespace das
