// An exact accumulator of finite doubles (a Kulisch-style fixed-point "superaccumulator"). It
// exists because a floating-point running sum can overflow and never recover: 3 x 1e308 overflowed
// to infinity and a Neumaier compensation then turned it into NaN forever. ExactSum never rounds;
// only Value() and Divide() round, once, to the nearest double.
//
// Representation: a two's complement integer of kLimbs 64-bit limbs (little-endian limb order)
// counting units of 2^-1074, the smallest subnormal, so every finite double is an integer number of
// units. Magnitudes of finite doubles need 2098 bits; 64 bits of headroom let it hold the sum of
// 2^64 values of magnitude up to DBL_MAX, plus one sign bit: 34 limbs (2176 bits). Beyond that
// headroom it wraps around (it is not checked on the hot path).
//
// Thread-safety: a value type, not synchronized. Copyable and movable.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace das {

class ExactSum {
 public:
  static constexpr std::size_t kLimbs = 34;
  // The longest encoding ToBytes() produces and FromBytes() accepts.
  static constexpr std::size_t kMaxBytes = kLimbs * 8;

  // The empty sum, exactly zero.
  ExactSum() = default;

  // Adds x exactly. Constant time in the common case (no loop over all limbs, no allocation): it
  // runs once per inserted row. +0 and -0 add nothing.
  // REQUIRES: x is finite.
  void Add(double x);

  // Adds the exact sum held by `other`.
  void Merge(const ExactSum& other);

  // The exact sum correctly rounded to the nearest double, ties to even. +/-infinity only when the
  // exact sum rounds outside the double range (IEEE overflow rule: |sum| >= DBL_MAX + half an ulp
  // of DBL_MAX); finite again once later additions bring the sum back. An exact zero is +0.0.
  double Value() const;

  // The exact sum divided by count, correctly rounded to the nearest double, ties to even: the
  // average of `count` rows. Correct also when the sum itself is outside the double range and when
  // the quotient is subnormal.
  // REQUIRES: count > 0.
  double Divide(uint64_t count) const;

  bool IsZero() const;
  // -1, 0 or 1: the sign of the exact sum.
  int Sign() const;

  // Wire format (it must never change once shipped: workers and the control node of different
  // versions exchange it). The state's integer (units of 2^-1074) as little-endian two's complement
  // bytes, trimmed of high bytes that only repeat the sign of the byte below them: the shortest
  // such encoding, so it is canonical (equal sums have equal bytes). Zero is the empty string;
  // 2^-1074 is
  // "\x01", -2^-1074 is "\xff", 128 x 2^-1074 is "\x80\x00". At most kMaxBytes bytes.
  std::string ToBytes() const;
  // The inverse of ToBytes(). nullopt when `bytes` is longer than kMaxBytes (it would not fit in
  // the accumulator) or not canonical (a redundant sign-extension byte on top).
  static std::optional<ExactSum> FromBytes(std::string_view bytes);

  // True when both hold the same exact sum.
  bool operator==(const ExactSum& other) const = default;

 private:
  // Add or subtract `low` at limb `limb` and `high` at limb + 1, propagating the carry or borrow
  // only as far as it goes. REQUIRES: limb + 1 < kLimbs, high < 2^63.
  void AddAt(std::size_t limb, uint64_t low, uint64_t high);
  void SubtractAt(std::size_t limb, uint64_t low, uint64_t high);

  std::array<uint64_t, kLimbs> limbs_{};
};

}  // namespace das
