// A grouped shard query (group_by: key): per bucket, the top `limit` groups in the requested
// order (common/group_order.h), each with its exact sum.
//
// DuckDB aggregates every group in one GROUP BY (count, min and max exactly; the sum rounded,
// with an error bound from the sum of magnitudes). Ordered by count, min, max or key, that
// ranks the groups exactly; ordered by sum or avg, it leaves as candidates only the groups whose
// bounds reach the top `limit` (almost always just those). One more read, of the candidates'
// rows only, gives their ExactSums (and the values of their quantiles), from which the final
// order is exact.
// Thread-safety: one thread at a time per connection.
#pragma once

#include "common/status.h"
#include "das/v1/internal.pb.h"
#include "query/shard_scan.h"

namespace das::query {

Status Grouped(const ScanContext& context, internal::v1::ShardQueryResponse& response);

}  // namespace das::query
