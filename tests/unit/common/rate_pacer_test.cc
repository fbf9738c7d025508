// RatePacer (common/rate_pacer.h): the time a paced transfer may go on, on given time points
// (no clock is read, so nothing here depends on the machine's speed).
#include "common/rate_pacer.h"

#include <gtest/gtest.h>

namespace das {
namespace {

using std::chrono::milliseconds;
using Clock = RatePacer::Clock;

TEST(RatePacerTest, TransfersSharingTheLimitQueueBehindEachOther) {
  RatePacer pacer(1000);  // 1000 bytes/s: a byte a millisecond
  const Clock::time_point t0 = Clock::time_point() + std::chrono::hours(1);
  EXPECT_EQ(pacer.Due(t0, 500), t0 + milliseconds(500));
  // A second transfer asking at the same moment waits for the first one's share too.
  EXPECT_EQ(pacer.Due(t0, 250), t0 + milliseconds(750));
  // One asking after the queue drained pays only for its own bytes.
  EXPECT_EQ(pacer.Due(t0 + milliseconds(2000), 100), t0 + milliseconds(2100));
  // A transfer slower than the rate (it asked long after the last one was due) is not held.
  EXPECT_EQ(pacer.Due(t0 + milliseconds(5000), 1), t0 + milliseconds(5001));
}

TEST(RatePacerTest, NoLimitHoldsNothing) {
  RatePacer pacer(0);
  const Clock::time_point t0 = Clock::time_point() + std::chrono::hours(1);
  EXPECT_EQ(pacer.Due(t0, uint64_t{1} << 40), t0);
  EXPECT_EQ(pacer.Due(t0, uint64_t{1} << 40), t0);
}

}  // namespace
}  // namespace das
