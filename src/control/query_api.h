// QueryApi: the control node's query endpoints (README, "Queries") as request -> response
// functions: POST /v1/query, and GET /analytics with filters (key, key_prefix, from, to). It
// plans the query (query/plan.h), picks the shards it needs (those that own its keys,
// or all), runs its rounds (control/query_runner.h) and answers with the rows, the coverage,
// and is_partial / total_nodes / responding_nodes as /analytics does.
//
// Status: 200; 503 (same body) when a `key` query's shard, or every shard, is missing, or when
// allow_partial is false and the answer is partial; 422 for a value out of range or an answer
// over --query-max-rows; 400 for an unknown field.
// Thread-safety: the handlers may run concurrently. What it is given (not owned) outlives it.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "control/cluster_map.h"
#include "control/query_runner.h"
#include "control/replication.h"
#include "http/message.h"
#include "http/query.h"
#include "query/plan.h"
#include "rpc/worker_client.h"

namespace das::control {

struct QueryApiOptions {
  // A query's deadline (all its rounds; a shard that does not answer a round in what is left of
  // it is missing), and a filtered /analytics's.
  std::chrono::milliseconds deadline{5000};
  std::chrono::milliseconds analytics_deadline{1500};
  uint32_t max_rows = query::kDefaultQueryMaxRows;
  // Why the cluster cannot answer completely yet, while it cannot (a valid query is then a
  // 503); empty: it always can.
  std::function<std::optional<std::string>()> held;
};

class QueryApi {
 public:
  // `replication` (the shards, their leaders and the members) outlives this.
  QueryApi(boost::asio::any_io_executor executor, QueryApiOptions options,
           Replication& replication);

  boost::asio::awaitable<http::Response> Query(http::Request request);
  // GET /analytics (its filters, if any, as `params`): a query of one bucket over every row it
  // selects, answered as an AnalyticsResponse. Without a filter each shard answers from its
  // running aggregate, without a scan (query::RunningAggregateAnswers).
  boost::asio::awaitable<http::Response> Analytics(http::Request request,
                                                   std::vector<http::QueryParam> params);

 private:
  // A query's outcome with the figures every answer carries.
  struct Answer {
    QueryOutcome outcome;
    uint32_t total_nodes = 0;
    uint32_t responding_nodes = 0;
    bool partial = false;
    unsigned status = 200;  // 503: a key's shard, or every shard, missing
  };
  boost::asio::awaitable<Answer> Run(const query::QueryPlan& plan,
                                     std::chrono::milliseconds deadline);
  std::vector<QueryUnit> ShardUnits(const query::QueryPlan& plan);

  boost::asio::any_io_executor executor_;
  const QueryApiOptions options_;
  Replication& replication_;
};

}  // namespace das::control
