#include "common/exact_sum.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace das {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kMax = std::numeric_limits<double>::max();
constexpr double kDenormMin = std::numeric_limits<double>::denorm_min();

ExactSum SumOf(std::initializer_list<double> values) {
  ExactSum sum;
  for (double v : values) sum.Add(v);
  return sum;
}

// Any finite double, uniformly over bit patterns: every exponent, subnormals and both signs.
double RandomFiniteDouble(std::mt19937_64& rng) {
  while (true) {
    const double x = std::bit_cast<double>(rng());
    if (std::isfinite(x)) return x;
  }
}

TEST(ExactSumTest, EmptySumIsZero) {
  ExactSum sum;
  EXPECT_TRUE(sum.IsZero());
  EXPECT_EQ(sum.Sign(), 0);
  EXPECT_EQ(sum.Value(), 0.0);
  EXPECT_FALSE(std::signbit(sum.Value()));
  EXPECT_EQ(sum.Divide(5), 0.0);
  EXPECT_EQ(sum, SumOf({0.0, -0.0}));
}

TEST(ExactSumTest, TenthsRoundOnceFromTheExactSum) {
  // The three doubles' exact sum needs bits 2^-56..2^-1, which an x87 long double holds exactly.
  static_assert(std::numeric_limits<long double>::digits >= 64);
  const long double exact = static_cast<long double>(0.1) + 0.2 + 0.3;
  const ExactSum sum = SumOf({0.1, 0.2, 0.3});
  EXPECT_EQ(sum.Value(), static_cast<double>(exact));
  EXPECT_EQ(sum.Value(), 0.6);  // whereas naive left-to-right gives 0.6000000000000001
  EXPECT_EQ(sum.Sign(), 1);
}

TEST(ExactSumTest, OverflowingSumRecoversExactly) {
  ExactSum sum = SumOf({1e308, 1e308, 1e308});
  EXPECT_EQ(sum.Value(), kInf);
  EXPECT_EQ(sum.Divide(3), 1e308);
  sum.Add(-1e308);
  EXPECT_EQ(sum.Value(), kInf);  // 2e308 is still outside the double range
  EXPECT_EQ(sum.Divide(4), 1e308 / 2);
  EXPECT_EQ(sum.Divide(4), 5e307);
  sum.Add(-1e308);
  sum.Add(-1e308);
  EXPECT_TRUE(sum.IsZero());
  EXPECT_EQ(sum.Value(), 0.0);
  EXPECT_EQ(sum.Divide(6), 0.0);
}

TEST(ExactSumTest, NegativeOverflowGivesMinusInfinity) {
  ExactSum sum = SumOf({-1e308, -1e308, -1e308});
  EXPECT_EQ(sum.Value(), -kInf);
  EXPECT_EQ(sum.Sign(), -1);
  EXPECT_EQ(sum.Divide(3), -1e308);
  sum.Add(1e308);
  EXPECT_EQ(sum.Value(), -kInf);
  EXPECT_EQ(sum.Divide(4), -5e307);
}

TEST(ExactSumTest, MaxPlusMaxMinusMaxIsMax) { EXPECT_EQ(SumOf({kMax, kMax, -kMax}).Value(), kMax); }

TEST(ExactSumTest, LargeCancellationKeepsSmallTerm) {
  EXPECT_EQ(SumOf({1e300, 1.0, -1e300}).Value(), 1.0);
  EXPECT_EQ(SumOf({1e300, kDenormMin, -1e300}).Value(), kDenormMin);
}

TEST(ExactSumTest, SubnormalsAndHalfwayQuotients) {
  EXPECT_EQ(SumOf({kDenormMin, kDenormMin}).Value(), 2 * kDenormMin);
  EXPECT_EQ(SumOf({kDenormMin}).Divide(2), 0.0);                 // 0.5 units: ties to even 0
  EXPECT_EQ(SumOf({3 * kDenormMin}).Divide(2), 2 * kDenormMin);  // 1.5 units: ties to even 2
  EXPECT_EQ(SumOf({5 * kDenormMin}).Divide(2), 2 * kDenormMin);  // 2.5 units: ties to even 2
  EXPECT_EQ(SumOf({kDenormMin}).Divide(3), 0.0);                 // 0.33 units
  EXPECT_EQ(SumOf({2 * kDenormMin}).Divide(3), kDenormMin);      // 0.67 units
  EXPECT_EQ(SumOf({-3 * kDenormMin}).Divide(2), -2 * kDenormMin);
}

TEST(ExactSumTest, ValueRoundsHalfwayToEven) {
  const double two53 = std::ldexp(1.0, 53);
  EXPECT_EQ(SumOf({two53, 1.0}).Value(), two53);
  EXPECT_EQ(SumOf({two53, 3.0}).Value(), two53 + 4);
  EXPECT_EQ(SumOf({two53, 1.0, kDenormMin}).Value(), two53 + 2);  // just above the tie
  EXPECT_EQ(SumOf({-two53, -1.0}).Value(), -two53);
}

TEST(ExactSumTest, OverflowBoundaryFollowsIeee) {
  const double half_ulp_of_max = std::ldexp(1.0, 970);
  EXPECT_EQ(SumOf({kMax, half_ulp_of_max}).Value(), kInf);
  EXPECT_EQ(SumOf({kMax, std::ldexp(1.0, 969)}).Value(), kMax);
  EXPECT_EQ(SumOf({kMax, half_ulp_of_max, -kDenormMin}).Value(), kMax);
  EXPECT_EQ(SumOf({-kMax, -half_ulp_of_max}).Value(), -kInf);
  EXPECT_EQ(SumOf({kMax, half_ulp_of_max}).Divide(1), kInf);
}

TEST(ExactSumTest, MergeEqualsAddingEverything) {
  const ExactSum all = SumOf({1e308, -3.5, 1e-300, kDenormMin, -7e200, 42.0});
  ExactSum left = SumOf({1e308, -3.5, 1e-300});
  left.Merge(SumOf({kDenormMin, -7e200, 42.0}));
  EXPECT_EQ(left, all);
  EXPECT_EQ(left.ToBytes(), all.ToBytes());
  EXPECT_EQ(left.Value(), all.Value());
  ExactSum doubled = SumOf({kMax, -1.0});
  doubled.Merge(doubled);  // merging with itself doubles
  EXPECT_EQ(doubled, SumOf({kMax, kMax, -2.0}));
}

TEST(ExactSumTest, RandomDoublesSumIndependentlyOfOrderAndPartition) {
  std::mt19937_64 rng(20240601);
  std::vector<double> values(10'000);
  for (double& v : values) v = RandomFiniteDouble(rng);
  ExactSum forward;
  for (double v : values) forward.Add(v);
  ExactSum backward;
  for (auto it = values.rbegin(); it != values.rend(); ++it) backward.Add(*it);
  std::shuffle(values.begin(), values.end(), rng);
  ExactSum merged;
  for (std::size_t start = 0; start < values.size(); start += 777) {
    ExactSum part;
    for (std::size_t i = start; i < std::min(values.size(), start + 777); ++i) part.Add(values[i]);
    merged.Merge(part);
  }
  EXPECT_EQ(forward.ToBytes(), backward.ToBytes());
  EXPECT_EQ(forward.ToBytes(), merged.ToBytes());
  EXPECT_EQ(forward, merged);
  for (double v : values) forward.Add(-v);
  EXPECT_TRUE(forward.IsZero());
}

TEST(ExactSumTest, SmallIntegersMatchPlainDoubleSum) {
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<int> digit(-1000, 1000);
  ExactSum sum;
  double reference = 0;  // exact: every partial sum is an integer far below 2^53
  for (int i = 0; i < 10'000; ++i) {
    const double v = digit(rng);
    sum.Add(v);
    reference += v;
  }
  EXPECT_EQ(sum.Value(), reference);
  EXPECT_EQ(sum.Divide(10'000), reference / 10'000);
}

TEST(ExactSumTest, MatchesExactLongDoubleSumRoundedOnce) {
  // Values in (-2, 2) on a 2^-52 grid: partial sums of 1,000 stay below 2^11, so they need at most
  // 63 bits and an x87 long double adds them without rounding.
  static_assert(std::numeric_limits<long double>::digits >= 64);
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> unit(1.0, 2.0);
  ExactSum sum;
  long double reference = 0;
  for (int i = 0; i < 1'000; ++i) {
    const double v = (rng() & 1) != 0 ? unit(rng) : -unit(rng);
    sum.Add(v);
    reference += v;
  }
  EXPECT_EQ(sum.Value(), static_cast<double>(reference));
}

TEST(ExactSumTest, TwoTermsMatchIeeeAddition) {
  // IEEE addition is correctly rounded with the same ties and overflow rules.
  std::mt19937_64 rng(13);
  for (int i = 0; i < 100'000; ++i) {
    const double x = RandomFiniteDouble(rng);
    const double y = RandomFiniteDouble(rng);
    ASSERT_EQ(SumOf({x, y}).Value(), x + y) << x << " + " << y;
    ASSERT_EQ(SumOf({x}).Value(), x);
  }
}

TEST(ExactSumTest, DivideMatchesIeeeDivisionOfOneTerm) {
  // For a single double and a count below 2^53 (exact as a double), IEEE division is the
  // correctly rounded quotient, subnormal results included.
  std::mt19937_64 rng(17);
  std::uniform_int_distribution<uint64_t> count(1, uint64_t{1} << 53);
  for (int i = 0; i < 100'000; ++i) {
    const double x = RandomFiniteDouble(rng);
    const uint64_t n = (i % 2 == 0) ? count(rng) : 1 + rng() % 16;
    ASSERT_EQ(SumOf({x}).Divide(n), x / static_cast<double>(n)) << x << " / " << n;
  }
}

TEST(ExactSumTest, DivideSmallExactCases) {
  EXPECT_EQ(SumOf({7.0}).Divide(2), 3.5);
  EXPECT_EQ(SumOf({1.0}).Divide(3), 1.0 / 3.0);
  EXPECT_EQ(SumOf({-1.0}).Divide(3), -1.0 / 3.0);
  // 1e16 + 1 is not a double, but the sum holds it exactly.
  const ExactSum sum = SumOf({1e16, 1.0});
  EXPECT_EQ(sum.Value(), 1e16);                       // tie between 1e16 and 1e16 + 2: even
  EXPECT_EQ(sum.Divide(2), 5e15);                     // 5e15 + 0.5: tie, even
  EXPECT_EQ(sum.Divide(3), 3333333333333333.5);       // 3333333333333333.67, ulp 0.5
  EXPECT_EQ(SumOf({1e16, 2.0}).Divide(2), 5e15 + 1);  // exact
  EXPECT_EQ(SumOf({kMax}).Divide(uint64_t{1} << 63), std::ldexp(kMax, -63));
}

TEST(ExactSumTest, MillionMaxValuesDoNotOverflow) {
  ExactSum sum;
  for (int i = 0; i < 1'000'000; ++i) sum.Add(kMax);
  EXPECT_EQ(sum.Value(), kInf);
  EXPECT_EQ(sum.Divide(1'000'000), kMax);
  ExactSum negative;
  for (int i = 0; i < 1'000'000; ++i) negative.Add(-kMax);
  EXPECT_EQ(negative.Divide(1'000'000), -kMax);
  for (int i = 0; i < 1'000'000; ++i) sum.Add(-kMax);
  EXPECT_TRUE(sum.IsZero());
  EXPECT_EQ(sum.Value(), 0.0);
}

void ExpectRoundTrip(const ExactSum& sum) {
  const std::string bytes = sum.ToBytes();
  EXPECT_LE(bytes.size(), ExactSum::kMaxBytes);
  const std::optional<ExactSum> decoded = ExactSum::FromBytes(bytes);
  ASSERT_TRUE(decoded.has_value());
  EXPECT_EQ(*decoded, sum);
  EXPECT_EQ(decoded->ToBytes(), bytes);
}

TEST(ExactSumTest, BytesRoundTrip) {
  ExpectRoundTrip(ExactSum());
  ExpectRoundTrip(SumOf({-1.5}));
  ExpectRoundTrip(SumOf({1e308, 1e308, 1e308}));
  ExpectRoundTrip(SumOf({-1e308, -1e308, -1e308}));
  ExpectRoundTrip(SumOf({kDenormMin}));
  ExpectRoundTrip(SumOf({-kDenormMin}));
  std::mt19937_64 rng(19);
  for (int i = 0; i < 1'000; ++i) ExpectRoundTrip(SumOf({RandomFiniteDouble(rng)}));
}

TEST(ExactSumTest, BytesAreShortestTwosComplement) {
  EXPECT_EQ(ExactSum().ToBytes(), "");
  EXPECT_EQ(SumOf({kDenormMin}).ToBytes(), "\x01");
  EXPECT_EQ(SumOf({-kDenormMin}).ToBytes(), "\xff");
  EXPECT_EQ(SumOf({128 * kDenormMin}).ToBytes(), std::string("\x80\x00", 2));
  EXPECT_EQ(SumOf({-128 * kDenormMin}).ToBytes(), "\x80");
  EXPECT_EQ(SumOf({-129 * kDenormMin}).ToBytes(), "\x7f\xff");
  EXPECT_EQ(SumOf({1.0}).ToBytes().size(), 135u);  // 2^1074: bit 1074 is in byte 134
}

TEST(ExactSumTest, FromBytesRejectsTooLongOrRedundantEncodings) {
  std::string too_long(ExactSum::kMaxBytes + 1, '\0');
  too_long.back() = '\x01';
  EXPECT_EQ(ExactSum::FromBytes(too_long), std::nullopt);
  EXPECT_EQ(ExactSum::FromBytes(std::string(1, '\0')), std::nullopt);
  EXPECT_EQ(ExactSum::FromBytes("\xff\xff"), std::nullopt);
  EXPECT_EQ(ExactSum::FromBytes(std::string("\x01\x00", 2)), std::nullopt);
  EXPECT_EQ(ExactSum::FromBytes(""), ExactSum());
}

TEST(ExactSumTest, FromBytesAcceptsFullWidthExtremes) {
  std::string most_negative(ExactSum::kMaxBytes, '\0');
  most_negative.back() = '\x80';  // -2^2175 units
  const std::optional<ExactSum> sum = ExactSum::FromBytes(most_negative);
  ASSERT_TRUE(sum.has_value());
  EXPECT_EQ(sum->ToBytes(), most_negative);
  EXPECT_EQ(sum->Sign(), -1);
  EXPECT_EQ(sum->Value(), -kInf);
  // 2^2175 / 2^64 units is 2^2111 x 2^-1074 = 2^1037: still outside the double range.
  EXPECT_EQ(sum->Divide(~uint64_t{0}), -kInf);
}

}  // namespace
}  // namespace das
