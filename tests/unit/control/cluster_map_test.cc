#include "control/cluster_map.h"

#include <gtest/gtest.h>

namespace das::control {
namespace {

// Golden placement: slot = XXH3_64(key) mod 4096 (hash values pinned in hash_test.cc); the
// shards are contiguous ranges of slots. A change here moves stored rows: never update casually.
TEST(ClusterMapTest, SlotsAreGolden) {
  EXPECT_EQ(kSlots, 4096u);
  EXPECT_EQ(ClusterMap::SlotOf("a"), 0xe1fu);
  EXPECT_EQ(ClusterMap::SlotOf("user-42"), 0x9cdu);
  EXPECT_EQ(ClusterMap::SlotOf("partition_key"), 359u);
  EXPECT_EQ(ClusterMap::SlotOf("ключ"), 3806u);
}

TEST(ClusterMapTest, WorkersHaveTheirListPositionsPlusOneAsIds) {
  Result<ClusterMap> three = ClusterMap::Create({{"h", 1}, {"h", 2}, {"h", 3}});
  ASSERT_TRUE(three.ok());
  ASSERT_NE(three->Find(3), nullptr);
  EXPECT_EQ(three->Find(3)->address.ToString(), "h:3");
  EXPECT_EQ(three->Find(4), nullptr);
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
