// Logging: one spdlog logger per process, named after the node ("control", "worker-1"), so
// every line says which node wrote it. The level comes from LOG_LEVEL, or RUST_LOG as an alias
// (its first bare level, e.g. "info" in "info,foo=debug"); the default is "info".
#pragma once

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

}  // namespace das
