// The data pool of a scaled worker service (worker/data_pool.h): each running worker holds a
// directory of its own, a released one is claimed again first, and a departed worker's data is
// moved aside, never deleted.
#include "worker/data_pool.h"

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "../temp_dir.h"

namespace das::worker {
namespace {

TEST(DataPoolTest, EachClaimHoldsADirectoryOfItsOwnUntilReleased) {
  TempDir dir("das_pool_test");
  const std::string pool = dir.path() + "/pool";
  Result<std::unique_ptr<PoolClaim>> first = ClaimFromPool(pool);
  Result<std::unique_ptr<PoolClaim>> second = ClaimFromPool(pool);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ((*first)->data_dir(), pool + "/worker-1");
  EXPECT_EQ((*second)->data_dir(), pool + "/worker-2");
  EXPECT_TRUE(std::filesystem::is_directory(pool + "/worker-2"));
  { std::ofstream(pool + "/worker-1/node_id") << "7\n"; }
  first->reset();  // the worker holding worker-1 exits
  Result<std::unique_ptr<PoolClaim>> again = ClaimFromPool(pool);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ((*again)->data_dir(), pool + "/worker-1");  // the first free one, data kept
  EXPECT_TRUE(std::filesystem::exists(pool + "/worker-1/node_id"));
  // Every directory held: refused, naming the limit.
  Result<std::unique_ptr<PoolClaim>> none = ClaimFromPool(pool, 2);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(none.status().message().find("every one of the 2 directories"), std::string::npos)
      << none.status().message();
}

TEST(DataPoolTest, ADepartedWorkersDataIsMovedAsideAndTheDirectoryStartsEmpty) {
  TempDir dir("das_pool_test");
  const std::string pool = dir.path() + "/pool";
  Result<std::unique_ptr<PoolClaim>> claim = ClaimFromPool(pool);
  ASSERT_TRUE(claim.ok()) << claim.status().ToString();
  { std::ofstream(pool + "/worker-1/node_id") << "3\n"; }
  ASSERT_TRUE((*claim)->SetAside(3).ok());
  EXPECT_TRUE(std::filesystem::is_empty(pool + "/worker-1"));
  EXPECT_TRUE(std::filesystem::exists(pool + "/worker-1.left-3/node_id"));
  // Still held by this claim.
  Result<std::unique_ptr<PoolClaim>> other = ClaimFromPool(pool);
  ASSERT_TRUE(other.ok());
  EXPECT_EQ((*other)->data_dir(), pool + "/worker-2");
}

}  // namespace
}  // namespace das::worker
