// Loader: sends a file's rows (RowSource) to the control node in batches (POST /insert/batch,
// protobuf), each with an idempotency key derived from the file's identity (a hash of its
// bytes), the columns read and the batch's position, so that a load interrupted at any point
// and run again with the same flags stores every row exactly once: the batches already stored
// are answered DUPLICATE by the cluster. The whole file is validated before the first batch is
// sent, so a bad row stores nothing.
//
// A batch that meets a 5xx or no answer is sent again (same key: never stored twice), with
// backoff, until --retry-for-s has passed without any batch succeeding; then the load fails as
// unreachable. A 4xx is final: its message is the load's error.
// Thread-safety: Load runs on the calling thread (and one I/O thread of its own).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "common/status.h"
#include "load/source.h"

namespace das::load {

struct Target {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;
  bool tls = false;
};

// Parses http://host[:port][/] or https://...; kInvalidArgument otherwise.
Result<Target> ParseUrl(const std::string& url);

struct LoadOptions {
  SourceOptions source;
  Target target;
  std::string tls_ca_file;  // https: the CA to verify the control node (empty: the system's)
  std::string token;        // sent as Authorization: Bearer (empty: none)
  size_t batch_rows = 10'000;
  size_t concurrency = 4;  // batches in flight
  std::chrono::milliseconds request_timeout{30'000};
  std::chrono::milliseconds retry_for{60'000};
};

struct LoadProgress {
  uint64_t rows_total = 0;  // known after validation
  uint64_t rows_done = 0;   // acknowledged
  uint64_t batches_done = 0;
  uint64_t retries = 0;
  std::chrono::steady_clock::duration elapsed{};  // since the first batch was sent
};

struct LoadSummary {
  uint64_t rows = 0;
  uint64_t batches = 0;
  uint64_t retries = 0;
  std::chrono::steady_clock::duration validate_time{};
  std::chrono::steady_clock::duration load_time{};
  std::string file_id;  // the hex hash naming the file in the idempotency keys
};

// Called on the I/O thread after each acknowledged batch, and once (rows_done 0) when sending
// starts.
using ProgressFn = std::function<void(const LoadProgress&)>;

// The idempotency key of batch `index` (0-based) of a file whose identity is `file_id`.
std::string BatchKey(const std::string& file_id, const LoadOptions& options, uint64_t index);
// The file's identity: XXH3-64 of its bytes and its size, in hex.
Result<std::string> FileIdentity(const std::string& path);

// Checks the file, then sends it. On an error, `*sending` (if given) says whether it came while
// sending (the cluster refused a batch or took none in time: a re-run resumes) rather than
// from the file (nothing was sent).
Result<LoadSummary> Load(const LoadOptions& options, const ProgressFn& progress,
                         bool* sending = nullptr);

}  // namespace das::load
