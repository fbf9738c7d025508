// The query API's input (README, "Queries"): a das.v1.Query from POST /v1/query (protobuf or
// its JSON mapping), or the filters of GET /analytics, checked against every limit and turned
// into a plan: the shards' part (das.internal.v1.ShardQuery) and what the control node merges.
// An unknown field or parameter is a 400 naming it; a value out of its range a 422 naming the
// field. Thread-safety: free functions without shared state.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/api_error.h"
#include "das/v1/das.pb.h"
#include "das/v1/internal.pb.h"
#include "http/message.h"
#include "http/query.h"

namespace das::query {

// Limits of a query (422 beyond them).
inline constexpr uint32_t kDefaultQueryLimit = 1000;  // groups per bucket
inline constexpr uint32_t kMaxQueryLimit = 100'000;
inline constexpr int kMaxQueryKeys = 10'000;  // entries of `keys`
inline constexpr int kMaxQuantiles = 100;
inline constexpr int64_t kMaxBucketWidthMs = 366LL * 24 * 3600 * 1000;
inline constexpr uint32_t kDefaultQueryMaxRows = 100'000;  // --query-max-rows

struct QueryPlan {
  // What every shard runs (shard, as_of, probes and keys are set per shard and round).
  internal::v1::ShardQuery shard_query;
  bool grouped = false;
  int64_t width_ms = 0;  // 0: granularity "all"
  // Which aggregates the rows carry.
  bool want_count = true, want_sum = true, want_avg = true, want_min = true, want_max = true;
  bool want_distinct = false;
  std::vector<double> quantiles;  // grouped: each group's; else each bucket's, over all shards
  // A `key` or `keys` filter: only the shards that own them are asked (empty: every shard).
  std::vector<std::string> keys;
  bool single_key = false;  // `key`: its shard missing is a 503, never a zero
  bool allow_partial = true;
  uint32_t max_rows = kDefaultQueryMaxRows;
};

// GET /analytics's filters (key, key_prefix, from, to; `format` is the router's) as a Query;
// 400 for a parameter given twice.
Decoded<das::v1::Query> QueryFromParams(const std::vector<http::QueryParam>& params);

// Checks every field (422 naming it) and makes the plan.
Decoded<QueryPlan> PlanQuery(const das::v1::Query& query, uint32_t max_rows);

// Whether a shard's query asks for nothing but the count, sum, min and max of every row the
// shard holds (no filter, no grouping, no distinct count, no quantile, a first round:
// /analytics), which the store's running aggregate answers without a scan.
bool RunningAggregateAnswers(const internal::v1::ShardQuery& query);

// An instant of `from` / `to`: RFC 3339 (2026-12-01T08:00:00Z, 2026-12-01T09:00:00.250+01:00)
// or epoch milliseconds ("1764576000000"), in microseconds since the epoch; years 0000-9999.
// kInvalidArgument saying what is wrong.
Result<int64_t> ParseInstant(std::string_view text);

// A granularity: "all" (0) or <n><unit>, unit ms, s, m, h or d, as milliseconds.
Result<int64_t> ParseGranularity(std::string_view text);

}  // namespace das::query
