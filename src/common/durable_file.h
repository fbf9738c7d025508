// Small files that must survive a crash whole or not at all (a node's topology, its cluster
// state): written to a temporary file, fsynced, renamed over the old one, and the directory
// fsynced, so a reader sees the old contents or the new, never a torn mix.
// Thread-safety: none needed (plain functions); callers serialise writes to one path.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/status.h"

namespace das {

// kUnavailable with the reason when any step fails (the old contents then stay).
Status WriteFileDurably(const std::string& path, const std::string& contents);
// Makes a file written elsewhere durable under its final name: fsyncs `from`, renames it to
// `to` (replacing it) and fsyncs the directory. Both in one directory.
Status RenameDurably(const std::string& from, const std::string& to);
// XXH3-64 of the file's bytes, read in chunks.
Result<uint64_t> HashFile(const std::string& path);
// nullopt when the file does not exist; kUnavailable when it cannot be read.
Result<std::optional<std::string>> ReadFileIfExists(const std::string& path);

}  // namespace das
