#include "common/clock.h"

#include <gtest/gtest.h>

namespace das {
namespace {

TEST(ManualClockTest, MovesOnlyWhenAdvanced) {
  ManualClock clock;
  const Clock::Monotonic start = clock.Now();
  const int64_t wall = clock.WallMicros();
  EXPECT_EQ(clock.Now(), start);
  clock.Advance(std::chrono::milliseconds(1500));
  EXPECT_EQ(clock.Now() - start, std::chrono::milliseconds(1500));
  EXPECT_EQ(clock.WallMicros() - wall, 1'500'000);
}

TEST(RealClockTest, WallMicrosIsTheUnixTime) {
  // 2026-01-01T00:00:00Z < now < 2100-01-01T00:00:00Z
  EXPECT_GT(Clock::Real().WallMicros(), int64_t{1'767'225'600} * 1'000'000);
  EXPECT_LT(Clock::Real().WallMicros(), int64_t{4'102'444'800} * 1'000'000);
}

}  // namespace
}  // namespace das
