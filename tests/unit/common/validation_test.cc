#include "common/validation.h"

#include <cmath>
#include <limits>
#include <string>

#include <gtest/gtest.h>

namespace das {
namespace {

TEST(IsValidUtf8Test, AcceptsWellFormed) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain ascii"));
  EXPECT_TRUE(IsValidUtf8("ключ"));
  EXPECT_TRUE(IsValidUtf8("\xF0\x9F\x98\x80"));  // U+1F600
  EXPECT_TRUE(IsValidUtf8(std::string("a\0b", 3)));
}

TEST(IsValidUtf8Test, RejectsMalformed) {
  EXPECT_FALSE(IsValidUtf8("\xFF"));
  EXPECT_FALSE(IsValidUtf8("\x80"));              // lone continuation byte
  EXPECT_FALSE(IsValidUtf8("\xC0\xAF"));          // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xE0\x80\xAF"));      // overlong 3-byte
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));      // surrogate U+D800
  EXPECT_FALSE(IsValidUtf8("\xF4\x90\x80\x80"));  // U+110000
  EXPECT_FALSE(IsValidUtf8("\xE2\x82"));          // truncated
}

TEST(ValidateRowTest, KeyLengthBoundaries) {
  EXPECT_EQ(ValidateRow("", 1).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(ValidateRow("k", 1).ok());
  EXPECT_TRUE(ValidateRow(std::string(1024, 'k'), 1).ok());
  Status too_long = ValidateRow(std::string(1025, 'k'), 1);
  EXPECT_EQ(too_long.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(too_long.message(), "partition_key is 1025 bytes; the limit is 1024");
}

TEST(ValidateRowTest, ValueMustBeFinite) {
  EXPECT_TRUE(ValidateRow("k", -0.0).ok());
  EXPECT_TRUE(ValidateRow("k", std::numeric_limits<double>::max()).ok());
  EXPECT_EQ(ValidateRow("k", std::nan("")).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateRow("k", INFINITY).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateRow("k", -INFINITY).message(), "value is not a finite number");
}

TEST(ValidateRowTest, ValueIsRequired) {
  Status missing = ValidateRow("k", std::nullopt);
  EXPECT_EQ(missing.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(missing.message(), "value is required");
  EXPECT_TRUE(ValidateRow("k", 0.0).ok());
}

TEST(ValidateRowTest, KeyMustBeUtf8) {
  EXPECT_EQ(ValidateRow("\xFF", 1).message(), "partition_key is not valid UTF-8");
}

TEST(ValidateIdempotencyKeyTest, Limits) {
  EXPECT_TRUE(ValidateIdempotencyKey("").ok());
  EXPECT_TRUE(ValidateIdempotencyKey(std::string(256, 'i')).ok());
  EXPECT_EQ(ValidateIdempotencyKey(std::string(257, 'i')).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateIdempotencyKey("\xC0\xAF").code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace das
