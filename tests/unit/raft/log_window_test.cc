// What a group's share of the node's log budget allows (internal/log_window.h): the entries
// kept after a snapshot fit in half the share (at least 16, at most the configured trailing),
// and a snapshot is due once the other half was applied since the last.
#include "raft/internal/log_window.h"

#include <gtest/gtest.h>

namespace das::raft {
namespace {

class LogWindowTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(das_log_window_init(&window_, 8192), 0); }
  void TearDown() override { das_log_window_free(&window_); }

  das_log_limits Apply(uint64_t size, int times, uint64_t share = 4 << 20) {
    das_log_limits limits{};
    for (int i = 0; i < times; ++i) limits = das_log_window_applied(&window_, size, share, 1024);
    return limits;
  }

  das_log_window window_{};
};

TEST_F(LogWindowTest, LargeEntriesAreKeptAsFarAsHalfTheShare) {
  // 4 MiB share: 2 MiB kept = 64 entries of 32 KiB; a snapshot due every 2 MiB = 64 entries.
  das_log_limits limits = Apply(32 << 10, 63);
  EXPECT_EQ(limits.threshold, 1024u) << "not yet half the share";
  limits = Apply(32 << 10, 1);
  EXPECT_EQ(limits.threshold, 64u);
  EXPECT_EQ(limits.trailing, 64u);
  das_log_window_snapshot_taken(&window_);
  limits = Apply(32 << 10, 200);
  EXPECT_EQ(limits.trailing, 64u) << "the oldest sizes leave the window";
  EXPECT_EQ(limits.threshold, 200u) << "due since 64 entries, until a snapshot is taken";
}

TEST_F(LogWindowTest, SmallEntriesAreKeptUpToTheConfiguredCount) {
  EXPECT_EQ(Apply(100, 50).trailing, 8192u);
  EXPECT_EQ(Apply(100, 1).threshold, 1024u) << "5 KiB is not half of 4 MiB";
}

TEST_F(LogWindowTest, AFewHugeEntriesAreStillKept) {
  EXPECT_EQ(Apply(8 << 20, 3).trailing, unsigned{DAS_LOG_MIN_TRAILING});
  EXPECT_EQ(Apply(8 << 20, 1).threshold, 4u) << "every entry fills the half";
}

TEST_F(LogWindowTest, TheShareChangesWithTheGroupsOpen) {
  EXPECT_EQ(Apply(32 << 10, 100, 4 << 20).trailing, 64u);
  EXPECT_EQ(Apply(32 << 10, 1, 2 << 20).trailing, 32u) << "twice the groups, half the share";
}

TEST_F(LogWindowTest, AWindowSmallerThanTheMinimumKeepsWhatItIsAllowed) {
  das_log_window small{};
  ASSERT_EQ(das_log_window_init(&small, 4), 0);
  das_log_limits limits{};
  for (int i = 0; i < 10; ++i) limits = das_log_window_applied(&small, 100, 4 << 20, 16);
  EXPECT_EQ(limits.trailing, 4u);
  das_log_window_free(&small);
}

}  // namespace
}  // namespace das::raft
