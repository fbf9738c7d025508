#include "common/log.h"

#include <cstdlib>

#include <gtest/gtest.h>

namespace das {
namespace {

TEST(ParseLogLevelTest, KnownNamesAnyCase) {
  EXPECT_EQ(ParseLogLevel("INFO"), spdlog::level::info);
  EXPECT_EQ(ParseLogLevel("warning"), spdlog::level::warn);
  EXPECT_EQ(ParseLogLevel("debug"), spdlog::level::debug);
  EXPECT_EQ(ParseLogLevel("loud"), std::nullopt);
}

TEST(LogLevelFromEnvironmentTest, LogLevelWinsOverRustLog) {
  setenv("LOG_LEVEL", "error", 1);
  setenv("RUST_LOG", "debug", 1);
  EXPECT_EQ(LogLevelFromEnvironment(spdlog::level::info), spdlog::level::err);
  unsetenv("LOG_LEVEL");
  unsetenv("RUST_LOG");
}

TEST(LogLevelFromEnvironmentTest, RustLogBareDirectiveIsTheLevel) {
  unsetenv("LOG_LEVEL");
  setenv("RUST_LOG", "hyper=warn,debug", 1);
  EXPECT_EQ(LogLevelFromEnvironment(spdlog::level::info), spdlog::level::debug);
  setenv("RUST_LOG", "hyper=warn", 1);
  EXPECT_EQ(LogLevelFromEnvironment(spdlog::level::info), spdlog::level::info);
  unsetenv("RUST_LOG");
}

}  // namespace
}  // namespace das
