#include "common/log.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include <spdlog/sinks/stdout_sinks.h>

namespace das {

std::optional<spdlog::level::level_enum> ParseLogLevel(std::string_view text) {
  std::string s(text);
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  if (s == "trace") return spdlog::level::trace;
  if (s == "debug") return spdlog::level::debug;
  if (s == "info") return spdlog::level::info;
  if (s == "warn" || s == "warning") return spdlog::level::warn;
  if (s == "error") return spdlog::level::err;
  if (s == "critical") return spdlog::level::critical;
  if (s == "off") return spdlog::level::off;
  return std::nullopt;
}

spdlog::level::level_enum LogLevelFromEnvironment(spdlog::level::level_enum fallback) {
  if (const char* v = std::getenv("LOG_LEVEL"); v != nullptr) {
    if (auto level = ParseLogLevel(v)) return *level;
  }
  if (const char* v = std::getenv("RUST_LOG"); v != nullptr) {
    // RUST_LOG is a list of directives; the bare one ("info" in "info,hyper=warn") is the level.
    std::string_view rest(v);
    while (!rest.empty()) {
      size_t comma = rest.find(',');
      std::string_view item = rest.substr(0, comma);
      if (item.find('=') == std::string_view::npos) {
        if (auto level = ParseLogLevel(item)) return *level;
      }
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  return fallback;
}

std::optional<spdlog::level::level_enum> ResolveLogLevel(std::string_view flag) {
  if (flag.empty()) return LogLevelFromEnvironment(spdlog::level::info);
  return ParseLogLevel(flag);
}

void InitLogging(const std::string& node_name, spdlog::level::level_enum level) {
  auto logger = spdlog::stderr_logger_mt(node_name);
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%n] %v");
  logger->set_level(level);
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(std::move(logger));
}

std::optional<uint64_t> LogThrottle::Admit(std::string_view key,
                                           std::chrono::steady_clock::time_point now) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) {
    if (entries_.size() >= kMaxKeys) entries_.clear();  // many peers: forget, never grow
    entries_.emplace(std::string(key), Entry{now, 0});
    return 0;
  }
  if (now - it->second.written < every_) {
    ++it->second.held_back;
    return std::nullopt;
  }
  const uint64_t held_back = it->second.held_back;
  it->second = Entry{now, 0};
  return held_back;
}

}  // namespace das
