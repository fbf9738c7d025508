#include "control/cluster_clock.h"

#include <gtest/gtest.h>

#include <chrono>

namespace das::control {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr int64_t kHourUs = 3'600'000'000;

class ClusterClockTest : public testing::Test {
 protected:
  // A probe of `worker` that took `round_trip` and found its clock `offset_us` off this node's.
  ClusterClock::Offset Probe(uint64_t worker, int64_t offset_us,
                             milliseconds round_trip = milliseconds(2)) {
    const int64_t sent_wall = time_.WallMicros();
    const Clock::Monotonic sent = time_.Now();
    time_.Advance(round_trip);
    // The worker read its clock at the midpoint of the round trip.
    const int64_t remote = sent_wall + round_trip.count() * 1000 / 2 + offset_us;
    return clock_.Record(worker, sent_wall, sent, time_.Now(), remote);
  }

  ManualClock time_;
  ClusterClock clock_{time_, milliseconds(500), seconds(5)};
};

TEST_F(ClusterClockTest, AnOffsetIsTheRemoteReadingAgainstTheMidpointOfTheRoundTrip) {
  const ClusterClock::Offset offset = Probe(1, -kHourUs, milliseconds(40));
  EXPECT_EQ(offset.offset_us, -kHourUs);
  EXPECT_EQ(offset.uncertainty_us, 20'000);
  ASSERT_TRUE(clock_.Of(1).has_value());
  EXPECT_EQ(clock_.Of(1)->offset_us, -kHourUs);
  EXPECT_FALSE(clock_.Of(2).has_value());
}

TEST_F(ClusterClockTest, PastTheBoundOnlyBeyondTheUncertainty) {
  // 600 ms off, +-50 ms: past 500 ms. 540 ms off, +-50 ms: maybe not; not reported.
  EXPECT_TRUE(clock_.PastBound(Probe(1, 600'000, milliseconds(100))));
  EXPECT_FALSE(clock_.PastBound(Probe(1, 540'000, milliseconds(100))));
  EXPECT_FALSE(clock_.PastBound(Probe(1, -400'000)));
  EXPECT_TRUE(clock_.PastBound(Probe(1, -kHourUs)));
}

TEST_F(ClusterClockTest, AWorkerWithAWrongClockDoesNotMoveTheClustersTime) {
  Probe(1, 0);
  Probe(2, -kHourUs);
  EXPECT_EQ(clock_.CorrectionUs(), 0);
  EXPECT_EQ(clock_.NowUs(), time_.WallMicros());
}

TEST_F(ClusterClockTest, TwoWorkersThatAgreeOutvoteTheControlNodesWrongClock) {
  // This node is an hour behind: both workers read an hour ahead of it.
  Probe(1, kHourUs + 3'000);
  Probe(2, kHourUs - 2'000);
  EXPECT_EQ(clock_.CorrectionUs(), kHourUs - 2'000);  // the median of {0, +1h-2ms, +1h+3ms}
  EXPECT_EQ(clock_.NowUs(), time_.WallMicros() + kHourUs - 2'000);
}

TEST_F(ClusterClockTest, SmallDisagreementsAreNotCorrected) {
  Probe(1, 300'000);
  Probe(2, 400'000);
  EXPECT_EQ(clock_.CorrectionUs(), 0);  // the median is within the bound
}

TEST_F(ClusterClockTest, ATieKeepsThisNodesClock) {
  Probe(1, kHourUs);  // one worker against this node: nobody can tell which is wrong
  EXPECT_EQ(clock_.CorrectionUs(), 0);
  Probe(2, kHourUs);
  Probe(3, -kHourUs);  // {-1h, 0, +1h, +1h}: this node lies between the middle two
  EXPECT_EQ(clock_.CorrectionUs(), 0);
}

TEST_F(ClusterClockTest, StaleOffsetsStopCountingAndForgottenWorkersGo) {
  Probe(1, kHourUs);
  Probe(2, kHourUs);
  ASSERT_EQ(clock_.CorrectionUs(), kHourUs);
  time_.Advance(seconds(6));  // neither answered a probe since
  EXPECT_EQ(clock_.CorrectionUs(), 0);
  // What writes are stamped with moves at the probe's next round (Refresh), not per write.
  EXPECT_EQ(clock_.NowUs(), time_.WallMicros() + kHourUs);
  clock_.Refresh();
  EXPECT_EQ(clock_.NowUs(), time_.WallMicros());
  Probe(1, kHourUs);
  Probe(2, kHourUs);
  ASSERT_EQ(clock_.CorrectionUs(), kHourUs);
  clock_.Forget(2);
  EXPECT_EQ(clock_.CorrectionUs(), 0);
  EXPECT_EQ(clock_.All().size(), 1u);
}

}  // namespace
}  // namespace das::control
