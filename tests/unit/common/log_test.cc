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

// One line per key per interval, on a clock the test sets: the lines held back are counted and
// reported with the next one let through; keys do not hold each other back.
TEST(LogThrottleTest, OneLineAKeyAnIntervalWithTheCountHeldBack) {
  using std::chrono::seconds;
  LogThrottle throttle(seconds(10));
  const std::chrono::steady_clock::time_point t0{seconds(1000)};
  EXPECT_EQ(throttle.Admit("10.0.0.1", t0), 0u);
  EXPECT_EQ(throttle.Admit("10.0.0.1", t0 + seconds(1)), std::nullopt);
  EXPECT_EQ(throttle.Admit("10.0.0.1", t0 + seconds(9)), std::nullopt);
  EXPECT_EQ(throttle.Admit("10.0.0.2", t0 + seconds(9)), 0u);
  EXPECT_EQ(throttle.Admit("10.0.0.1", t0 + seconds(10)), 2u);
  EXPECT_EQ(throttle.Admit("10.0.0.1", t0 + seconds(21)), 0u);
}

// It never remembers more than kMaxKeys keys: a flood of addresses cannot grow it.
TEST(LogThrottleTest, ManyKeysAreForgottenRatherThanKept) {
  LogThrottle throttle(std::chrono::seconds(10));
  const std::chrono::steady_clock::time_point t0{std::chrono::seconds(1000)};
  for (size_t i = 0; i < LogThrottle::kMaxKeys; ++i) {
    EXPECT_EQ(throttle.Admit("peer-" + std::to_string(i), t0), 0u);
  }
  EXPECT_EQ(throttle.Admit("peer-0", t0), std::nullopt);
  EXPECT_EQ(throttle.Admit("one-too-many", t0), 0u);  // forgets the others
  EXPECT_EQ(throttle.Admit("peer-0", t0), 0u);
}

}  // namespace
}  // namespace das
