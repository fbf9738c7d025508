#include "control/aggregate.h"

#include <gtest/gtest.h>

namespace das::control {
namespace {

TEST(AggregateMergerTest, MergesCountSumMinMaxAndAveragesFromTotals) {
  AggregateMerger m;
  m.Add({3, 6.0, 0.0, 1.0, 3.0});        // average 2
  m.Add({1, 100.0, 0.0, 100.0, 100.0});  // average 100
  MergedAggregate r = m.Finish();
  EXPECT_EQ(r.count, 4u);
  EXPECT_EQ(r.sum, 106.0);
  EXPECT_EQ(r.average, 26.5);  // not (2 + 100) / 2
  EXPECT_EQ(r.min, 1.0);
  EXPECT_EQ(r.max, 100.0);
}

TEST(AggregateMergerTest, EmptyHasNoAverageMinMax) {
  AggregateMerger m;
  m.Add({0, 0.0, 0.0, std::nullopt, std::nullopt});
  MergedAggregate r = m.Finish();
  EXPECT_EQ(r.count, 0u);
  EXPECT_EQ(r.sum, 0.0);
  EXPECT_FALSE(r.average.has_value());
  EXPECT_FALSE(r.min.has_value());
  EXPECT_FALSE(r.max.has_value());
}

TEST(AggregateMergerTest, EmptyWorkerDoesNotDisturbMinMax) {
  AggregateMerger m;
  m.Add({0, 0.0, 0.0, std::nullopt, std::nullopt});
  m.Add({2, -3.0, 0.0, -2.0, -1.0});
  MergedAggregate r = m.Finish();
  EXPECT_EQ(r.min, -2.0);
  EXPECT_EQ(r.max, -1.0);
  EXPECT_EQ(r.average, -1.5);
}

// Large mixed-sign partial sums: a naive sum gives 0 here, the compensated one gives 2.
TEST(AggregateMergerTest, LargeMixedSignSumsKeepSmallTerms) {
  AggregateMerger m;
  m.Add({1, 1e100, 0.0, 1e100, 1e100});
  m.Add({1, 1.0, 0.0, 1.0, 1.0});
  m.Add({1, -1e100, 0.0, -1e100, -1e100});
  m.Add({1, 1.0, 0.0, 1.0, 1.0});
  MergedAggregate r = m.Finish();
  EXPECT_EQ(r.sum, 2.0);
  EXPECT_EQ(r.average, 0.5);
}

// Regression: a worker's sum rounded to one double lost its compensation before the merge.
// Worker 1 holds {1e16, 1} (sum 1e16, residual 1), worker 2 holds {-1e16}: the sum is 1.
TEST(AggregateMergerTest, WorkersResidualsAreMergedToo) {
  CompensatedSum worker1;
  worker1.Add(1e16);
  worker1.Add(1.0);
  EXPECT_EQ(worker1.Value(), 1e16);
  EXPECT_EQ(worker1.Residual(), 1.0);
  AggregateMerger m;
  m.Add({2, worker1.Value(), worker1.Residual(), 1.0, 1e16});
  m.Add({1, -1e16, 0.0, -1e16, -1e16});
  MergedAggregate r = m.Finish();
  EXPECT_EQ(r.sum, 1.0);
  EXPECT_EQ(r.average, 1.0 / 3);
}

TEST(CompensatedSumTest, ManySmallTermsOnALargeOne) {
  CompensatedSum s;
  double naive = 1e16;
  s.Add(1e16);
  for (int i = 0; i < 1000; ++i) {
    s.Add(1.0);
    naive += 1.0;
  }
  EXPECT_EQ(s.Value(), 1e16 + 1000);
  EXPECT_NE(naive, 1e16 + 1000);  // the naive sum drops every term
}

}  // namespace
}  // namespace das::control
