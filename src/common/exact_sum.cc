#include "common/exact_sum.h"

#include <algorithm>
#include <bit>
#include <cassert>
#include <cmath>
#include <limits>

namespace das {
namespace {

// One unit of the state's integer is 2^kUnitExponent, the smallest subnormal.
constexpr int kUnitExponent = -1074;
constexpr int kFractionBits = 52;  // a double's stored mantissa bits, without the implicit one
constexpr int kDoubleDigits = 53;  // significant bits of a double, with the implicit one
// Divide() keeps this many bits below the 2^-1074 place so that the rounding (guard) bit of even
// a subnormal quotient is an exact bit of the integer quotient, and the remainder only sticky.
constexpr int kDivideGuardBits = 2;

__extension__ using Uint128 = unsigned __int128;

// A magnitude, one limb wider than the state: the magnitude of the most negative state (2^2175)
// and Divide()'s guard bits on top of a full-width magnitude both need the spare limb.
constexpr std::size_t kWideLimbs = ExactSum::kLimbs + 1;
using Wide = std::array<uint64_t, kWideLimbs>;

Wide MagnitudeOf(const std::array<uint64_t, ExactSum::kLimbs>& limbs, bool negative) {
  Wide wide{};
  std::copy(limbs.begin(), limbs.end(), wide.begin());
  if (!negative) return wide;
  wide.back() = ~uint64_t{0};  // sign extension, so that the negation below is exact
  uint64_t carry = 1;
  for (uint64_t& limb : wide) {
    limb = ~limb + carry;
    carry = (carry != 0 && limb == 0) ? 1 : 0;
  }
  return wide;
}

// The index of the highest set bit, or -1 for zero.
int HighestBit(const Wide& wide) {
  for (std::size_t i = kWideLimbs; i-- > 0;) {
    if (wide[i] != 0) return static_cast<int>(i * 64) + 63 - std::countl_zero(wide[i]);
  }
  return -1;
}

// The 64 bits starting at bit `pos` (zeros past the top). REQUIRES: pos >= 0.
uint64_t BitsFrom(const Wide& wide, int pos) {
  const std::size_t i = static_cast<std::size_t>(pos) / 64;
  const int shift = pos % 64;
  const uint64_t low = i < kWideLimbs ? wide[i] >> shift : 0;
  const uint64_t high = (shift != 0 && i + 1 < kWideLimbs) ? wide[i + 1] << (64 - shift) : 0;
  return low | high;
}

// Whether any of the bits below bit `pos` is set. REQUIRES: 0 <= pos < 64 * kWideLimbs.
bool AnyBitBelow(const Wide& wide, int pos) {
  const std::size_t full = static_cast<std::size_t>(pos) / 64;
  for (std::size_t i = 0; i < full; ++i) {
    if (wide[i] != 0) return true;
  }
  const int rest = pos % 64;
  return rest != 0 && (wide[full] & ((uint64_t{1} << rest) - 1)) != 0;
}

// The one rounding routine of Value() and Divide(): the double nearest to
// (magnitude + f) * 2^unit_exponent, ties to even, negated when `negative`, where f is an unknown
// fraction in [0, 1) that is nonzero exactly when `sticky`.
// REQUIRES: unit_exponent <= kUnitExponent, so that the lowest bit a double can keep (2^-1074 or
// above) is an integer bit of `magnitude`, and f can only decide a tie.
double RoundToDouble(const Wide& magnitude, int unit_exponent, bool sticky, bool negative) {
  const double sign = negative ? -1.0 : 1.0;
  const int high = HighestBit(magnitude);
  if (high < 0 && !sticky) return 0.0;
  if (high + unit_exponent > std::numeric_limits<double>::max_exponent - 1) {
    return sign * std::numeric_limits<double>::infinity();
  }
  // The lowest bit kept: 53 bits below the top for a normal result, the 2^-1074 place for a
  // subnormal one. Everything above it fits in 53 bits, so the 64-bit window holds it all.
  const int low = std::max(high - (kDoubleDigits - 1), kUnitExponent - unit_exponent);
  uint64_t kept = BitsFrom(magnitude, low);
  const bool guard = low > 0 && (BitsFrom(magnitude, low - 1) & 1) != 0;
  sticky = sticky || (low > 1 && AnyBitBelow(magnitude, low - 1));
  if (guard && (sticky || (kept & 1) != 0)) ++kept;
  // kept <= 2^53 converts exactly, and ldexp is exact for a representable result; a round-up to
  // 2^1024 overflows to infinity, as IEEE requires.
  return sign * std::ldexp(static_cast<double>(kept), low + unit_exponent);
}

// REQUIRES: 0 < bits < 64, and the top `bits` bits of `wide` are zero.
void ShiftLeft(Wide& wide, int bits) {
  for (std::size_t i = kWideLimbs; i-- > 1;) {
    wide[i] = (wide[i] << bits) | (wide[i - 1] >> (64 - bits));
  }
  wide[0] <<= bits;
}

// Replaces `wide` by its quotient by `divisor` and returns the remainder. REQUIRES: divisor > 0.
uint64_t DivideInPlace(Wide& wide, uint64_t divisor) {
  uint64_t remainder = 0;
  for (std::size_t i = kWideLimbs; i-- > 0;) {
    const Uint128 current = (static_cast<Uint128>(remainder) << 64) | wide[i];
    wide[i] = static_cast<uint64_t>(current / divisor);  // < 2^64 since remainder < divisor
    remainder = static_cast<uint64_t>(current % divisor);
  }
  return remainder;
}

// Whether the top byte of a non-empty little-endian two's complement string only repeats the sign
// of the bytes below it (the empty string being zero), so that dropping it keeps the value.
bool TopByteIsRedundant(std::string_view bytes) {
  const bool rest_negative =
      bytes.size() >= 2 && (static_cast<unsigned char>(bytes[bytes.size() - 2]) & 0x80) != 0;
  return static_cast<unsigned char>(bytes.back()) == (rest_negative ? 0xff : 0x00);
}

}  // namespace

void ExactSum::Add(double x) {
  assert(std::isfinite(x));
  const uint64_t bits = std::bit_cast<uint64_t>(x);
  const int biased_exponent = static_cast<int>((bits >> kFractionBits) & 0x7ff);
  uint64_t mantissa = bits & ((uint64_t{1} << kFractionBits) - 1);
  if (biased_exponent != 0) mantissa |= uint64_t{1} << kFractionBits;
  if (mantissa == 0) return;
  // |x| = mantissa * 2^(max(biased_exponent, 1) - 1075) (subnormals share the exponent of the
  // smallest normals), which is mantissa << offset in units of 2^-1074.
  const int offset = std::max(biased_exponent, 1) - 1;
  const std::size_t limb = static_cast<std::size_t>(offset) / 64;
  const int shift = offset % 64;
  const uint64_t low = mantissa << shift;
  const uint64_t high = shift == 0 ? 0 : mantissa >> (64 - shift);
  if ((bits >> 63) != 0) {
    SubtractAt(limb, low, high);
  } else {
    AddAt(limb, low, high);
  }
}

void ExactSum::AddAt(std::size_t limb, uint64_t low, uint64_t high) {
  limbs_[limb] += low;
  const uint64_t addend = high + (limbs_[limb] < low ? 1 : 0);  // no wrap: high < 2^63
  limbs_[limb + 1] += addend;
  bool carry = limbs_[limb + 1] < addend;
  for (std::size_t i = limb + 2; carry && i < kLimbs; ++i) carry = ++limbs_[i] == 0;
}

void ExactSum::SubtractAt(std::size_t limb, uint64_t low, uint64_t high) {
  const bool borrow_low = limbs_[limb] < low;
  limbs_[limb] -= low;
  const uint64_t subtrahend = high + (borrow_low ? 1 : 0);  // no wrap: high < 2^63
  bool borrow = limbs_[limb + 1] < subtrahend;
  limbs_[limb + 1] -= subtrahend;
  for (std::size_t i = limb + 2; borrow && i < kLimbs; ++i) borrow = limbs_[i]-- == 0;
}

void ExactSum::Merge(const ExactSum& other) {
  uint64_t carry = 0;
  for (std::size_t i = 0; i < kLimbs; ++i) {
    const uint64_t partial = limbs_[i] + other.limbs_[i];
    const uint64_t total = partial + carry;
    carry = (partial < other.limbs_[i] || total < partial) ? 1 : 0;
    limbs_[i] = total;
  }
}

double ExactSum::Value() const {
  const bool negative = Sign() < 0;
  return RoundToDouble(MagnitudeOf(limbs_, negative), kUnitExponent, false, negative);
}

double ExactSum::Divide(uint64_t count) const {
  assert(count > 0);
  const bool negative = Sign() < 0;
  Wide magnitude = MagnitudeOf(limbs_, negative);
  ShiftLeft(magnitude, kDivideGuardBits);
  const uint64_t remainder = DivideInPlace(magnitude, count);
  return RoundToDouble(magnitude, kUnitExponent - kDivideGuardBits, remainder != 0, negative);
}

bool ExactSum::IsZero() const {
  return std::all_of(limbs_.begin(), limbs_.end(), [](uint64_t limb) { return limb == 0; });
}

int ExactSum::Sign() const {
  if ((limbs_.back() >> 63) != 0) return -1;
  return IsZero() ? 0 : 1;
}

std::string ExactSum::ToBytes() const {
  std::string bytes(kMaxBytes, '\0');
  for (std::size_t i = 0; i < kMaxBytes; ++i) {
    bytes[i] = static_cast<char>(limbs_[i / 8] >> (8 * (i % 8)));
  }
  while (!bytes.empty() && TopByteIsRedundant(bytes)) bytes.pop_back();
  return bytes;
}

std::optional<ExactSum> ExactSum::FromBytes(std::string_view bytes) {
  if (bytes.size() > kMaxBytes) return std::nullopt;
  if (!bytes.empty() && TopByteIsRedundant(bytes)) return std::nullopt;
  const bool negative = !bytes.empty() && (static_cast<unsigned char>(bytes.back()) & 0x80) != 0;
  std::string extended(kMaxBytes, negative ? '\xff' : '\0');
  std::copy(bytes.begin(), bytes.end(), extended.begin());
  ExactSum sum;
  for (std::size_t i = 0; i < kMaxBytes; ++i) {
    sum.limbs_[i / 8] |= uint64_t{static_cast<unsigned char>(extended[i])} << (8 * (i % 8));
  }
  return sum;
}

}  // namespace das
