// The pieces of an exact quantile that the shards and the control node must compute alike
// (README, "Queries"): a total order of doubles as unsigned integers, the bins of a range of
// that order, and DuckDB's quantile_cont interpolation.
// Thread-safety: pure functions.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>

namespace das {

// A key whose unsigned order is the numeric order of finite doubles (-0.0 just below +0.0):
// negative values have every bit flipped, the others only the sign bit.
constexpr uint64_t OrderedBits(double value) {
  const uint64_t bits = std::bit_cast<uint64_t>(value);
  return (bits >> 63) != 0 ? ~bits : bits | (uint64_t{1} << 63);
}

constexpr double FromOrderedBits(uint64_t key) {
  return std::bit_cast<double>((key >> 63) != 0 ? key & ~(uint64_t{1} << 63) : ~key);
}

// The bin of `key` among `bins` bins of equal width over [lo, hi] in that order: integer
// arithmetic, so every node puts a value in the same bin, and each bin is an interval of it.
// REQUIRES: lo <= key <= hi, bins >= 1.
constexpr uint32_t BinOf(uint64_t key, uint64_t lo, uint64_t hi, uint32_t bins) {
  const uint64_t width = (hi - lo) / bins + 1;
  return static_cast<uint32_t>((key - lo) / width);
}

// The 0-based ranks whose values quantile_cont(q) interpolates over `count` sorted values:
// position (count - 1) * q, its floor and its ceiling. REQUIRES: count >= 1, 0 <= q <= 1.
struct QuantileRanks {
  uint64_t low = 0;
  uint64_t high = 0;
  double fraction = 0;  // position - low
};

inline QuantileRanks RanksOf(uint64_t count, double q) {
  const double position = static_cast<double>(count - 1) * q;
  const double low = std::floor(position);
  const double high = std::ceil(position);
  return QuantileRanks{static_cast<uint64_t>(low), static_cast<uint64_t>(high), position - low};
}

// DuckDB's quantile_cont between the values at the two ranks, lo * (1 - f) + hi * f (its
// interpolation of DOUBLEs), so that an answer matches DuckDB's own bit for bit (and never
// overflows between -DBL_MAX and DBL_MAX).
inline double Interpolate(double low_value, double high_value, const QuantileRanks& ranks) {
  if (ranks.low == ranks.high) return low_value;
  return low_value * (1.0 - ranks.fraction) + high_value * ranks.fraction;
}

}  // namespace das
