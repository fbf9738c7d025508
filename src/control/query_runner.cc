#include "control/query_runner.h"

#include <algorithm>
#include <map>

#include <spdlog/spdlog.h>

#include "control/gather.h"
#include "query/merge.h"
#include "query/quantile_search.h"

namespace das::control {
namespace {

namespace asio = boost::asio;
using internal::v1::ShardQuery;
using internal::v1::ShardQueryResponse;
using query::BucketSummary;
using query::QuantileSearch;
using query::QueryMerge;
using query::QueryPlan;
using Ms = std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

asio::awaitable<Result<UnitAnswer>> Ask(const QueryUnit& unit, ShardQuery query, Ms timeout) {
  asio::awaitable<UnitAnswer> sent = unit.send(std::move(query), timeout);
  co_return co_await std::move(sent);
}

// One round: `queries[i]` to units[indices[i]]. Answers in the same order.
asio::awaitable<std::vector<UnitAnswer>> Round(asio::any_io_executor executor,
                                               const std::vector<QueryUnit>& units,
                                               const std::vector<size_t>& indices,
                                               std::vector<ShardQuery> queries, Ms timeout) {
  std::vector<asio::awaitable<Result<UnitAnswer>>> calls;
  for (size_t i = 0; i < indices.size(); ++i) {
    calls.push_back(Ask(units[indices[i]], std::move(queries[i]), timeout));
  }
  asio::awaitable<std::vector<Result<UnitAnswer>>> gather =
      GatherAll<UnitAnswer>(executor, std::move(calls));
  std::vector<Result<UnitAnswer>> results = co_await std::move(gather);
  std::vector<UnitAnswer> out;
  for (Result<UnitAnswer>& result : results) {
    if (result.ok()) {
      out.push_back(std::move(*result));
    } else {
      out.push_back(UnitAnswer{std::move(result).status(), {}});
    }
  }
  co_return out;
}

// Quantiles times buckets a query may ask for (each needs up to two ranks searched).
constexpr size_t kMaxQuantileValues = 100'000;

// A shard's error that is the query's, not the shard's: every shard would answer it alike.
bool QueryError(const Status& status) { return status.code() == StatusCode::kInvalidArgument; }

struct State {
  std::vector<std::optional<ShardQueryResponse>> first;  // per unit; nullopt: missing
  QueryOutcome outcome;
};

// Notes a unit's answer to a round: the workers asked, and whether it answered.
bool Note(State& state, size_t unit, UnitAnswer& answer, const char* round) {
  state.outcome.failed.insert(answer.failed.begin(), answer.failed.end());
  if (answer.answer.ok()) {
    state.outcome.answered.insert(answer.answer->worker_id());
    return true;
  }
  spdlog::warn("query: shard {} did not answer its {}: {}", unit, round,
               answer.answer.status().ToString());
  state.first[unit].reset();
  return false;
}

// The quantile rounds over the units that answered the first round. Returns false when one
// fails to answer (it is then missing; the caller merges again without it).
asio::awaitable<Result<bool>> SearchQuantiles(asio::any_io_executor executor, const QueryPlan& plan,
                                              const std::vector<QueryUnit>& units, State& state,
                                              QuantileSearch& search, Clock::time_point deadline) {
  while (!search.done()) {
    const Ms left = std::chrono::duration_cast<Ms>(deadline - Clock::now());
    if (left <= Ms(0)) {
      co_return DeadlineExceeded(
          "the query's quantiles were not found within its deadline "
          "(--query-deadline-ms)");
    }
    const std::vector<internal::v1::QuantileProbe> probes = search.Probes();
    std::vector<size_t> indices;
    std::vector<ShardQuery> queries;
    for (size_t u = 0; u < units.size(); ++u) {
      if (!state.first[u] || !state.first[u]->has_as_of_us()) continue;  // no rows there
      ShardQuery query = plan.shard_query;
      *query.mutable_keys() = {units[u].keys.begin(), units[u].keys.end()};
      query.set_as_of_us(state.first[u]->as_of_us());
      *query.mutable_probes() = {probes.begin(), probes.end()};
      indices.push_back(u);
      queries.push_back(std::move(query));
    }
    asio::awaitable<std::vector<UnitAnswer>> round =
        Round(executor, units, indices, std::move(queries), left);
    std::vector<UnitAnswer> answers = co_await std::move(round);
    bool complete = true;
    std::vector<const ShardQueryResponse*> fed;
    for (size_t i = 0; i < answers.size(); ++i) {
      if (!answers[i].answer.ok() && QueryError(answers[i].answer.status())) {
        co_return answers[i].answer.status();
      }
      if (Note(state, indices[i], answers[i], "quantile round")) {
        fed.push_back(&*answers[i].answer);
      } else {
        complete = false;
      }
    }
    if (!complete) co_return false;
    if (Status fed_ok = search.Feed(fed); !fed_ok.ok()) co_return fed_ok;
  }
  co_return true;
}

Status MergeFirstRound(const State& state, QueryMerge& merge) {
  for (const auto& answer : state.first) {
    if (answer) RETURN_IF_ERROR(merge.Add(*answer));
  }
  return Status::Ok();
}

}  // namespace

std::vector<das::v1::SlotRange> MergeSlotRanges(std::vector<std::pair<uint32_t, uint32_t>> ranges) {
  std::sort(ranges.begin(), ranges.end());
  std::vector<das::v1::SlotRange> out;
  for (const auto& [first, end] : ranges) {
    if (first >= end) continue;
    if (!out.empty() && out.back().last_slot() + 1 >= first) {
      out.back().set_last_slot(std::max(out.back().last_slot(), end - 1));
      continue;
    }
    das::v1::SlotRange& range = out.emplace_back();
    range.set_first_slot(first);
    range.set_last_slot(end - 1);
  }
  return out;
}

namespace {

// The first round: every unit's rows (and its snapshot). A shard's error that is the query's
// ends the query.
asio::awaitable<Status> FirstRound(asio::any_io_executor executor, const QueryPlan& plan,
                                   const std::vector<QueryUnit>& units, State& state, Ms timeout) {
  std::vector<size_t> all;
  std::vector<ShardQuery> queries;
  for (size_t u = 0; u < units.size(); ++u) {
    ShardQuery query = plan.shard_query;
    *query.mutable_keys() = {units[u].keys.begin(), units[u].keys.end()};
    all.push_back(u);
    queries.push_back(std::move(query));
  }
  asio::awaitable<std::vector<UnitAnswer>> first =
      Round(executor, units, all, std::move(queries), timeout);
  std::vector<UnitAnswer> answers = co_await std::move(first);
  for (size_t u = 0; u < answers.size(); ++u) {
    if (!answers[u].answer.ok() && QueryError(answers[u].answer.status())) {
      co_return answers[u].answer.status();
    }
    if (Note(state, u, answers[u], "first round")) state.first[u] = std::move(*answers[u].answer);
  }
  co_return Status::Ok();
}

// The rows from the first round's answers, with the quantile rounds they need; merged again
// each time a quantile round loses a shard.
asio::awaitable<Result<std::vector<das::v1::QueryRow>>> MergeRounds(
    asio::any_io_executor executor, const QueryPlan& plan, const std::vector<QueryUnit>& units,
    State& state, Clock::time_point deadline) {
  for (;;) {
    QueryMerge merge(plan);
    if (Status merged = MergeFirstRound(state, merge); !merged.ok()) co_return merged;
    if (plan.grouped || plan.quantiles.empty()) co_return merge.Finish(nullptr);
    const std::map<int64_t, BucketSummary> summaries = merge.Summaries();
    if (summaries.size() * plan.quantiles.size() > kMaxQuantileValues) {
      co_return InvalidArgument("quantiles: " + std::to_string(plan.quantiles.size()) +
                                " quantiles of " + std::to_string(summaries.size()) +
                                " buckets are more than the " + std::to_string(kMaxQuantileValues) +
                                " a query may ask for");
    }
    QuantileSearch search(summaries, plan.quantiles);
    asio::awaitable<Result<bool>> searched =
        SearchQuantiles(executor, plan, units, state, search, deadline);
    Result<bool> complete = co_await std::move(searched);
    if (!complete.ok()) co_return std::move(complete).status();
    if (*complete) co_return merge.Finish(&search);
  }
}

// Which units answered, and the slots of those that did not.
das::v1::Coverage CoverageOf(const std::vector<QueryUnit>& units, const State& state) {
  std::vector<std::pair<uint32_t, uint32_t>> missing;
  uint32_t answered = 0;
  for (size_t u = 0; u < units.size(); ++u) {
    if (state.first[u]) {
      ++answered;
    } else {
      missing.insert(missing.end(), units[u].slots.begin(), units[u].slots.end());
    }
  }
  das::v1::Coverage coverage;
  coverage.set_shards_needed(static_cast<uint32_t>(units.size()));
  coverage.set_shards_answered(answered);
  for (das::v1::SlotRange& range : MergeSlotRanges(std::move(missing))) {
    *coverage.add_missing() = std::move(range);
  }
  return coverage;
}

}  // namespace

asio::awaitable<QueryOutcome> RunQuery(asio::any_io_executor executor, const QueryPlan& plan,
                                       std::vector<QueryUnit> units, Ms timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  State state;
  state.first.resize(units.size());
  asio::awaitable<Status> first = FirstRound(executor, plan, units, state, timeout);
  if (Status asked = co_await std::move(first); !asked.ok()) {
    state.outcome.rows = std::move(asked);
    co_return std::move(state.outcome);
  }
  asio::awaitable<Result<std::vector<das::v1::QueryRow>>> rows =
      MergeRounds(executor, plan, units, state, deadline);
  state.outcome.rows = co_await std::move(rows);
  state.outcome.coverage = CoverageOf(units, state);
  co_return std::move(state.outcome);
}

}  // namespace das::control
