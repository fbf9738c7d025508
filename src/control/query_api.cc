#include "control/query_api.h"

#include <string>
#include <utility>

#include "common/hash.h"
#include "control/codec.h"
#include "das/v1/das.pb.h"

namespace das::control {
namespace {

namespace asio = boost::asio;
using internal::v1::ShardQuery;
using query::PlanQuery;
using query::QueryFromParams;
using query::QueryPlan;
using Ms = std::chrono::milliseconds;

asio::awaitable<UnitAnswer> SendToShard(Replication* replication, uint32_t shard, ShardQuery query,
                                        Ms timeout) {
  asio::awaitable<ShardLeader::QueryAnswer> asked =
      replication->LeaderOf(shard).Query(std::move(query), timeout);
  ShardLeader::QueryAnswer answer = co_await std::move(asked);
  co_return UnitAnswer{std::move(answer.answer), std::move(answer.failed)};
}

}  // namespace

QueryApi::QueryApi(asio::any_io_executor executor, QueryApiOptions options,
                   Replication& replication)
    : executor_(std::move(executor)), options_(std::move(options)), replication_(replication) {}

std::vector<QueryUnit> QueryApi::ShardUnits(const QueryPlan& plan) {
  std::map<uint32_t, std::vector<std::string>> keys;
  for (const std::string& key : plan.keys) keys[replication_.ShardOf(key)].push_back(key);
  if (plan.keys.empty()) {
    for (uint32_t s = 0; s < replication_.shards(); ++s) keys[s];
  }
  std::vector<QueryUnit> units;
  for (auto& [shard, its_keys] : keys) {
    QueryUnit& unit = units.emplace_back();
    unit.shard = shard;
    unit.slots.push_back(replication_.SlotsOf(shard));
    unit.keys = std::move(its_keys);
    unit.send = [replication = &replication_, shard = shard](ShardQuery query, Ms timeout) {
      return SendToShard(replication, shard, std::move(query), timeout);
    };
  }
  return units;
}

asio::awaitable<QueryApi::Answer> QueryApi::Run(const QueryPlan& plan, Ms deadline) {
  std::vector<QueryUnit> units = ShardUnits(plan);
  asio::awaitable<QueryOutcome> run = RunQuery(executor_, plan, std::move(units), deadline);
  Answer answer;
  answer.outcome = co_await std::move(run);
  const das::v1::Coverage& coverage = answer.outcome.coverage;
  answer.total_nodes = replication_.total_nodes();
  answer.responding_nodes =
      replication_.RespondingWorkers(answer.outcome.answered, answer.outcome.failed);
  answer.partial = coverage.shards_answered() < coverage.shards_needed();
  const bool nothing = coverage.shards_answered() == 0 && coverage.shards_needed() > 0;
  if (nothing || (plan.single_key && answer.partial)) answer.status = 503;
  co_return answer;
}

asio::awaitable<http::Response> QueryApi::Query(http::Request request) {
  Decoded<Encoding> body = BodyEncoding(request);
  if (auto* e = std::get_if<ApiError>(&body)) co_return EncodeError(*e, ErrorEncoding(request));
  const Encoding encoding = AnswerEncoding(request, std::get<Encoding>(body));
  Decoded<das::v1::Query> query = DecodeQuery(request, std::get<Encoding>(body));
  if (auto* e = std::get_if<ApiError>(&query)) co_return EncodeError(*e, encoding);
  Decoded<QueryPlan> plan = PlanQuery(std::get<das::v1::Query>(query), options_.max_rows);
  if (auto* e = std::get_if<ApiError>(&plan)) co_return EncodeError(*e, encoding);
  const QueryPlan& planned = std::get<QueryPlan>(plan);
  if (std::optional<std::string> held = options_.held ? options_.held() : std::nullopt) {
    co_return EncodeError(ApiError{503, "the cluster is starting: " + *held}, encoding);
  }

  asio::awaitable<Answer> run = Run(planned, options_.deadline);
  Answer answer = co_await std::move(run);
  if (!answer.outcome.rows.ok()) {
    co_return EncodeError(ApiErrorOf(answer.outcome.rows.status()), encoding);
  }
  das::v1::QueryResponse response;
  for (das::v1::QueryRow& row : *answer.outcome.rows) *response.add_rows() = std::move(row);
  response.set_is_partial(answer.partial);
  response.set_total_nodes(answer.total_nodes);
  response.set_responding_nodes(answer.responding_nodes);
  *response.mutable_coverage() = std::move(answer.outcome.coverage);
  const unsigned status = answer.partial && !planned.allow_partial ? 503 : answer.status;
  co_return Encode(status, response, encoding);
}

asio::awaitable<http::Response> QueryApi::Analytics(http::Request request,
                                                    std::vector<http::QueryParam> params) {
  const Encoding encoding = AnswerEncoding(request, Encoding::kProtobuf);
  Decoded<das::v1::Query> query = QueryFromParams(params);
  if (auto* e = std::get_if<ApiError>(&query)) co_return EncodeError(*e, encoding);
  Decoded<QueryPlan> plan = PlanQuery(std::get<das::v1::Query>(query), options_.max_rows);
  if (auto* e = std::get_if<ApiError>(&plan)) co_return EncodeError(*e, encoding);
  if (options_.held && options_.held().has_value()) {
    // The 503 of /analytics carries an AnalyticsResponse: no shard answered.
    das::v1::AnalyticsResponse response;
    response.set_is_partial(true);
    response.set_total_nodes(replication_.total_nodes());
    co_return Encode(503, response, encoding);
  }

  // /analytics keeps its own deadline (README, "API").
  asio::awaitable<Answer> run = Run(std::get<QueryPlan>(plan), options_.analytics_deadline);
  Answer answer = co_await std::move(run);
  if (!answer.outcome.rows.ok()) {
    co_return EncodeError(ApiErrorOf(answer.outcome.rows.status()), encoding);
  }
  // Ungrouped over granularity "all": exactly one row.
  const das::v1::QueryRow& row = answer.outcome.rows->front();
  das::v1::AnalyticsResponse response;
  if (row.has_average()) response.set_average(row.average());
  response.set_is_partial(answer.partial);
  response.set_total_nodes(answer.total_nodes);
  response.set_responding_nodes(answer.responding_nodes);
  response.set_count(row.count());
  response.set_sum(row.sum());
  if (row.has_min()) response.set_min(row.min());
  if (row.has_max()) response.set_max(row.max());
  co_return Encode(answer.status, response, encoding);
}

}  // namespace das::control
