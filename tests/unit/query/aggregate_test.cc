#include "query/aggregate.h"

#include <cmath>
#include <initializer_list>
#include <limits>

#include <gtest/gtest.h>

namespace das::query {
namespace {

// A worker's partial aggregate over `values`, as the worker computes it.
PartialAggregate Partial(std::initializer_list<double> values) {
  PartialAggregate p;
  for (double v : values) {
    p.sum.Add(v);
    p.min = p.min ? std::min(*p.min, v) : v;
    p.max = p.max ? std::max(*p.max, v) : v;
    ++p.count;
  }
  return p;
}

TEST(AggregateMergerTest, APartialFromAnAnswerKeepsItsMinMaxAndRefusesABadSum) {
  ExactSum sum;
  sum.Add(2.5);
  sum.Add(-1.0);
  internal::v1::AggregateResponse response;
  response.set_count(2);
  response.set_exact_sum(sum.ToBytes());
  response.set_min(-1.0);
  std::optional<PartialAggregate> partial = PartialFrom(response);
  ASSERT_TRUE(partial.has_value());
  EXPECT_EQ(partial->count, 2u);
  EXPECT_EQ(partial->sum.Value(), 1.5);
  EXPECT_EQ(partial->min, -1.0);
  EXPECT_FALSE(partial->max.has_value());
  response.set_exact_sum(std::string(ExactSum::kMaxBytes + 1, '\x01'));  // too long
  EXPECT_FALSE(PartialFrom(response).has_value());
}

TEST(AggregateMergerTest, MergesCountSumMinMaxAndAveragesFromTotals) {
  AggregateMerger m;
  m.Add(Partial({1.0, 2.0, 3.0}));  // average 2
  m.Add(Partial({100.0}));          // average 100
  MergedAggregate r = m.Finish();
  EXPECT_EQ(r.count, 4u);
  EXPECT_EQ(r.sum, 106.0);
  EXPECT_EQ(r.average, 26.5);  // not (2 + 100) / 2
  EXPECT_EQ(r.min, 1.0);
  EXPECT_EQ(r.max, 100.0);
}

TEST(AggregateMergerTest, EmptyHasNoAverageMinMax) {
  AggregateMerger m;
  m.Add(Partial({}));
  MergedAggregate r = m.Finish();
  EXPECT_EQ(r.count, 0u);
  EXPECT_EQ(r.sum, 0.0);
  EXPECT_FALSE(r.average.has_value());
  EXPECT_FALSE(r.min.has_value());
  EXPECT_FALSE(r.max.has_value());
}

TEST(AggregateMergerTest, EmptyWorkerDoesNotDisturbMinMax) {
  AggregateMerger m;
  m.Add(Partial({}));
  m.Add(Partial({-2.0, -1.0}));
  MergedAggregate r = m.Finish();
  EXPECT_EQ(r.min, -2.0);
  EXPECT_EQ(r.max, -1.0);
  EXPECT_EQ(r.average, -1.5);
}

// Large mixed-sign partial sums: a naive sum gives 0 here, the exact one gives 2.
TEST(AggregateMergerTest, LargeMixedSignSumsKeepSmallTerms) {
  AggregateMerger m;
  m.Add(Partial({1e100}));
  m.Add(Partial({1.0}));
  m.Add(Partial({-1e100}));
  m.Add(Partial({1.0}));
  MergedAggregate r = m.Finish();
  EXPECT_EQ(r.sum, 2.0);
  EXPECT_EQ(r.average, 0.5);
}

// Regression: a worker's sum rounded to one double lost what rounding dropped before the merge.
// Worker 1 holds {1e16, 1} (1e16 as one double), worker 2 holds {-1e16}: the sum is 1.
TEST(AggregateMergerTest, WorkersSumsAreMergedExactly) {
  AggregateMerger m;
  m.Add(Partial({1e16, 1.0}));
  m.Add(Partial({-1e16}));
  MergedAggregate r = m.Finish();
  EXPECT_EQ(r.sum, 1.0);
  EXPECT_EQ(r.average, 1.0 / 3);
}

// Regression: three valid rows of 1e308 made every later answer NaN. Spread over two workers,
// 3 x 1e308 + (-1e308) sums to 2e308 (outside the double range: +Infinity) but averages to
// exactly 1e308 / 2; two more -1e308 bring the sum back to 0.
TEST(AggregateMergerTest, SumOutsideTheDoubleRangeIsInfinityAndRecovers) {
  AggregateMerger m;
  m.Add(Partial({1e308, 1e308}));
  m.Add(Partial({1e308, -1e308}));
  MergedAggregate r = m.Finish();
  EXPECT_EQ(r.sum, std::numeric_limits<double>::infinity());
  EXPECT_EQ(r.average, 1e308 / 2);
  EXPECT_EQ(r.max, 1e308);
  EXPECT_EQ(r.min, -1e308);
  m.Add(Partial({-1e308, -1e308}));
  r = m.Finish();
  EXPECT_EQ(r.sum, 0.0);
  EXPECT_EQ(r.average, 0.0);
  EXPECT_FALSE(std::isnan(*r.average));
}

}  // namespace
}  // namespace das::query
