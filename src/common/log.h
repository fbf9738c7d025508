// Logging: one spdlog logger per process, named after the node ("control", "worker-1"), so
// every line says which node wrote it. The level comes from LOG_LEVEL, or RUST_LOG as an alias
// (its first bare level, e.g. "info" in "info,foo=debug"); the default is "info".
//
// The format comes from LOG_FORMAT: "text" (the default; one line per event:
// `2026-12-02T03:22:40.511 info [worker-1] {shard=3 term=2} message`) or "json" (one JSON
// object per line, for collectors: {"time":"2026-12-02T03:22:40.511Z","level":"info",
// "node":"worker-1","shard":3,"term":2,"message":"..."}). Shard and term are the thread's log
// context (LogContext), present on a line only when set: the raft loop sets both around a
// group's callbacks, a shard replica's store threads set the shard.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include <spdlog/spdlog.h>

#include "common/mutex.h"

namespace das {

// Parses "trace", "debug", "info", "warn"/"warning", "error", "critical", "off".
std::optional<spdlog::level::level_enum> ParseLogLevel(std::string_view text);

// Level from LOG_LEVEL / RUST_LOG, or `fallback` when neither names one.
spdlog::level::level_enum LogLevelFromEnvironment(spdlog::level::level_enum fallback);

// The level a binary runs at: `flag` (--log-level) when given, else LOG_LEVEL / RUST_LOG, else
// info. nullopt when `flag` names no level.
std::optional<spdlog::level::level_enum> ResolveLogLevel(std::string_view flag);

enum class LogFormat { kText, kJson };
// Parses "text" or "json" (any case).
std::optional<LogFormat> ParseLogFormat(std::string_view text);
// From LOG_FORMAT: kText when unset or empty; nullopt when it names no format.
std::optional<LogFormat> LogFormatFromEnvironment();

// Installs the default logger for this process, writing to stderr with the node name.
// On SIGSEGV, SIGBUS, SIGFPE, SIGILL and SIGABRT (an abort, also glibc's on a corrupted heap):
// the stack (addresses, with symbols where glibc finds them) written to stderr, then the
// default action (the process dies of the same signal), so a crash in a test's or an
// operator's log says where. Call once, early in main.
void InstallCrashHandler();

void InitLogging(const std::string& node_name, spdlog::level::level_enum level,
                 LogFormat format = LogFormat::kText);

// The shard (and term) this thread's log lines are about, for as long as the object lives; the
// previous context comes back when it is destroyed. Not copyable; stack use only.
class LogContext {
 public:
  explicit LogContext(uint32_t shard, std::optional<uint64_t> term = std::nullopt);
  ~LogContext();
  LogContext(const LogContext&) = delete;
  LogContext& operator=(const LogContext&) = delete;

  struct Fields {
    std::optional<uint32_t> shard;
    std::optional<uint64_t> term;
  };
  // This thread's current context (empty fields: none).
  static Fields Current();

 private:
  Fields previous_;
};

// One log line as LOG_FORMAT=json writes it (without the newline), for tests.
std::string FormatJsonLine(std::string_view time_utc, std::string_view level, std::string_view node,
                           const LogContext::Fields& context, std::string_view message);

// For lines a peer can make us write as often as it likes (refused connections): one line per
// key (the peer's address) per `every`; the lines held back meanwhile are counted, and the next
// line let through says how many there were. At most kMaxKeys keys are remembered.
// Thread-safe.
class LogThrottle {
 public:
  static constexpr size_t kMaxKeys = 1024;
  explicit LogThrottle(std::chrono::steady_clock::duration every) : every_(every) {}

  // Whether to write the line for `key` at `now`; if so, the lines held back for it since the
  // last one written.
  std::optional<uint64_t> Admit(std::string_view key, std::chrono::steady_clock::time_point now);

 private:
  struct Entry {
    std::chrono::steady_clock::time_point written;
    uint64_t held_back = 0;
  };
  const std::chrono::steady_clock::duration every_;
  Mutex mu_;
  std::map<std::string, Entry, std::less<>> entries_ GUARDED_BY(mu_);
};

}  // namespace das
