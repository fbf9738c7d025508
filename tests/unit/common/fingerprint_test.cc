#include "common/fingerprint.h"

#include <gtest/gtest.h>

namespace das {
namespace {

uint64_t Of(std::initializer_list<std::pair<std::string_view, double>> rows) {
  Fingerprinter f;
  for (const auto& [key, value] : rows) f.Add(key, value);
  return f.Finish();
}

// Stored on disk with every idempotency key: a change would turn retries into conflicts.
TEST(FingerprintTest, IsGolden) {
  EXPECT_EQ(Of({}), 0x2d06800538d394c2u);  // XXH3_64 of no bytes
  // XXH3_64 of 01000000 'a' 000000000000f03f 02000000 'bc' 000000000000e0bf, computed apart
  // from this code from the documented serialization.
  EXPECT_EQ(Of({{"a", 1.0}, {"bc", -0.5}}), 0x4950822f0ba77ceeu);
}

TEST(FingerprintTest, IsCanonical) {
  const uint64_t rows = Of({{"a", 1.0}, {"bc", -0.5}});
  // Length prefixes keep ("ab", "c") apart from ("a", "bc").
  EXPECT_NE(Of({{"ab", 1.0}, {"c", -0.5}}), rows);
  EXPECT_NE(Of({{"a", 1.0}}), rows);
  EXPECT_NE(Of({{"bc", -0.5}, {"a", 1.0}}), rows);  // order matters
  EXPECT_NE(Of({{"a", 0.0}}), Of({{"a", -0.0}}));
}

}  // namespace
}  // namespace das
