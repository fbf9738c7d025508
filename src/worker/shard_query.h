// One shard's part of a query (DESIGN.md section 8, das.internal.v1.ShardQuery) over its store's
// DuckDB data: the rows the filters select are read by one prepared statement (parameters bound,
// nothing pasted into the SQL) and aggregated here, exactly: sums are ExactSums, so a bucket's
// sum merges across shards without a rounding, and a group's (a key lives in one shard) is
// exact where it is ordered. The answer is one row per non-empty bucket, or per bucket the top
// `limit` groups ordered by (metric, key); or, for a quantile round, the probes' bins or values.
//
// Every read is bounded by a snapshot: the shard's newest ingest time when the first round read
// it (Store::Apply makes it increase with the log), so every round of one query reads the same
// rows while writes go on.
//
// Thread-safety: RunShardQuery uses only its connection (one thread at a time); QueryStore may
// be called from any thread and answers on the store's reader thread.
#pragma once

#include <functional>

#include "common/status.h"
#include "das/v1/internal.pb.h"
#include "worker/store.h"

namespace das::worker {

using ShardQueryCallback = std::function<void(Result<internal::v1::ShardQueryResponse>)>;

// kInvalidArgument when the answer would hold more than query.max_rows() rows (the query's
// cap); kInternal for a DuckDB failure.
Result<internal::v1::ShardQueryResponse> RunShardQuery(_duckdb_connection* conn,
                                                       const internal::v1::ShardQuery& query);

// RunShardQuery on one of `store`'s reader threads.
void QueryStore(Store& store, internal::v1::ShardQuery query, ShardQueryCallback done);

}  // namespace das::worker
