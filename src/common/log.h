// Logging: one spdlog logger per process, named after the node ("control", "worker-1"), so
// every line says which node wrote it. The level comes from LOG_LEVEL, or RUST_LOG as an alias
// (its first bare level, e.g. "info" in "info,foo=debug"); the default is "info".
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include <spdlog/spdlog.h>

namespace das {

// Parses "trace", "debug", "info", "warn"/"warning", "error", "critical", "off".
std::optional<spdlog::level::level_enum> ParseLogLevel(std::string_view text);

// Level from LOG_LEVEL / RUST_LOG, or `fallback` when neither names one.
spdlog::level::level_enum LogLevelFromEnvironment(spdlog::level::level_enum fallback);

// The level a binary runs at: `flag` (--log-level) when given, else LOG_LEVEL / RUST_LOG, else
// info. nullopt when `flag` names no level.
std::optional<spdlog::level::level_enum> ResolveLogLevel(std::string_view flag);

// Installs the default logger for this process, writing to stderr with the node name.
void InitLogging(const std::string& node_name, spdlog::level::level_enum level);

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
  std::mutex mu_;
  std::map<std::string, Entry, std::less<>> entries_;
};

}  // namespace das
