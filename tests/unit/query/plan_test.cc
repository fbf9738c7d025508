// The query's plan (limits, instants, granularities, the shards' part) and the exact merge of
// the shards' rows: the control node's side of the query protocol, without a socket.
#include "query/plan.h"

#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include "query/merge.h"

namespace das::query {
namespace {

using internal::v1::ShardQuery;

TEST(ParseInstantTest, ReadsRfc3339AndEpochMilliseconds) {
  EXPECT_EQ(*ParseInstant("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(*ParseInstant("2026-12-01T08:00:00Z"), 1'796'112'000'000'000);
  EXPECT_EQ(*ParseInstant("2026-12-01T09:00:00+01:00"), 1'796'112'000'000'000);
  EXPECT_EQ(*ParseInstant("2026-12-01t07:30:00.5-00:30"), 1'796'112'000'500'000);
  EXPECT_EQ(*ParseInstant("2024-02-29T00:00:00.123456789Z") % 1'000'000, 123'456);
  EXPECT_EQ(*ParseInstant("1764576000000"), 1'764'576'000'000'000);
  EXPECT_EQ(*ParseInstant("-1000"), -1'000'000);
}

TEST(ParseInstantTest, RefusesWhatIsNotAnInstant) {
  for (const char* bad : {"", "yesterday", "2026-12-01", "2026-12-01T08:00:00",  // no offset
                          "2026-13-01T00:00:00Z", "2025-02-29T00:00:00Z", "2026-12-01T24:00:00Z",
                          "2026-12-01T08:00:00.Z", "2026-12-01T08:00:00Zjunk", "12a",
                          "99999999999999999999", "253402300800000"}) {
    Result<int64_t> parsed = ParseInstant(bad);
    EXPECT_FALSE(parsed.ok()) << bad;
    EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

TEST(ParseGranularityTest, ReadsWidths) {
  EXPECT_EQ(*ParseGranularity(""), 0);
  EXPECT_EQ(*ParseGranularity("all"), 0);
  EXPECT_EQ(*ParseGranularity("1s"), 1000);
  EXPECT_EQ(*ParseGranularity("1m"), 60'000);
  EXPECT_EQ(*ParseGranularity("1h"), 3'600'000);
  EXPECT_EQ(*ParseGranularity("1d"), 86'400'000);
  EXPECT_EQ(*ParseGranularity("250ms"), 250);
  EXPECT_EQ(*ParseGranularity("366d"), kMaxBucketWidthMs);
  for (const char* bad : {"0s", "1w", "m", "-1s", "1.5s", "367d", "1S", "all "}) {
    EXPECT_FALSE(ParseGranularity(bad).ok()) << bad;
  }
}

das::v1::Query FromJson(const std::string& json) {
  das::v1::Query query;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json, &query).ok()) << json;
  return query;
}

// The 422 message of a query that must be refused, or "" when it is accepted.
std::string Refusal(const std::string& json) {
  Decoded<QueryPlan> plan = PlanQuery(FromJson(json), kDefaultQueryMaxRows);
  if (const ApiError* error = std::get_if<ApiError>(&plan)) {
    EXPECT_EQ(error->status, 422u) << json;
    return error->message;
  }
  return "";
}

TEST(PlanQueryTest, EachBadValueIsA422NamingItsField) {
  EXPECT_EQ(Refusal(R"({"key":"a","key_prefix":"b"})").rfind("key, key_prefix and keys", 0), 0u);
  EXPECT_EQ(Refusal(R"({"key":"a","keys":["b"]})").rfind("key, key_prefix and keys", 0), 0u);
  EXPECT_EQ(Refusal(R"({"from":"soon"})").rfind("from:", 0), 0u);
  EXPECT_EQ(Refusal(R"({"to":"2026-02-30T00:00:00Z"})").rfind("to:", 0), 0u);
  EXPECT_EQ(Refusal(R"({"from":"2000","to":"1000"})").rfind("from (2000) is after to", 0), 0u);
  EXPECT_EQ(Refusal(R"({"granularity":"1w"})").rfind("granularity:", 0), 0u);
  EXPECT_EQ(Refusal(R"({"group_by":"value"})").rfind("group_by:", 0), 0u);
  EXPECT_EQ(Refusal(R"({"order_by":"sum"})").rfind("order_by: only with", 0), 0u);
  EXPECT_EQ(Refusal(R"({"limit":5})").rfind("limit: only with", 0), 0u);
  EXPECT_EQ(Refusal(R"({"group_by":"key","order_by":"median"})").rfind("order_by:", 0), 0u);
  EXPECT_EQ(Refusal(R"({"group_by":"key","order":"up"})").rfind("order:", 0), 0u);
  EXPECT_EQ(Refusal(R"({"group_by":"key","limit":0})").rfind("limit: must be 1 to 100000", 0), 0u);
  EXPECT_EQ(Refusal(R"({"group_by":"key","limit":100001})").rfind("limit:", 0), 0u);
  EXPECT_EQ(Refusal(R"({"aggregates":["count","median"]})").rfind("aggregates: 'median'", 0), 0u);
  EXPECT_EQ(Refusal(R"({"quantiles":[0.5,1.5]})").rfind("quantiles[1]: must be in [0, 1]", 0), 0u);
  EXPECT_EQ(Refusal(R"({"quantiles":[-0.1]})").rfind("quantiles[0]:", 0), 0u);
  EXPECT_EQ(Refusal(R"({"quantiles":["NaN"]})").rfind("quantiles[0]:", 0), 0u);
  EXPECT_EQ(Refusal(R"({"key":""})"), "");  // empty: no filter
  EXPECT_EQ(Refusal(R"({"keys":["a",""]})").rfind("keys[1]:", 0), 0u);
  EXPECT_EQ(Refusal("{\"key\":\"" + std::string(1025, 'k') + "\"}").rfind("key:", 0), 0u);
  std::string many = R"({"keys":[)";
  for (int i = 0; i <= kMaxQueryKeys; ++i)
    many += (i > 0 ? ",\"" : "\"") + std::to_string(i) + "\"";
  EXPECT_EQ(Refusal(many + "]}").rfind("keys: at most 10000", 0), 0u);
}

TEST(PlanQueryTest, DefaultsAndTheShardsPart) {
  Decoded<QueryPlan> decoded = PlanQuery(FromJson("{}"), 7);
  const QueryPlan& plan = std::get<QueryPlan>(decoded);
  EXPECT_FALSE(plan.grouped);
  EXPECT_EQ(plan.width_ms, 0);
  EXPECT_TRUE(plan.want_count && plan.want_sum && plan.want_avg && plan.want_min && plan.want_max);
  EXPECT_FALSE(plan.want_distinct);
  EXPECT_TRUE(plan.allow_partial);
  EXPECT_EQ(plan.shard_query.max_rows(), 7u);
  EXPECT_FALSE(plan.shard_query.has_from_us());

  decoded = PlanQuery(FromJson(R"({"group_by":"key","order_by":"avg","keys":["b","a","b"],
      "granularity":"1m","aggregates":["count_distinct_keys"],"quantiles":[0.5],
      "allow_partial":false,"from":"1000"})"),
                      kDefaultQueryMaxRows);
  const QueryPlan& grouped = std::get<QueryPlan>(decoded);
  EXPECT_TRUE(grouped.grouped);
  EXPECT_EQ(grouped.shard_query.order_by(), ShardQuery::AVG);
  EXPECT_TRUE(grouped.shard_query.descending());  // an aggregate: desc by default
  EXPECT_EQ(grouped.shard_query.limit(), kDefaultQueryLimit);
  EXPECT_EQ(grouped.keys, (std::vector<std::string>{"b", "a"}));  // duplicates once
  EXPECT_FALSE(grouped.single_key);
  EXPECT_EQ(grouped.width_ms, 60'000);
  EXPECT_FALSE(grouped.want_count);
  EXPECT_TRUE(grouped.want_distinct);
  EXPECT_EQ(grouped.shard_query.quantiles_size(), 1);  // per group, on the shards
  EXPECT_FALSE(grouped.allow_partial);
  EXPECT_EQ(grouped.shard_query.from_us(), 1'000'000);

  decoded = PlanQuery(FromJson(R"({"group_by":"key","order_by":"key"})"), 10);
  EXPECT_FALSE(std::get<QueryPlan>(decoded).shard_query.descending());  // key: asc
}

TEST(QueryFromParamsTest, TakesTheFiltersOnceEach) {
  Decoded<das::v1::Query> query =
      QueryFromParams({{"key", "a"}, {"format", "json"}, {"from", "1"}, {"to", "2"}});
  ASSERT_TRUE(std::holds_alternative<das::v1::Query>(query));
  EXPECT_EQ(std::get<das::v1::Query>(query).key(), "a");
  EXPECT_EQ(std::get<das::v1::Query>(query).to(), "2");
  Decoded<das::v1::Query> twice = QueryFromParams({{"key", "a"}, {"key", "b"}});
  ASSERT_TRUE(std::holds_alternative<ApiError>(twice));
  EXPECT_EQ(std::get<ApiError>(twice).status, 400u);
  // Present but empty is not "no filter" (a JSON field can only be absent).
  Decoded<das::v1::Query> empty = QueryFromParams({{"key", ""}});
  ASSERT_TRUE(std::holds_alternative<ApiError>(empty));
  EXPECT_EQ(std::get<ApiError>(empty).status, 422u);
  EXPECT_EQ(std::get<ApiError>(empty).message.rfind("key: empty", 0), 0u);
}

// /analytics without a filter plans the shards' part the running aggregate answers (no scan);
// with one, a scan.
TEST(QueryFromParamsTest, UnfilteredAnalyticsIsAnsweredByTheRunningAggregates) {
  Decoded<das::v1::Query> all = QueryFromParams({{"format", "json"}});
  ASSERT_TRUE(std::holds_alternative<das::v1::Query>(all));
  Decoded<QueryPlan> plan = PlanQuery(std::get<das::v1::Query>(all), kDefaultQueryMaxRows);
  ASSERT_TRUE(std::holds_alternative<QueryPlan>(plan));
  EXPECT_TRUE(RunningAggregateAnswers(std::get<QueryPlan>(plan).shard_query));
  Decoded<das::v1::Query> prefixed = QueryFromParams({{"key_prefix", "a"}});
  ASSERT_TRUE(std::holds_alternative<das::v1::Query>(prefixed));
  plan = PlanQuery(std::get<das::v1::Query>(prefixed), kDefaultQueryMaxRows);
  ASSERT_TRUE(std::holds_alternative<QueryPlan>(plan));
  EXPECT_FALSE(RunningAggregateAnswers(std::get<QueryPlan>(plan).shard_query));
}

// --- merging the shards' rows -----------------------------------------------------------------

internal::v1::ShardQueryRow ShardRow(int64_t bucket, const std::string& key,
                                     const std::vector<double>& values) {
  internal::v1::ShardQueryRow row;
  row.set_bucket_start_ms(bucket);
  row.set_key(key);
  ExactSum sum;
  double min = values.front(), max = values.front();
  for (double v : values) {
    sum.Add(v);
    min = std::min(min, v);
    max = std::max(max, v);
  }
  row.set_count(values.size());
  row.set_exact_sum(sum.ToBytes());
  row.set_min(min);
  row.set_max(max);
  return row;
}

QueryPlan Plan(const std::string& json, uint32_t max_rows = kDefaultQueryMaxRows) {
  return std::get<QueryPlan>(PlanQuery(FromJson(json), max_rows));
}

TEST(QueryMergeTest, BucketsAddUpExactlyAcrossShardsEvenWithCancellation) {
  QueryPlan plan = Plan(R"({"granularity":"1s","aggregates":["count","sum","avg","min","max",
      "count_distinct_keys"]})");
  internal::v1::ShardQueryResponse a, b;
  *a.add_rows() = ShardRow(1000, "", {1e16, 1.0});
  a.mutable_rows(0)->set_distinct_keys(2);
  *a.add_rows() = ShardRow(3000, "", {5});
  a.mutable_rows(1)->set_distinct_keys(1);
  *b.add_rows() = ShardRow(1000, "", {-1e16, 2.0});
  b.mutable_rows(0)->set_distinct_keys(1);
  QueryMerge merge(plan);
  ASSERT_TRUE(merge.Add(a).ok());
  ASSERT_TRUE(merge.Add(b).ok());
  Result<std::vector<das::v1::QueryRow>> rows = merge.Finish(nullptr);
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 2u);  // the empty bucket 2000 is not a row
  const das::v1::QueryRow& first = (*rows)[0];
  EXPECT_EQ(first.bucket_start_ms(), 1000);
  EXPECT_EQ(first.count(), 4u);
  EXPECT_EQ(first.sum(), 3.0);  // a double sum gives 2 or 4
  EXPECT_EQ(first.average(), 0.75);
  EXPECT_EQ(first.min(), -1e16);
  EXPECT_EQ(first.max(), 1e16);
  EXPECT_EQ(first.count_distinct_keys(), 3u);
  EXPECT_EQ((*rows)[1].bucket_start_ms(), 3000);
}

TEST(QueryMergeTest, OneRowOverNoRowsWithoutAverageMinMax) {
  QueryMerge merge(Plan("{}"));
  Result<std::vector<das::v1::QueryRow>> rows = merge.Finish(nullptr);
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_TRUE((*rows)[0].has_count());
  EXPECT_EQ((*rows)[0].count(), 0u);
  EXPECT_EQ((*rows)[0].sum(), 0.0);
  EXPECT_FALSE((*rows)[0].has_average());
  EXPECT_FALSE((*rows)[0].has_min());
  EXPECT_FALSE((*rows)[0].has_bucket_start_ms());
  QueryMerge series(Plan(R"({"granularity":"1m"})"));
  EXPECT_TRUE(series.Finish(nullptr)->empty());
}

TEST(QueryMergeTest, TheGlobalTopNIsTheTopOfTheShardsTopNWithTiesByKey) {
  QueryPlan plan = Plan(R"({"group_by":"key","order_by":"sum","limit":3})");
  internal::v1::ShardQueryResponse a, b;
  // Each shard's own top 3 by (sum desc, key asc).
  *a.add_rows() = ShardRow(0, "m", {10});
  *a.add_rows() = ShardRow(0, "c", {4, 3});
  *a.add_rows() = ShardRow(0, "x", {7});
  *b.add_rows() = ShardRow(0, "b", {7});
  *b.add_rows() = ShardRow(0, "a", {2, 2});
  *b.add_rows() = ShardRow(0, "z", {1});
  QueryMerge merge(plan);
  ASSERT_TRUE(merge.Add(a).ok());
  ASSERT_TRUE(merge.Add(b).ok());
  Result<std::vector<das::v1::QueryRow>> rows = merge.Finish(nullptr);
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 3u);
  EXPECT_EQ((*rows)[0].key(), "m");
  EXPECT_EQ((*rows)[1].key(), "b");  // 7, 7, 7: b, c, x
  EXPECT_EQ((*rows)[2].key(), "c");
  EXPECT_EQ((*rows)[2].count(), 2u);
  EXPECT_FALSE((*rows)[0].has_bucket_start_ms());

  QueryMerge ascending(Plan(R"({"group_by":"key","order_by":"count","order":"asc","limit":2})"));
  ASSERT_TRUE(ascending.Add(a).ok());
  ASSERT_TRUE(ascending.Add(b).ok());
  rows = ascending.Finish(nullptr);
  EXPECT_EQ((*rows)[0].key(), "b");  // count 1: b, m, x, z by key
  EXPECT_EQ((*rows)[1].key(), "m");
}

TEST(QueryMergeTest, MoreRowsThanTheCapIsInvalidArgument) {
  QueryMerge merge(Plan(R"({"granularity":"1s"})", 1));
  internal::v1::ShardQueryResponse a;
  *a.add_rows() = ShardRow(0, "", {1});
  *a.add_rows() = ShardRow(1000, "", {1});
  ASSERT_TRUE(merge.Add(a).ok());
  Result<std::vector<das::v1::QueryRow>> rows = merge.Finish(nullptr);
  ASSERT_FALSE(rows.ok());
  EXPECT_EQ(rows.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(rows.status().message().find("more than 1 rows"), std::string::npos);
}

}  // namespace
}  // namespace das::query
