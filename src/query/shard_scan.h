// The pieces of a shard query (query/shard_query.h) shared by its parts: the read of the rows
// a query's filters select, as one prepared statement with every value bound (never pasted into
// the SQL) and streamed chunk by chunk under the query's deadline; the bucket of an ingest time;
// the exact per-bucket (or per-group) accumulator.
// Thread-safety: one thread at a time per connection.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include "common/exact_sum.h"
#include "common/quantile.h"
#include "common/status.h"
#include "das/v1/internal.pb.h"
#include "storage/duckdb_util.h"

namespace das::query {

// Hashes std::string and std::string_view alike, so that a key read from a chunk finds its
// entry without a copy (heterogeneous lookup: use with std::equal_to<>).
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

// What every part of one shard query reads with.
struct ScanContext {
  duckdb_connection conn = nullptr;
  uint32_t replica = 0;  // the store read (Store::replica): its rows only
  const internal::v1::ShardQuery* query = nullptr;
  int64_t as_of_us = 0;  // rows with ingest_ts <= as_of_us only
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
};

// floor(ts_ms / width) * width of an ingest time in microseconds (0 when width is 0).
int64_t BucketOf(int64_t ts_us, int64_t width_ms);

// kDeadlineExceeded once `context.deadline` has passed.
Status CheckDeadline(const ScanContext& context);

// kInvalidArgument: the answer would have more than `cap` rows.
Status TooManyRows(uint32_t cap);

// The rows of one bucket or group. min and max are kept in OrderedBits' order, so that -0.0
// sorts below +0.0 here exactly as in the quantile probes.
struct Acc {
  uint64_t count = 0;
  ExactSum sum;
  uint64_t min = std::numeric_limits<uint64_t>::max();
  uint64_t max = 0;

  void Add(double value) {
    ++count;
    sum.Add(value);
    const uint64_t key = OrderedBits(value);
    min = key < min ? key : min;
    max = key > max ? key : max;
  }
};

// The filters of `query` as SQL conditions over a replica's rows table
// (storage::RowsTable), parameters numbered from $first.
std::string WhereSql(const internal::v1::ShardQuery& query, int first = 1);
// Binds the parameters of WhereSql(query, first).
Status BindWhere(duckdb_prepared_statement stmt, const internal::v1::ShardQuery& query,
                 int64_t as_of_us, int first = 1);

// One pass over the selected rows: value, then the ingest time and the key when asked for.
class Scan {
 public:
  struct Columns {
    bool ts = false;
    bool key = false;
  };
  static Result<Scan> Start(const ScanContext& context, Columns columns);

  // Calls `row(value, ts_us, key)` for every row (ts 0 and key empty when not read) until it
  // returns false. True when every row was read; kDeadlineExceeded past the deadline; kInternal
  // when DuckDB failed on the way.
  template <typename RowFn>
  Result<bool> ForEach(RowFn&& row) {
    const size_t ts_col = 1, key_col = columns_.ts ? 2 : 1;
    while (std::optional<storage::duck::Chunk> chunk = result_.NextChunk()) {
      RETURN_IF_ERROR(CheckDeadline(context_));
      const size_t n = chunk->size();
      const double* values = chunk->Data<double>(0);
      const duckdb_timestamp* ts = columns_.ts ? chunk->Data<duckdb_timestamp>(ts_col) : nullptr;
      for (size_t i = 0; i < n; ++i) {
        if (!row(values[i], ts != nullptr ? ts[i].micros : 0,
                 columns_.key ? chunk->String(key_col, i) : std::string_view())) {
          return false;
        }
      }
    }
    RETURN_IF_ERROR(result_.Error("scan for a query"));
    return true;
  }

 private:
  Scan(const ScanContext& context, storage::duck::PreparedHandle stmt, Columns columns)
      : context_(context), stmt_(std::move(stmt)), columns_(columns) {}

  ScanContext context_;
  storage::duck::PreparedHandle stmt_;  // outlives result_, which streams from it
  Columns columns_;
  storage::duck::QueryResult result_;
};

}  // namespace das::query
