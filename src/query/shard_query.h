// One shard's part of a query (README, "Queries", das.internal.v1.ShardQuery) over its store's
// DuckDB data: the rows the filters select are read by prepared statements (parameters bound,
// nothing pasted into the SQL) and aggregated exactly: sums are ExactSums, so a bucket's sum
// merges across shards without a rounding, and a group's (a key lives in one shard) is exact
// where it is ordered (query/shard_groups.h). The answer is one row per non-empty bucket, or
// per bucket the top `limit` groups ordered by (metric, key); or, for a quantile round, the
// probes' bins or values. Bounded: more buckets than the row cap stop the read at once, an
// answer over 32 MiB is refused, and the read stops at the query's deadline.
//
// Every read is bounded by a snapshot: the shard's newest ingest time when the first round read
// it (Store::Apply makes it increase with the log), so every round of one query reads the same
// rows while writes go on.
//
// Thread-safety: RunShardQuery uses only its connection (one thread at a time); QueryStore may
// be called from any thread and answers on the store's reader thread (or on the caller's).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>

#include "common/status.h"
#include "das/v1/internal.pb.h"
#include "storage/store.h"

namespace das::query {

using ShardQueryCallback = std::function<void(Result<internal::v1::ShardQueryResponse>)>;

// `newest_ingest_us` is the store's (Store::newest_ingest_us), read before: the snapshot of a
// first round (one without as_of_us). kInvalidArgument when the answer would hold more than
// query.max_rows() rows or bytes over the cap; kDeadlineExceeded past `deadline`; kInternal for
// a DuckDB failure.
Result<internal::v1::ShardQueryResponse> RunShardQuery(
    _duckdb_connection* conn, uint32_t replica, const internal::v1::ShardQuery& query,
    int64_t newest_ingest_us, std::chrono::steady_clock::time_point deadline);

// The answer from the store's running aggregate when it answers the query (RunningAggregateAnswers,
// query/plan.h) (on the caller's
// thread, at once: ComputeAggregate); else RunShardQuery on one of `store`'s reader threads,
// within query.timeout_ms() of now (counted from this call, so that the time queued counts).
void QueryStore(storage::Store& store, internal::v1::ShardQuery query, ShardQueryCallback done);

}  // namespace das::query
