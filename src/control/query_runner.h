// RunQuery: one query's rounds over the shards it needs (README, "Queries"). The first round
// asks every shard for its rows (and fixes its snapshot); ungrouped quantiles then take rounds
// of probes (query/quantile_search.h) over the shards that hold rows. A shard that does not
// answer a round is missing: the answer is merged from the others (their first-round rows, and
// the quantile rounds anew without it), and says which slots it lacks.
// Thread-safety: RunQuery may run concurrently with itself; units must be safe to call so.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "common/status.h"
#include "das/v1/das.pb.h"
#include "das/v1/internal.pb.h"
#include "query/plan.h"

namespace das::control {

// What one shard answered to one round.
struct UnitAnswer {
  Result<internal::v1::ShardQueryResponse> answer = Unavailable("not asked");
  std::vector<uint64_t> failed;  // the workers tried that did not answer
};

// One shard of a query, read at its leader.
struct QueryUnit {
  std::optional<uint32_t> shard;
  std::vector<std::pair<uint32_t, uint32_t>> slots;  // the slots it owns: [first, end) ranges
  std::vector<std::string> keys;                     // its part of a key / keys filter
  std::function<boost::asio::awaitable<UnitAnswer>(internal::v1::ShardQuery,
                                                   std::chrono::milliseconds)>
      send;
};

struct QueryOutcome {
  // The rows, or kInvalidArgument (over the row cap), kInternal (shards that disagree).
  Result<std::vector<das::v1::QueryRow>> rows = Internal("not run");
  das::v1::Coverage coverage;
  std::set<uint64_t> answered;  // worker ids
  std::set<uint64_t> failed;
};

// `timeout` bounds the whole query: each round gets what is left of it (a quantile round that
// would start after it answers kDeadlineExceeded).
boost::asio::awaitable<QueryOutcome> RunQuery(boost::asio::any_io_executor executor,
                                              const query::QueryPlan& plan,
                                              std::vector<QueryUnit> units,
                                              std::chrono::milliseconds timeout);

// The missing ranges as inclusive SlotRanges, sorted and merged where adjacent.
std::vector<das::v1::SlotRange> MergeSlotRanges(std::vector<std::pair<uint32_t, uint32_t>> ranges);

}  // namespace das::control
