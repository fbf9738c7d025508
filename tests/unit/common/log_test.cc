#include "common/log.h"

#include <cstdlib>
#include <optional>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "common/validation.h"

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

namespace das {
namespace {

TEST(LogFormatTest, TextOrJsonAnyCaseAndNothingElse) {
  EXPECT_EQ(ParseLogFormat("json"), LogFormat::kJson);
  EXPECT_EQ(ParseLogFormat("JSON"), LogFormat::kJson);
  EXPECT_EQ(ParseLogFormat("text"), LogFormat::kText);
  EXPECT_EQ(ParseLogFormat("logfmt"), std::nullopt);
  unsetenv("LOG_FORMAT");
  EXPECT_EQ(LogFormatFromEnvironment(), LogFormat::kText);
  setenv("LOG_FORMAT", "", 1);
  EXPECT_EQ(LogFormatFromEnvironment(), LogFormat::kText);
  setenv("LOG_FORMAT", "yaml", 1);
  EXPECT_EQ(LogFormatFromEnvironment(), std::nullopt);
  unsetenv("LOG_FORMAT");
}

TEST(JsonLineTest, FieldsInOrderShardAndTermOnlyWhenKnown) {
  EXPECT_EQ(FormatJsonLine("2026-12-02T03:22:40.511Z", "info", "worker-1", {}, "open"),
            R"({"time":"2026-12-02T03:22:40.511Z","level":"info","node":"worker-1",)"
            R"("message":"open"})");
  EXPECT_EQ(FormatJsonLine("t", "warning", "control", {3, 7}, "m"),
            R"({"time":"t","level":"warning","node":"control","shard":3,"term":7,"message":"m"})");
  EXPECT_EQ(FormatJsonLine("t", "info", "w", {0, std::nullopt}, "m"),
            R"({"time":"t","level":"info","node":"w","shard":0,"message":"m"})");
}

TEST(JsonLineTest, MessagesAreEscapedAndInvalidUtf8Replaced) {
  const std::string line = FormatJsonLine(
      "t", "info", "w", {}, "a \"q\" \\ \n\t\x01 \xc3\xa9 \xe2\x82\xac \xff \xc0\xaf end");
  EXPECT_EQ(line,
            "{\"time\":\"t\",\"level\":\"info\",\"node\":\"w\",\"message\":\"a \\\"q\\\" \\\\ "
            "\\n\\t\\u0001 \xc3\xa9 \xe2\x82\xac \xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd end\"}");
  // A truncated sequence at the end, and a surrogate, are replaced too.
  EXPECT_EQ(
      FormatJsonLine("t", "i", "w", {}, "\xe2\x82"),
      "{\"time\":\"t\",\"level\":\"i\",\"node\":\"w\",\"message\":\"\xef\xbf\xbd\xef\xbf\xbd\"}");
  EXPECT_EQ(FormatJsonLine("t", "i", "w", {}, "\xed\xa0\x80"),
            "{\"time\":\"t\",\"level\":\"i\",\"node\":\"w\",\"message\":"
            "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"}");
}

// Whatever bytes a message holds, its line is valid UTF-8 with no raw control character (so one
// JSON object per line, which a collector can parse).
TEST(JsonLineTest, AnyBytesGiveOneValidUtf8LineWithoutControlCharacters) {
  std::mt19937 random(20261202);
  for (int i = 0; i < 20000; ++i) {
    std::string message(random() % 24, '\0');
    for (char& c : message) {
      // Mostly the bytes that start or continue multi-byte sequences, and controls.
      const unsigned pick = random() % 4;
      c = static_cast<char>(pick == 0   ? random() % 0x20
                            : pick == 1 ? 0x80 + random() % 0x80
                                        : random() % 0x100);
    }
    const std::string line = FormatJsonLine("t", "info", "w", {1, 2}, message);
    ASSERT_TRUE(IsValidUtf8(line)) << i;
    for (char c : line) ASSERT_GE(static_cast<unsigned char>(c), 0x20) << i;
    ASSERT_TRUE(line.ends_with("\"}")) << i;
  }
}

TEST(LogContextTest, NestsAndRestoresAndIsPerThread) {
  EXPECT_FALSE(LogContext::Current().shard);
  {
    const LogContext outer(3, 7);
    EXPECT_EQ(LogContext::Current().shard, 3u);
    EXPECT_EQ(LogContext::Current().term, 7u);
    {
      const LogContext inner(5);
      EXPECT_EQ(LogContext::Current().shard, 5u);
      EXPECT_FALSE(LogContext::Current().term);
    }
    EXPECT_EQ(LogContext::Current().shard, 3u);
    std::optional<uint32_t> seen = 99;
    std::thread([&] { seen = LogContext::Current().shard; }).join();
    EXPECT_FALSE(seen);
  }
  EXPECT_FALSE(LogContext::Current().shard);
}

}  // namespace
}  // namespace das
