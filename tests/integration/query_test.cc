// The query API (README, "Queries") through the real binaries: every field against answers
// computed here from the rows the test wrote, every bad input, the row cap, partial answers
// with a worker killed (unreplicated) and complete ones with a worker killed (replicated).
#include <gtest/gtest.h>

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "common/exact_sum.h"
#include "das/v1/das.pb.h"
#include "support/api.h"
#include "support/cluster.h"
#include "support/http_client.h"

namespace das::it {
namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Returns once the wall clock has passed `ms` (a later ingest time is then above it).
void PassMs(int64_t ms) {
  while (NowMs() <= ms) {
  }
}

struct QueryAnswer {
  int status = 0;
  v1::QueryResponse body;
  std::string raw;
};

Result<QueryAnswer> PostQuery(int port, const std::string& json) {
  Result<HttpResponse> r = HttpPost(port, "/v1/query", json, kJson);
  if (!r.ok()) return r.status();
  QueryAnswer answer{r->status, {}, r->body};
  if (r->status == 200 || r->status == 503) {
    auto parsed = google::protobuf::util::JsonStringToMessage(r->body, &answer.body);
    if (!parsed.ok()) return Internal("not a QueryResponse: " + r->body);
  }
  return answer;
}

// A 200 answer's body, failing the test otherwise.
v1::QueryResponse QueryOk(int port, const std::string& json) {
  Result<QueryAnswer> answer = PostQuery(port, json);
  EXPECT_TRUE(answer.ok()) << answer.status().ToString();
  if (!answer.ok()) return {};
  EXPECT_EQ(answer->status, 200) << json << " -> " << answer->raw;
  return answer->body;
}

// What a set of rows must give.
struct Figures {
  uint64_t count = 0;
  ExactSum sum;
  double min = 0, max = 0;
  std::vector<double> values;
  void Add(double v) {
    min = count == 0 ? v : std::min(min, v);
    max = count == 0 ? v : std::max(max, v);
    ++count;
    sum.Add(v);
    values.push_back(v);
  }
  // quantile_cont: linear between the two closest ranks, as DuckDB computes it.
  double Quantile(double q) const {
    std::vector<double> sorted = values;
    std::sort(sorted.begin(), sorted.end());
    const double position = static_cast<double>(sorted.size() - 1) * q;
    const size_t low = static_cast<size_t>(position);
    const double f = position - static_cast<double>(low);
    if (f == 0) return sorted[low];
    return sorted[low] * (1.0 - f) + sorted[low + 1] * f;
  }
};

testing::AssertionResult RowMatches(const v1::QueryRow& row, const Figures& want) {
  if (row.count() != want.count) {
    return testing::AssertionFailure() << "count " << row.count() << ", want " << want.count;
  }
  if (row.sum() != want.sum.Value()) {
    return testing::AssertionFailure() << "sum " << row.sum() << ", want " << want.sum.Value();
  }
  if (want.count == 0) {
    if (row.has_average() || row.has_min() || row.has_max()) {
      return testing::AssertionFailure() << "average/min/max on an empty row";
    }
    return testing::AssertionSuccess();
  }
  if (row.average() != want.sum.Divide(want.count) || row.min() != want.min ||
      row.max() != want.max) {
    return testing::AssertionFailure()
           << "average " << row.average() << " min " << row.min() << " max " << row.max();
  }
  return testing::AssertionSuccess();
}

class QueryTest : public ClusterTest {
 protected:
  // Writes two phases of rows: "user-<i>" and "item-<i>" keys, with a clock boundary between
  // them (`boundary_ms_`: every phase-A row was ingested before it, every phase-B row at or
  // after it).
  void Load() {
    for (int phase = 0; phase < 2; ++phase) {
      std::vector<TestRow> rows;
      for (int i = 0; i < 40; ++i) {
        const std::string key = (i % 4 == 0 ? "item-" : "user-") + std::to_string(i % 13);
        const double value = (phase == 0 ? 1.0 : -1.0) * (i * 0.75 - 7) + (i % 5) * 1e-3;
        rows.push_back({key, value});
        (phase == 0 ? a_ : b_).push_back(rows.back());
      }
      ASSERT_TRUE(BatchOk(port(), rows, "", rows.size()));
      if (phase == 0) {
        boundary_ms_ = NowMs() + 1;
        PassMs(boundary_ms_);
      }
    }
  }

  Figures Of(const std::function<bool(const TestRow&, bool phase_b)>& keep) const {
    Figures f;
    for (const TestRow& row : a_) {
      if (keep(row, false)) f.Add(row.value);
    }
    for (const TestRow& row : b_) {
      if (keep(row, true)) f.Add(row.value);
    }
    return f;
  }

  std::vector<TestRow> a_, b_;
  int64_t boundary_ms_ = 0;
};

TEST_F(QueryTest, EveryFieldAnswersExactlyOnAReplicatedCluster) {
  ASSERT_TRUE(cluster_.Start());
  Load();
  const auto all = [](const TestRow&, bool) { return true; };

  v1::QueryResponse r = QueryOk(port(), "{}");
  ASSERT_EQ(r.rows_size(), 1);
  EXPECT_TRUE(RowMatches(r.rows(0), Of(all)));
  EXPECT_FALSE(r.is_partial());
  EXPECT_EQ(r.total_nodes(), 2u);
  EXPECT_EQ(r.responding_nodes(), 2u);
  EXPECT_EQ(r.coverage().shards_needed(), 16u);
  EXPECT_EQ(r.coverage().shards_answered(), 16u);
  EXPECT_EQ(r.coverage().missing_size(), 0);

  // key: one shard only.
  r = QueryOk(port(), R"({"key":"user-5"})");
  EXPECT_TRUE(RowMatches(r.rows(0), Of([](const TestRow& t, bool) { return t.key == "user-5"; })));
  EXPECT_EQ(r.coverage().shards_needed(), 1u);
  r = QueryOk(port(), R"({"keys":["user-5","item-0","nobody"]})");
  EXPECT_TRUE(RowMatches(r.rows(0), Of([](const TestRow& t, bool) {
                           return t.key == "user-5" || t.key == "item-0";
                         })));
  EXPECT_LE(r.coverage().shards_needed(), 3u);
  r = QueryOk(port(), R"({"key_prefix":"item-"})");
  EXPECT_TRUE(RowMatches(r.rows(0),
                         Of([](const TestRow& t, bool) { return t.key.rfind("item-", 0) == 0; })));
  EXPECT_EQ(r.coverage().shards_needed(), 16u);

  // from / to over the ingest time, in epoch milliseconds and in RFC 3339.
  const std::string boundary = std::to_string(boundary_ms_);
  r = QueryOk(port(), R"({"to":")" + boundary + R"("})");
  EXPECT_TRUE(RowMatches(r.rows(0), Of([](const TestRow&, bool b) { return !b; })));
  r = QueryOk(port(), R"({"from":")" + boundary + R"(","to":"9999-12-31T23:59:59Z"})");
  EXPECT_TRUE(RowMatches(r.rows(0), Of([](const TestRow&, bool b) { return b; })));
  r = QueryOk(port(), R"({"from":"2000-01-01T00:00:00+02:00","to":"2000-01-02T00:00:00Z"})");
  EXPECT_TRUE(RowMatches(r.rows(0), Figures()));

  // Buckets: aligned to the epoch, ascending, adding up to the whole.
  r = QueryOk(port(), R"({"granularity":"1s","aggregates":["count","sum"]})");
  ASSERT_GE(r.rows_size(), 1);
  uint64_t count = 0;
  for (int i = 0; i < r.rows_size(); ++i) {
    EXPECT_EQ(r.rows(i).bucket_start_ms() % 1000, 0);
    if (i > 0) {
      EXPECT_GT(r.rows(i).bucket_start_ms(), r.rows(i - 1).bucket_start_ms());
    }
    EXPECT_FALSE(r.rows(i).has_average());  // not asked
    count += r.rows(i).count();
  }
  EXPECT_EQ(count, 80u);

  // Group by key: the top 5 by sum, ties by key, against the rows written.
  std::map<std::string, Figures> groups;
  for (const auto* phase : {&a_, &b_}) {
    for (const TestRow& t : *phase) groups[t.key].Add(t.value);
  }
  std::vector<std::pair<std::string, Figures>> ranked(groups.begin(), groups.end());
  std::sort(ranked.begin(), ranked.end(), [](const auto& x, const auto& y) {
    const double sx = x.second.sum.Value(), sy = y.second.sum.Value();
    return sx != sy ? sx > sy : x.first < y.first;
  });
  r = QueryOk(port(), R"({"group_by":"key","order_by":"sum","limit":5,"quantiles":[0.5]})");
  ASSERT_EQ(r.rows_size(), 5);
  for (int i = 0; i < 5; ++i) {
    SCOPED_TRACE(ranked[i].first);
    EXPECT_EQ(r.rows(i).key(), ranked[i].first);
    EXPECT_TRUE(RowMatches(r.rows(i), ranked[i].second));
    ASSERT_EQ(r.rows(i).quantiles_size(), 1);
    EXPECT_EQ(r.rows(i).quantiles(0), ranked[i].second.Quantile(0.5));
  }
  r = QueryOk(port(), R"({"group_by":"key","order_by":"key","order":"desc","limit":2})");
  ASSERT_EQ(r.rows_size(), 2);
  EXPECT_EQ(r.rows(0).key(), groups.rbegin()->first);

  // Distinct keys and global quantiles over every shard.
  r = QueryOk(port(),
              R"({"aggregates":["count_distinct_keys","count"],"quantiles":[0,0.25,0.5,0.9,1]})");
  ASSERT_EQ(r.rows_size(), 1);
  EXPECT_EQ(r.rows(0).count_distinct_keys(), groups.size());
  EXPECT_FALSE(r.rows(0).has_sum());
  const Figures everything = Of(all);
  ASSERT_EQ(r.rows(0).quantiles_size(), 5);
  const double qs[] = {0, 0.25, 0.5, 0.9, 1};
  for (int i = 0; i < 5; ++i) EXPECT_EQ(r.rows(0).quantiles(i), everything.Quantile(qs[i]));

  // GET /analytics with filters answers an AnalyticsResponse over the rows they select.
  Result<HttpResponse> filtered =
      HttpGet(port(), "/analytics?key_prefix=user-&to=" + boundary + "&format=json");
  ASSERT_TRUE(filtered.ok());
  ASSERT_EQ(filtered->status, 200) << filtered->body;
  v1::AnalyticsResponse analytics;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(filtered->body, &analytics).ok());
  const Figures users_a =
      Of([](const TestRow& t, bool b) { return !b && t.key.rfind("user-", 0) == 0; });
  EXPECT_EQ(analytics.count(), users_a.count);
  EXPECT_EQ(analytics.sum(), users_a.sum.Value());  // exact: not a double sum of the values
  EXPECT_EQ(analytics.average(), users_a.sum.Divide(users_a.count));
  EXPECT_EQ(analytics.min(), users_a.min);
  EXPECT_EQ(analytics.max(), users_a.max);
  EXPECT_FALSE(analytics.is_partial());
}

TEST_F(QueryTest, AnswersInProtobufToAProtobufQuery) {
  ASSERT_TRUE(cluster_.Start(Unreplicated()));
  ASSERT_TRUE(InsertOk(port(), "p-1", 2.5));
  ASSERT_TRUE(InsertOk(port(), "p-2", 4.0));
  v1::Query query;
  query.set_group_by("key");
  query.set_order_by("key");
  Result<HttpResponse> r = HttpPost(port(), "/v1/query", query.SerializeAsString(), kProtobuf);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->MediaType(), kProtobuf);
  v1::QueryResponse response;
  ASSERT_TRUE(response.ParseFromString(r->body));
  ASSERT_EQ(response.rows_size(), 2);
  EXPECT_EQ(response.rows(0).key(), "p-1");
  EXPECT_EQ(response.rows(0).sum(), 2.5);
  EXPECT_EQ(response.rows(1).key(), "p-2");
  EXPECT_EQ(response.coverage().shards_needed(), 16u);  // every shard, one voter each
}

TEST_F(QueryTest, BadQueriesAreRefusedWithTheFieldNamed) {
  ASSERT_TRUE(cluster_.Start(Unreplicated()));
  struct Case {
    std::string body;
    int status;
    std::string names;
  };
  const std::vector<Case> cases = {
      {R"({"bucket":"1m"})", 400, "bucket"},
      {R"({"key":"a","key_prefix":"b"})", 422, "key_prefix"},
      {R"({"granularity":"1w"})", 422, "granularity"},
      {R"({"from":"noon"})", 422, "from"},
      {R"({"from":"2026-12-02T00:00:00Z","to":"2026-12-01T00:00:00Z"})", 422, "to"},
      {R"({"group_by":"key","limit":100001})", 422, "limit"},
      {R"({"group_by":"key","order_by":"median"})", 422, "order_by"},
      {R"({"quantiles":[0.5,2]})", 422, "quantiles[1]"},
      {R"({"aggregates":["p99"]})", 422, "aggregates"},
      {R"({"order":"desc"})", 422, "order"},
      {"{not json", 400, "das.v1.Query"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.body);
    Result<HttpResponse> r = HttpPost(port(), "/v1/query", c.body, kJson);
    v1::ErrorResponse error;
    ASSERT_TRUE(IsError(r, c.status, Encoding::kJson, &error));
    EXPECT_NE(error.error().find(c.names), std::string::npos) << error.error();
  }
  v1::ErrorResponse error;
  ASSERT_TRUE(
      IsError(HttpGet(port(), "/analytics?prefix=a&format=json"), 400, Encoding::kJson, &error));
  EXPECT_NE(error.error().find("prefix"), std::string::npos) << error.error();
  ASSERT_TRUE(IsError(HttpGet(port(), "/analytics?from=yesterday&format=json"), 422,
                      Encoding::kJson, &error));
  EXPECT_NE(error.error().find("from"), std::string::npos) << error.error();
  // Nothing was written by any of them.
  EXPECT_EQ(CurrentCount(port()), 0u);
}

TEST_F(QueryTest, AnAnswerOverTheRowCapIsA422NamingIt) {
  ClusterOptions options = Unreplicated();
  options.control_flags = {"--query-max-rows", "3"};
  ASSERT_TRUE(cluster_.Start(options));
  ASSERT_TRUE(BatchOk(port(), {{"a", 1}, {"b", 2}, {"c", 3}, {"d", 4}}, "", 4));
  v1::ErrorResponse error;
  ASSERT_TRUE(IsError(HttpPost(port(), "/v1/query", R"({"group_by":"key"})", kJson), 422,
                      Encoding::kJson, &error));
  EXPECT_NE(error.error().find("--query-max-rows"), std::string::npos) << error.error();
  EXPECT_EQ(QueryOk(port(), R"({"group_by":"key","limit":3})").rows_size(), 3);
}

TEST_F(QueryTest, AnUnreachableShardMakesThePartialAnswerSaySoExactly) {
  ASSERT_TRUE(cluster_.Start(Unreplicated()));
  const std::vector<std::string> on0 = KeysOnWorker(0, 2, 3, "live");
  const std::vector<std::string> on1 = KeysOnWorker(1, 2, 3, "dead");
  ASSERT_TRUE(BatchOk(port(), {{on0[0], 1}, {on0[1], 2}, {on1[0], 40}, {on1[1], 80}}, "", 4));
  ASSERT_TRUE(cluster_.KillWorker(1));

  Result<QueryAnswer> r = PostQuery(port(), R"({"group_by":"key","order_by":"key"})");
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->status, 200) << r->raw;
  EXPECT_TRUE(r->body.is_partial());
  EXPECT_EQ(r->body.total_nodes(), 2u);
  EXPECT_EQ(r->body.responding_nodes(), 1u);
  ASSERT_EQ(r->body.rows_size(), 2);
  EXPECT_EQ(r->body.rows(0).key(), on0[0]);
  EXPECT_EQ(r->body.coverage().shards_needed(), 16u);
  EXPECT_EQ(r->body.coverage().shards_answered(), 8u);
  // Worker 1 (the second) holds the odd shards: 8 ranges of 256 slots.
  ASSERT_EQ(r->body.coverage().missing_size(), 8);
  for (const v1::SlotRange& range : r->body.coverage().missing()) {
    EXPECT_EQ(range.first_slot() % 256, 0u);
    EXPECT_EQ((range.first_slot() / 256) % 2, 1u);
    EXPECT_EQ(range.last_slot(), range.first_slot() + 255);
  }
  // allow_partial false: the same body with 503.
  r = PostQuery(port(), R"({"allow_partial":false})");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 503) << r->raw;
  EXPECT_TRUE(r->body.is_partial());
  EXPECT_EQ(r->body.rows(0).count(), 2u);
  // A key whose shard is gone is a 503, never a zero; a live one is complete.
  r = PostQuery(port(), R"({"key":")" + on1[0] + R"("})");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 503) << r->raw;
  EXPECT_TRUE(r->body.is_partial());
  r = PostQuery(port(), R"({"key":")" + on0[1] + R"("})");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 200) << r->raw;
  EXPECT_FALSE(r->body.is_partial());
  EXPECT_EQ(r->body.rows(0).sum(), 2.0);
  Result<HttpResponse> analytics = HttpGet(port(), "/analytics?key=" + on1[0]);
  ASSERT_TRUE(analytics.ok());
  EXPECT_EQ(analytics->status, 503);
}

TEST_F(QueryTest, AKilledWorkerCostsNothingOnAReplicatedCluster) {
  ASSERT_TRUE(cluster_.Start());
  Load();
  ASSERT_TRUE(cluster_.KillWorker(1));
  const Figures everything = Of([](const TestRow&, bool) { return true; });
  v1::QueryResponse r = QueryOk(port(), R"({"quantiles":[0.1,0.5,0.99]})");
  EXPECT_FALSE(r.is_partial());
  EXPECT_EQ(r.coverage().shards_answered(), 16u);
  EXPECT_EQ(r.responding_nodes(), 1u);
  ASSERT_EQ(r.rows_size(), 1);
  EXPECT_TRUE(RowMatches(r.rows(0), everything));
  ASSERT_EQ(r.rows(0).quantiles_size(), 3);
  EXPECT_EQ(r.rows(0).quantiles(1), everything.Quantile(0.5));
  EXPECT_EQ(r.rows(0).quantiles(2), everything.Quantile(0.99));
  r = QueryOk(port(), R"({"group_by":"key","order_by":"count","limit":1})");
  EXPECT_FALSE(r.is_partial());
  ASSERT_EQ(r.rows_size(), 1);
}

}  // namespace
}  // namespace das::it
