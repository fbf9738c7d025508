// Helpers for the public API of the control node (README, "API"): encoding requests in
// protobuf and JSON, decoding answers, expected aggregates, and keys placed on a given worker.
// All functions are thread-safe.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <google/protobuf/struct.pb.h>

#include "common/status.h"
#include "das/v1/das.pb.h"
#include "support/http_client.h"

namespace das::it {

inline constexpr char kProtobuf[] = "application/x-protobuf";
inline constexpr char kJson[] = "application/json";

enum class Encoding { kProtobuf, kJson };

struct TestRow {
  std::string key;
  double value;
};

// --- Placement (pinned: slot = XXH3_64(key) % 4096; shard s holds a contiguous range of the
// slots; its first replica, with --replication-factor 1 its only one, is on worker s % N) ---

// The worker (index) that holds `key` with --replication-factor 1 and `shards` shards.
int WorkerOf(std::string_view key, int num_workers, int shards = 16);
// `n` distinct keys "<prefix>-<i>" that land on worker `worker` of `num_workers`.
std::vector<std::string> KeysOnWorker(int worker, int num_workers, int n, std::string_view prefix);

// Replicated shards: slots [s * 4096 / S, (s + 1) * 4096 / S) form shard s.
int ShardOf(std::string_view key, int shards);
// One key "<prefix>-<i>" per shard, in shard order.
std::vector<std::string> KeyPerShard(int shards, std::string_view prefix);

// --- Encodings ---

// Protobuf InsertRequest, encoded by hand so that any key bytes (invalid UTF-8) and any double
// (NaN) go on the wire as given.
std::string EncodeInsert(std::string_view key, double value);
std::string EncodeBatch(const std::vector<TestRow>& rows, std::string_view idempotency_key);
// JSON bodies with the proto3 field names. A value is printed exactly ("%.17g"), non-finite
// values as the proto3 JSON strings "NaN", "Infinity", "-Infinity".
std::string JsonNumber(double value);
std::string JsonString(std::string_view s);
std::string InsertJson(std::string_view key, double value);
std::string BatchJson(const std::vector<TestRow>& rows, std::string_view idempotency_key);

// --- Requests to the control node ---

Result<HttpResponse> PostInsert(int port, std::string_view key, double value,
                                Encoding encoding = Encoding::kProtobuf);
Result<HttpResponse> PostBatch(int port, const std::vector<TestRow>& rows,
                               std::string_view idempotency_key,
                               Encoding encoding = Encoding::kProtobuf);

// An insert or batch that must answer 200 with an InsertResponse of `rows_written` in the
// request's encoding.
testing::AssertionResult InsertOk(int port, std::string_view key, double value,
                                  Encoding encoding = Encoding::kProtobuf);
testing::AssertionResult BatchOk(int port, const std::vector<TestRow>& rows,
                                 std::string_view idempotency_key, uint64_t rows_written,
                                 Encoding encoding = Encoding::kProtobuf);

// An answer that must be `status` with an ErrorResponse (status field equal, error text not
// empty) in `encoding`, or in either encoding (named by its Content-Type) when nullopt. On
// success, fills `error` when given.
testing::AssertionResult IsError(const Result<HttpResponse>& response, int status,
                                 std::optional<Encoding> encoding,
                                 v1::ErrorResponse* error = nullptr);

// GET /analytics (protobuf), decoded whatever the status (200 or 503 carry the same body).
struct Analytics {
  int http_status = 0;
  v1::AnalyticsResponse body;
  std::chrono::milliseconds elapsed{0};
};
Result<Analytics> GetAnalytics(int port,
                               std::chrono::milliseconds timeout = std::chrono::seconds(15));

// The aggregate a set of rows must produce.
class Expected {
 public:
  void Add(double value);
  void Add(const std::vector<TestRow>& rows);
  uint64_t count() const { return count_; }
  double sum() const { return sum_; }

  // Checks count, sum, average (sum / count), min and max exactly, and that average, min and
  // max are absent when count is 0.
  testing::AssertionResult Matches(const v1::AnalyticsResponse& got) const;

 private:
  uint64_t count_ = 0;
  double sum_ = 0;
  std::optional<double> min_;
  std::optional<double> max_;
};

// Checks the completeness fields of an analytics answer.
testing::AssertionResult Completeness(const Analytics& got, int http_status, bool is_partial,
                                      uint32_t total_nodes, uint32_t responding_nodes);

// The current count of the control node's /analytics (protobuf, complete answer required);
// nullopt (with a test failure recorded) otherwise.
std::optional<uint64_t> CurrentCount(int port);

// Parses a JSON object into a google.protobuf.Struct, so that tests see the exact field names
// and JSON types (proto3 JSON prints uint64 as strings).
Result<google::protobuf::Struct> ParseJsonObject(std::string_view json);
// The object's field names, sorted and comma-separated: "count,is_partial,sum".
std::string FieldNames(const google::protobuf::Struct& object);

}  // namespace das::it
