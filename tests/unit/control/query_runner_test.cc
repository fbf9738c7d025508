// The query runner's pieces that need no shard: the coverage's slot ranges.
#include "control/query_runner.h"

#include <gtest/gtest.h>

namespace das::control {
namespace {

TEST(MergeSlotRangesTest, SortsAndJoinsAdjacentRanges) {
  std::vector<das::v1::SlotRange> ranges = MergeSlotRanges({{512, 768}, {0, 256}, {256, 300}});
  ASSERT_EQ(ranges.size(), 2u);
  EXPECT_EQ(ranges[0].first_slot(), 0u);
  EXPECT_EQ(ranges[0].last_slot(), 299u);
  EXPECT_EQ(ranges[1].first_slot(), 512u);
  EXPECT_EQ(ranges[1].last_slot(), 767u);
}

}  // namespace
}  // namespace das::control
