#include "common/log.h"

#include <execinfo.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <memory>

#include <spdlog/details/log_msg.h>
#include <spdlog/formatter.h>
#include <spdlog/pattern_formatter.h>
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

std::optional<LogFormat> ParseLogFormat(std::string_view text) {
  std::string s(text);
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  if (s == "text") return LogFormat::kText;
  if (s == "json") return LogFormat::kJson;
  return std::nullopt;
}

std::optional<LogFormat> LogFormatFromEnvironment() {
  const char* v = std::getenv("LOG_FORMAT");
  if (v == nullptr || *v == '\0') return LogFormat::kText;
  return ParseLogFormat(v);
}

namespace {

thread_local LogContext::Fields current_context;

// Appends `text` as the contents of a JSON string: quotes, backslashes and control characters
// escaped, and every byte that is not part of valid UTF-8 replaced by U+FFFD.
void AppendJsonString(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      if (c == '"' || c == '\\') {
        out += '\\';
        out += static_cast<char>(c);
      } else if (c == '\n') {
        out += "\\n";
      } else if (c == '\t') {
        out += "\\t";
      } else if (c == '\r') {
        out += "\\r";
      } else if (c < 0x20 || c == 0x7f) {
        out += "\\u00";
        out += kHex[c >> 4];
        out += kHex[c & 0xf];
      } else {
        out += static_cast<char>(c);
      }
      ++i;
      continue;
    }
    // The length of a well-formed sequence starting here (0: not one).
    size_t n = 0;
    if (c >= 0xc2 && c <= 0xdf) n = 2;
    if (c >= 0xe0 && c <= 0xef) n = 3;
    if (c >= 0xf0 && c <= 0xf4) n = 4;
    bool valid = n > 0 && i + n <= text.size();
    for (size_t k = 1; valid && k < n; ++k) {
      valid = (static_cast<unsigned char>(text[i + k]) & 0xc0) == 0x80;
    }
    if (valid && n >= 3) {
      const auto c1 = static_cast<unsigned char>(text[i + 1]);
      if (c == 0xe0 && c1 < 0xa0) valid = false;   // overlong
      if (c == 0xed && c1 >= 0xa0) valid = false;  // a surrogate
      if (c == 0xf0 && c1 < 0x90) valid = false;   // overlong
      if (c == 0xf4 && c1 >= 0x90) valid = false;  // above U+10FFFF
    }
    if (valid) {
      out.append(text.substr(i, n));
      i += n;
    } else {
      out += "\xef\xbf\xbd";
      ++i;
    }
  }
}

// "{shard=3 term=2} " for a line with a context, "" without.
std::string TextContext(const LogContext::Fields& context) {
  if (!context.shard && !context.term) return {};
  std::string out = "{";
  if (context.shard) {
    out += "shard=";
    out += std::to_string(*context.shard);
  }
  if (context.term) {
    if (context.shard) out += ' ';
    out += "term=";
    out += std::to_string(*context.term);
  }
  out += "} ";
  return out;
}

class ContextFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg&, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    const std::string text = TextContext(LogContext::Current());
    dest.append(text.data(), text.data() + text.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<ContextFlag>();
  }
};

class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const auto since_epoch = msg.time.time_since_epoch();
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
    const auto millis =
        std::chrono::duration_cast<std::chrono::milliseconds>(since_epoch - seconds).count();
    const std::time_t t = seconds.count();
    std::tm utc{};
    gmtime_r(&t, &utc);
    char time[96];
    std::snprintf(time, sizeof time, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900,
                  utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                  static_cast<int>(millis));
    const spdlog::string_view_t level = spdlog::level::to_string_view(msg.level);
    std::string line = FormatJsonLine(
        time, std::string_view(level.data(), level.size()),
        std::string_view(msg.logger_name.data(), msg.logger_name.size()), LogContext::Current(),
        std::string_view(msg.payload.data(), msg.payload.size()));
    line += '\n';
    dest.append(line.data(), line.data() + line.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }
};

}  // namespace

std::string FormatJsonLine(std::string_view time_utc, std::string_view level, std::string_view node,
                           const LogContext::Fields& context, std::string_view message) {
  std::string line = "{\"time\":\"";
  AppendJsonString(line, time_utc);
  line += "\",\"level\":\"";
  AppendJsonString(line, level);
  line += "\",\"node\":\"";
  AppendJsonString(line, node);
  line += '"';
  if (context.shard) {
    line += ",\"shard\":";
    line += std::to_string(*context.shard);
  }
  if (context.term) {
    line += ",\"term\":";
    line += std::to_string(*context.term);
  }
  line += ",\"message\":\"";
  AppendJsonString(line, message);
  line += "\"}";
  return line;
}

LogContext::LogContext(uint32_t shard, std::optional<uint64_t> term) : previous_(current_context) {
  current_context = Fields{shard, term};
}

LogContext::~LogContext() { current_context = previous_; }

LogContext::Fields LogContext::Current() { return current_context; }

namespace {

void OnCrash(int signal) {
  static constexpr char kHeader[] = "fatal signal; stack:\n";
  ssize_t ignored = ::write(STDERR_FILENO, kHeader, sizeof(kHeader) - 1);
  (void)ignored;
  void* frames[64];
  const int n = ::backtrace(frames, 64);
  ::backtrace_symbols_fd(frames, n, STDERR_FILENO);
  ::signal(signal, SIG_DFL);
  ::raise(signal);
}

}  // namespace

void InstallCrashHandler() {
  void* warm[1];
  (void)::backtrace(warm, 1);  // loads libgcc now, not inside the handler
  for (int signal : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) ::signal(signal, OnCrash);
}

void InitLogging(const std::string& node_name, spdlog::level::level_enum level, LogFormat format) {
  auto logger = spdlog::stderr_logger_mt(node_name);
  if (format == LogFormat::kJson) {
    logger->set_formatter(std::make_unique<JsonFormatter>());
  } else {
    auto formatter = std::make_unique<spdlog::pattern_formatter>();
    formatter->add_flag<ContextFlag>('*').set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%n] %*%v");
    logger->set_formatter(std::move(formatter));
  }
  logger->set_level(level);
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(std::move(logger));
}

std::optional<uint64_t> LogThrottle::Admit(std::string_view key,
                                           std::chrono::steady_clock::time_point now) {
  MutexLock lock(mu_);
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
