#include "control/cluster_map.h"

#include <gtest/gtest.h>

namespace das::control {
namespace {

std::vector<WorkerAddress> Two() { return {{"127.0.0.1", 8081}, {"127.0.0.1", 8082}}; }

// Golden placement: slot = XXH3_64(key) mod 4096 (hash values pinned in hash_test.cc), and
// slot i belongs to worker i mod N. A change here moves stored rows: never update casually.
TEST(ClusterMapTest, SlotsAreGolden) {
  EXPECT_EQ(kSlots, 4096u);
  EXPECT_EQ(ClusterMap::SlotOf("a"), 0xe1fu);
  EXPECT_EQ(ClusterMap::SlotOf("user-42"), 0x9cdu);
  EXPECT_EQ(ClusterMap::SlotOf("partition_key"), 359u);
  EXPECT_EQ(ClusterMap::SlotOf("ключ"), 3806u);
}

TEST(ClusterMapTest, SlotIModNOwnsTheKey) {
  Result<ClusterMap> two = ClusterMap::Create(Two());
  ASSERT_TRUE(two.ok());
  // Worker ids are list positions + 1: slot s belongs to worker (s mod N) + 1.
  EXPECT_EQ(two->WorkerFor("a"), 2u);              // 0xe1f is odd
  EXPECT_EQ(two->WorkerFor("partition_key"), 2u);  // 359
  EXPECT_EQ(two->WorkerFor("ключ"), 1u);           // 3806
  Result<ClusterMap> three = ClusterMap::Create({{"h", 1}, {"h", 2}, {"h", 3}});
  ASSERT_TRUE(three.ok());
  EXPECT_EQ(three->WorkerFor("partition_key"), 359u % 3 + 1);
  EXPECT_EQ(three->WorkerFor("ключ"), 3806u % 3 + 1);
  ASSERT_NE(three->Find(3), nullptr);
  EXPECT_EQ(three->Find(3)->address.ToString(), "h:3");
  EXPECT_EQ(three->Find(4), nullptr);
}

TEST(ClusterMapTest, SpreadsKeysOverWorkers) {
  Result<ClusterMap> map = ClusterMap::Create(Two());
  ASSERT_TRUE(map.ok());
  size_t on_first = 0;
  for (int i = 0; i < 10000; ++i) on_first += map->WorkerFor("key-" + std::to_string(i)) == 1;
  EXPECT_GT(on_first, 4500u);
  EXPECT_LT(on_first, 5500u);
}

TEST(ClusterMapTest, RejectsEmptyAndDuplicateWorkers) {
  EXPECT_EQ(ClusterMap::Create({}).status().code(), StatusCode::kInvalidArgument);
  Result<ClusterMap> dup = ClusterMap::Create({{"h", 1}, {"h", 1}});
  EXPECT_EQ(dup.status().message(), "worker h:1 is listed twice");
}

TEST(ParseWorkerListTest, ParsesHostPortPairs) {
  Result<std::vector<WorkerAddress>> workers = ParseWorkerList("127.0.0.1:8081, worker2:8082,");
  ASSERT_TRUE(workers.ok());
  ASSERT_EQ(workers->size(), 2u);
  EXPECT_EQ((*workers)[0].ToString(), "127.0.0.1:8081");
  EXPECT_EQ((*workers)[1].host, "worker2");
  EXPECT_EQ((*workers)[1].port, 8082);
}

TEST(ParseWorkerListTest, RejectsBadEntries) {
  EXPECT_EQ(ParseWorkerList("localhost").status().message(), "worker 'localhost' is not host:port");
  EXPECT_EQ(ParseWorkerList("h:0").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseWorkerList("h:70000").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseWorkerList("h:80x").status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace das::control
