// RunShardQuery over a real store (DuckDB file on disk), and the exact global quantiles of
// query/quantile_search.h over several real stores, checked against DuckDB's own
// quantile_cont over the same rows.
#include "query/shard_query.h"

#include <duckdb.h>
#include <stdlib.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "../temp_dir.h"
#include "common/exact_sum.h"
#include "common/quantile.h"
#include "query/merge.h"
#include "query/plan.h"
#include "query/quantile_search.h"
#include "storage/duckdb_util.h"

namespace das::query {
namespace {

using internal::v1::ShardQuery;
using internal::v1::ShardQueryResponse;

constexpr int64_t kT0 = 1'764'576'000'000'000;  // 2025-12-01T08:00:00Z in microseconds

struct Row {
  std::string key;
  double value;
};

// `q` as a DOUBLE, exactly: a string cast (a literal 0.9, or 0.9::DOUBLE, is a DECIMAL first,
// whose conversion may be an ulp off).
std::string Double(double q) {
  char text[64];
  std::snprintf(text, sizeof text, "'%.17g'::DOUBLE", q);
  return text;
}

Result<ShardQueryResponse> RunQuery(storage::Store& store, ShardQuery query) {
  std::promise<Result<ShardQueryResponse>> done;
  auto future = done.get_future();
  QueryStore(store, std::move(query),
             [&done](Result<ShardQueryResponse> r) { done.set_value(std::move(r)); });
  return future.get();
}

ShardQueryResponse RunQueryOk(storage::Store& store, ShardQuery query) {
  Result<ShardQueryResponse> response = RunQuery(store, std::move(query));
  EXPECT_TRUE(response.ok()) << response.status().ToString();
  return response.ok() ? *response : ShardQueryResponse();
}

class ShardQueryTest : public ::testing::Test {
 protected:
  std::unique_ptr<storage::Store> Open(const std::string& name = "a") {
    storage::StoreOptions options;
    options.data_dir = dir_.path() + "/" + name;
    Result<std::unique_ptr<storage::Store>> store = storage::Store::Open(std::move(options));
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? std::move(store).value() : nullptr;
  }

  // Applies `rows` as raft entry `index` with the leader's ingest time `ts_us`.
  static void Apply(storage::Store& store, uint64_t index, int64_t ts_us,
                    const std::vector<Row>& rows) {
    storage::SubBatch batch;
    for (const Row& row : rows) batch.rows.push_back({row.key, row.value});
    std::promise<Result<std::vector<storage::SubBatchOutcome>>> done;
    auto future = done.get_future();
    store.Apply(
        storage::ReplicatedEntry{index, ts_us, {std::move(batch)}, 0},
        [&done](Result<std::vector<storage::SubBatchOutcome>> r) { done.set_value(std::move(r)); });
    Result<std::vector<storage::SubBatchOutcome>> outcome = future.get();
    ASSERT_TRUE(outcome.ok()) << outcome.status().ToString();
  }

  // The scan itself (RunShardQuery) on one of the store's readers, whatever the query asks.
  static Result<ShardQueryResponse> Scan(storage::Store& store, const ShardQuery& query,
                                         std::chrono::steady_clock::time_point deadline =
                                             std::chrono::steady_clock::time_point::max()) {
    std::promise<Result<ShardQueryResponse>> done;
    store.RunOnReader([&](Result<_duckdb_connection*> conn) {
      if (!conn.ok()) return done.set_value(std::move(conn).status());
      done.set_value(
          RunShardQuery(*conn, store.replica(), query, store.newest_ingest_us(), deadline));
    });
    return done.get_future().get();
  }

  static Result<ShardQueryResponse> Run(storage::Store& store, ShardQuery query) {
    return RunQuery(store, std::move(query));
  }
  static ShardQueryResponse RunOk(storage::Store& store, ShardQuery query) {
    return RunQueryOk(store, std::move(query));
  }

  // A scalar DOUBLE (or BIGINT as double) from SQL on one of the store's reader connections.
  static std::vector<double> Sql(storage::Store& store, const std::string& sql) {
    std::promise<std::vector<double>> done;
    auto future = done.get_future();
    store.RunOnReader([&](Result<_duckdb_connection*> conn) {
      std::vector<double> out;
      if (conn.ok()) {
        Result<storage::duck::QueryResult> result = storage::duck::Query(*conn, sql.c_str());
        EXPECT_TRUE(result.ok()) << result.status().ToString();
        while (result.ok()) {
          std::optional<storage::duck::Chunk> chunk = result->NextChunk();
          if (!chunk) break;
          for (size_t i = 0; i < chunk->size(); ++i) out.push_back(chunk->Data<double>(0)[i]);
        }
      }
      done.set_value(out);
    });
    return future.get();
  }

  static ExactSum SumOf(const std::vector<double>& values) {
    ExactSum sum;
    for (double v : values) sum.Add(v);
    return sum;
  }

  TempDir dir_;
};

TEST_F(ShardQueryTest, AnEmptyStoreAnswersNoRowsAndNoSnapshot) {
  auto store = Open();
  ShardQueryResponse response = RunOk(*store, ShardQuery());
  EXPECT_FALSE(response.has_as_of_us());
  EXPECT_EQ(response.rows_size(), 0);
}

TEST_F(ShardQueryTest, OneBucketHoldsTheExactSumMinMaxAndTheSnapshot) {
  auto store = Open();
  Apply(*store, 1, kT0, {{"a", 1e16}, {"b", 1.0}, {"c", -1e16}, {"d", -0.5}});
  ShardQueryResponse response = RunOk(*store, ShardQuery());
  ASSERT_EQ(response.rows_size(), 1);
  EXPECT_EQ(response.as_of_us(), kT0);
  EXPECT_EQ(response.rows(0).count(), 4u);
  EXPECT_EQ(response.rows(0).exact_sum(), SumOf({1e16, 1.0, -1e16, -0.5}).ToBytes());
  EXPECT_EQ(ExactSum::FromBytes(response.rows(0).exact_sum())->Value(), 0.5);
  EXPECT_EQ(response.rows(0).min(), -1e16);
  EXPECT_EQ(response.rows(0).max(), 1e16);
}

// An unfiltered query of one bucket (/analytics) is answered from the store's running
// aggregate, without a scan, and says exactly what the scan says: count, exact sum, min, max
// and the snapshot. Anything more (a filter, a bucket width, distinct keys) is a scan.
TEST_F(ShardQueryTest, TheRunningAggregateAnswersAnUnfilteredQueryAsTheScanDoes) {
  auto store = Open();
  Apply(*store, 1, kT0, {{"a", 1e16}, {"b", 1.0}});
  Apply(*store, 2, kT0 + 5, {{"c", -1e16}, {"d", -0.5}, {"a", 7.25}});
  ShardQuery query;
  query.set_shard(0);
  ASSERT_TRUE(RunningAggregateAnswers(query));
  const ShardQueryResponse fast = RunOk(*store, query);
  Result<ShardQueryResponse> scanned = Scan(*store, query);
  ASSERT_TRUE(scanned.ok()) << scanned.status().ToString();
  ASSERT_EQ(fast.rows_size(), 1);
  ASSERT_EQ(scanned->rows_size(), 1);
  EXPECT_EQ(fast.as_of_us(), scanned->as_of_us());
  EXPECT_EQ(fast.rows(0).bucket_start_ms(), scanned->rows(0).bucket_start_ms());
  EXPECT_EQ(fast.rows(0).count(), 5u);
  EXPECT_EQ(fast.rows(0).count(), scanned->rows(0).count());
  EXPECT_EQ(fast.rows(0).exact_sum(), scanned->rows(0).exact_sum());
  EXPECT_EQ(fast.rows(0).min(), scanned->rows(0).min());
  EXPECT_EQ(fast.rows(0).max(), scanned->rows(0).max());
  EXPECT_EQ(fast.applied_index(), 2u);

  for (auto narrow : std::vector<std::function<void(ShardQuery&)>>{
           [](ShardQuery& q) { q.set_from_us(kT0); }, [](ShardQuery& q) { q.set_key_prefix("a"); },
           [](ShardQuery& q) { q.add_keys("a"); }, [](ShardQuery& q) { q.set_width_ms(1000); },
           [](ShardQuery& q) { q.set_distinct_keys(true); },
           [](ShardQuery& q) { q.set_as_of_us(kT0); }}) {
    ShardQuery other = query;
    narrow(other);
    EXPECT_FALSE(RunningAggregateAnswers(other)) << other.ShortDebugString();
  }
}

TEST_F(ShardQueryTest, FiltersSelectByTimeKeyKeysAndPrefix) {
  auto store = Open();
  Apply(*store, 1, kT0, {{"alpha", 1}, {"beta", 2}});
  Apply(*store, 2, kT0 + 1000, {{"alpine", 4}, {"gamma", 8}});
  Apply(*store, 3, kT0 + 2000, {{"alpha", 16}});
  auto count_sum = [&](ShardQuery query) {
    ShardQueryResponse r = RunOk(*store, std::move(query));
    if (r.rows_size() == 0) return std::pair<uint64_t, double>(0, 0);
    return std::pair<uint64_t, double>(r.rows(0).count(),
                                       ExactSum::FromBytes(r.rows(0).exact_sum())->Value());
  };
  ShardQuery from;
  from.set_from_us(kT0 + 1000);  // inclusive
  EXPECT_EQ(count_sum(from), std::make_pair(uint64_t{3}, 28.0));
  ShardQuery to;
  to.set_to_us(kT0 + 1000);  // exclusive
  EXPECT_EQ(count_sum(to), std::make_pair(uint64_t{2}, 3.0));
  ShardQuery key;
  key.add_keys("alpha");
  EXPECT_EQ(count_sum(key), std::make_pair(uint64_t{2}, 17.0));
  ShardQuery keys;
  keys.add_keys("beta");
  keys.add_keys("gamma");
  keys.add_keys("nobody");
  EXPECT_EQ(count_sum(keys), std::make_pair(uint64_t{2}, 10.0));
  ShardQuery prefix;
  prefix.set_key_prefix("alp");
  EXPECT_EQ(count_sum(prefix), std::make_pair(uint64_t{3}, 21.0));
  // A prefix is a prefix, not a LIKE pattern.
  ShardQuery pattern;
  pattern.set_key_prefix("al%");
  EXPECT_EQ(count_sum(pattern), std::make_pair(uint64_t{0}, 0.0));
}

TEST_F(ShardQueryTest, BucketsAreAlignedToTheEpochAndCountDistinctKeys) {
  auto store = Open();
  // kT0 is a whole minute; 1.5 s and 61 s later fall in the second and the 62nd second.
  Apply(*store, 1, kT0, {{"a", 1}, {"b", 2}, {"a", 3}});
  Apply(*store, 2, kT0 + 1'500'000, {{"a", 4}});
  Apply(*store, 3, kT0 + 61'000'000, {{"c", 5}});
  ShardQuery query;
  query.set_width_ms(1000);
  query.set_distinct_keys(true);
  ShardQueryResponse r = RunOk(*store, query);
  ASSERT_EQ(r.rows_size(), 3);
  const int64_t t0_ms = kT0 / 1000;
  EXPECT_EQ(r.rows(0).bucket_start_ms(), t0_ms);
  EXPECT_EQ(r.rows(0).count(), 3u);
  EXPECT_EQ(r.rows(0).distinct_keys(), 2u);
  EXPECT_EQ(r.rows(1).bucket_start_ms(), t0_ms + 1000);
  EXPECT_EQ(r.rows(1).count(), 1u);
  EXPECT_EQ(r.rows(2).bucket_start_ms(), t0_ms + 61'000);
  query.set_width_ms(60'000);
  r = RunOk(*store, query);
  ASSERT_EQ(r.rows_size(), 2);
  EXPECT_EQ(r.rows(0).bucket_start_ms(), t0_ms);
  EXPECT_EQ(r.rows(0).count(), 4u);
  EXPECT_EQ(r.rows(1).bucket_start_ms(), t0_ms + 60'000);
}

TEST_F(ShardQueryTest, GroupsAreRankedByMetricThenKeyAndCutAtTheLimit) {
  auto store = Open();
  Apply(*store, 1, kT0, {{"d", 5}, {"b", 5}, {"c", 7}, {"a", 1}, {"e", 2}, {"e", 3}});
  ShardQuery query;
  query.set_group_by_key(true);
  query.set_order_by(ShardQuery::SUM);
  query.set_descending(true);
  query.set_limit(3);
  ShardQueryResponse r = RunOk(*store, query);
  ASSERT_EQ(r.rows_size(), 3);
  // c 7; then b and d tie at 5 (and e's 2 + 3): ties by key ascending.
  EXPECT_EQ(r.rows(0).key(), "c");
  EXPECT_EQ(r.rows(1).key(), "b");
  EXPECT_EQ(r.rows(2).key(), "d");
  query.set_order_by(ShardQuery::COUNT);
  r = RunOk(*store, query);
  EXPECT_EQ(r.rows(0).key(), "e");
  EXPECT_EQ(r.rows(0).count(), 2u);
  EXPECT_EQ(r.rows(1).key(), "a");
  query.set_order_by(ShardQuery::KEY);
  r = RunOk(*store, query);
  EXPECT_EQ(r.rows(0).key(), "e");
  EXPECT_EQ(r.rows(2).key(), "c");
  query.set_descending(false);
  query.set_order_by(ShardQuery::MIN);
  r = RunOk(*store, query);
  EXPECT_EQ(r.rows(0).key(), "a");
  EXPECT_EQ(r.rows(1).key(), "e");
  EXPECT_EQ(r.rows(1).min(), 2);
  EXPECT_EQ(r.rows(1).max(), 3);
}

TEST_F(ShardQueryTest, GroupQuantilesAreDuckDbsQuantileCont) {
  auto store = Open();
  std::mt19937_64 random(7);
  std::uniform_real_distribution<double> value(-1000, 1000);
  std::vector<Row> rows;
  for (int i = 0; i < 997; ++i) rows.push_back({i % 3 == 0 ? "x" : "y", value(random)});
  Apply(*store, 1, kT0, rows);
  ShardQuery query;
  query.set_group_by_key(true);
  query.set_order_by(ShardQuery::KEY);
  query.set_limit(10);
  for (double q : {0.0, 0.1, 0.5, 0.9, 0.99, 1.0}) query.add_quantiles(q);
  ShardQueryResponse r = RunOk(*store, query);
  ASSERT_EQ(r.rows_size(), 2);
  for (const auto& row : r.rows()) {
    ASSERT_EQ(row.quantiles_size(), 6);
    for (int i = 0; i < 6; ++i) {
      const std::vector<double> expected = Sql(
          *store, "SELECT quantile_cont(value, " + Double(query.quantiles(i)) +
                      ") FROM replica_rows_4294967295 WHERE partition_key = '" + row.key() + "'");
      ASSERT_EQ(expected.size(), 1u);
      EXPECT_EQ(row.quantiles(i), expected[0]) << row.key() << " q=" << query.quantiles(i);
    }
  }
}

TEST_F(ShardQueryTest, ASnapshotReadsTheSameRowsWhileWritesGoOn) {
  auto store = Open();
  Apply(*store, 1, kT0, {{"a", 1}});
  ShardQueryResponse first = RunOk(*store, ShardQuery());
  ASSERT_TRUE(first.has_as_of_us());
  // A later entry whose leader's clock is behind: its rows are still stored after the snapshot.
  Apply(*store, 2, kT0 - 5'000'000, {{"b", 2}});
  Apply(*store, 3, kT0, {{"c", 4}});
  ShardQuery again;
  again.set_as_of_us(first.as_of_us());
  ShardQueryResponse second = RunOk(*store, again);
  ASSERT_EQ(second.rows_size(), 1);
  EXPECT_EQ(second.rows(0).count(), 1u);
  EXPECT_EQ(RunOk(*store, ShardQuery()).rows(0).count(), 3u);
  // Every entry's rows got a later ingest time than the rows before them.
  EXPECT_EQ(Sql(*store, "SELECT count(DISTINCT ingest_ts)::DOUBLE FROM replica_rows_4294967295"),
            std::vector<double>{3});
  EXPECT_EQ(Sql(*store, "SELECT (max(epoch_us(ingest_ts)) - " + std::to_string(kT0) +
                            ")::DOUBLE FROM replica_rows_4294967295"),
            std::vector<double>{2});
}

TEST_F(ShardQueryTest, AnAnswerOverTheRowCapIsInvalidArgument) {
  auto store = Open();
  Apply(*store, 1, kT0, {{"a", 1}, {"b", 2}, {"c", 3}});
  ShardQuery query;
  query.set_group_by_key(true);
  query.set_limit(100);
  query.set_max_rows(2);
  Result<ShardQueryResponse> r = Run(*store, query);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("more than 2 rows"), std::string::npos);
  query.set_max_rows(3);
  EXPECT_EQ(RunOk(*store, query).rows_size(), 3);
}

TEST_F(ShardQueryTest, TooManyBucketsStopTheReadWithInvalidArgument) {
  auto store = Open();
  Apply(*store, 1, kT0, {{"a", 1}});
  Apply(*store, 2, kT0 + 1000, {{"a", 2}});
  Apply(*store, 3, kT0 + 2000, {{"a", 3}});
  ShardQuery query;
  query.set_width_ms(1);
  query.set_max_rows(2);
  for (bool grouped : {false, true}) {
    query.set_group_by_key(grouped);
    query.set_limit(10);
    Result<ShardQueryResponse> r = Run(*store, query);
    ASSERT_FALSE(r.ok()) << grouped;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  }
  query.set_max_rows(3);
  EXPECT_EQ(RunOk(*store, query).rows_size(), 3);
}

TEST_F(ShardQueryTest, AReadPastItsDeadlineIsNotRun) {
  auto store = Open();
  Apply(*store, 1, kT0, {{"a", 1}});
  Result<ShardQueryResponse> r =
      Scan(*store, ShardQuery(), std::chrono::steady_clock::now() - std::chrono::seconds(1));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDeadlineExceeded);
}

// Regression guard: DuckDB's rounded sum of a group with cancellation (1e16 + 1 - 1e16) is not
// its exact sum; ranked by it, the group would fall behind one whose sum is exactly the same.
TEST_F(ShardQueryTest, TopGroupsBySumAreRankedByTheirExactSums) {
  auto store = Open();
  Apply(*store, 1, kT0,
        {{"a", 1e16}, {"a", 1}, {"a", -1e16}, {"b", 0.5}, {"b", 0.5}, {"c", 1.5}, {"d", 0.25}});
  ShardQuery query;
  query.set_group_by_key(true);
  query.set_order_by(ShardQuery::SUM);
  query.set_descending(true);
  query.set_limit(2);
  ShardQueryResponse r = RunOk(*store, query);
  ASSERT_EQ(r.rows_size(), 2);
  EXPECT_EQ(r.rows(0).key(), "c");
  EXPECT_EQ(r.rows(1).key(), "a");  // 1 exactly, tied with b: a first
  EXPECT_EQ(ExactSum::FromBytes(r.rows(1).exact_sum())->Value(), 1.0);
  query.set_order_by(ShardQuery::AVG);
  query.set_descending(false);
  r = RunOk(*store, query);
  ASSERT_EQ(r.rows_size(), 2);
  EXPECT_EQ(r.rows(0).key(), "d");  // 0.25
  EXPECT_EQ(r.rows(1).key(), "a");  // 1/3 exactly rounded
  EXPECT_EQ(ExactSum::FromBytes(r.rows(1).exact_sum())->Divide(3), 1.0 / 3);
}

TEST_F(ShardQueryTest, ProbesCountBinsOrSendTheValuesOfARange) {
  auto store = Open();
  std::vector<Row> rows;
  for (int i = 0; i < 100; ++i) rows.push_back({"k", static_cast<double>(i)});
  Apply(*store, 1, kT0, rows);
  ShardQuery query;
  query.set_as_of_us(kT0);
  auto* bins = query.add_probes();
  bins->set_lo(OrderedBits(0.0));
  bins->set_hi(OrderedBits(99.0));
  bins->set_bins(4);
  auto* values = query.add_probes();
  values->set_lo(OrderedBits(10.0));
  values->set_hi(OrderedBits(12.0));
  ShardQueryResponse r = RunOk(*store, query);
  ASSERT_EQ(r.probes_size(), 2);
  uint64_t total = 0;
  for (int b = 0; b < r.probes(0).bin_size(); ++b) total += r.probes(0).count(b);
  EXPECT_EQ(total, 100u);
  EXPECT_EQ(r.probes(0).min(0), 0.0);
  EXPECT_EQ(r.probes(0).max(r.probes(0).bin_size() - 1), 99.0);
  EXPECT_EQ(std::vector<double>(r.probes(1).values().begin(), r.probes(1).values().end()),
            (std::vector<double>{10, 11, 12}));
}

// --- exact global quantiles over several stores --------------------------------------------

// The rounds of query/quantile_search.h over `stores`, as the control node runs them (the
// first round merged by query/merge.h): every bucket's quantiles for `granularity`,
// and how many rounds of probes that took.
std::map<int64_t, std::vector<double>> Quantiles(const std::vector<storage::Store*>& stores,
                                                 const std::vector<double>& qs,
                                                 const std::string& granularity, uint32_t bins,
                                                 uint64_t fetch, int* rounds_out = nullptr) {
  das::v1::Query asked;
  asked.set_granularity(granularity);
  for (double q : qs) asked.add_quantiles(q);
  auto planned = PlanQuery(asked, kDefaultQueryMaxRows);
  const QueryPlan& plan = std::get<QueryPlan>(planned);
  QueryMerge merge(plan);
  std::vector<ShardQueryResponse> first;
  for (storage::Store* store : stores) {
    first.push_back(RunQueryOk(*store, plan.shard_query));
    EXPECT_TRUE(merge.Add(first.back()).ok());
  }
  QuantileSearch search(merge.Summaries(), qs, bins, fetch);
  int rounds = 0;
  while (!search.done() && rounds < 200) {
    ++rounds;
    std::vector<ShardQueryResponse> answers;
    for (size_t s = 0; s < stores.size(); ++s) {
      ShardQuery query = plan.shard_query;
      query.set_as_of_us(first[s].as_of_us());
      for (const auto& probe : search.Probes()) *query.add_probes() = probe;
      answers.push_back(RunQueryOk(*stores[s], query));
    }
    std::vector<const ShardQueryResponse*> fed;
    for (const auto& answer : answers) fed.push_back(&answer);
    Status status = search.Feed(fed);
    EXPECT_TRUE(status.ok()) << status.ToString();
    if (!status.ok()) return {};
  }
  EXPECT_TRUE(search.done());
  if (rounds_out != nullptr) *rounds_out = rounds;
  std::map<int64_t, std::vector<double>> out;
  for (const auto& [start, summary] : merge.Summaries()) out[start] = search.Values(start);
  return out;
}

// DuckDB's quantile_cont over `values` in an in-memory database: the reference.
std::vector<double> DuckDbQuantiles(const std::vector<double>& values,
                                    const std::vector<double>& qs) {
  Result<storage::duck::DatabaseHandle> db = storage::duck::OpenDatabase(":memory:", 1);
  EXPECT_TRUE(db.ok());
  Result<storage::duck::ConnectionHandle> conn = storage::duck::Connect(db->get());
  EXPECT_TRUE(conn.ok());
  EXPECT_TRUE(storage::duck::Exec(conn->get(), "CREATE TABLE t (v DOUBLE)").ok());
  for (size_t i = 0; i < values.size(); i += 1000) {
    std::string sql = "INSERT INTO t VALUES ";
    for (size_t j = i; j < std::min(values.size(), i + 1000); ++j) {
      sql += (j == i ? "(" : ",(") + Double(values[j]) + ")";
    }
    EXPECT_TRUE(storage::duck::Exec(conn->get(), sql.c_str()).ok());
  }
  std::vector<double> out;
  for (double q : qs) {
    char sql[128];
    std::snprintf(sql, sizeof sql, "SELECT quantile_cont(v, %s) FROM t", Double(q).c_str());
    Result<storage::duck::QueryResult> result = storage::duck::Query(conn->get(), sql);
    EXPECT_TRUE(result.ok()) << result.status().ToString();
    std::optional<storage::duck::Chunk> chunk = result->NextChunk();
    out.push_back(chunk->Data<double>(0)[0]);
  }
  return out;
}

TEST_F(ShardQueryTest, QuantilesOfEveryBucketOverSeveralStoresAreDuckDbs) {
  std::vector<std::unique_ptr<storage::Store>> stores;
  for (const char* name : {"b1", "b2"}) stores.push_back(Open(name));
  std::mt19937_64 random(5);
  std::uniform_real_distribution<double> value(-50, 50);
  std::map<int64_t, std::vector<double>> by_bucket;  // second buckets, by their start in ms
  uint64_t index = 0;
  for (int second = 0; second < 4; ++second) {
    for (int entry = 0; entry < 5; ++entry) {
      ++index;
      const int64_t ts = kT0 + second * 1'000'000 + entry * 1000;
      for (size_t s = 0; s < stores.size(); ++s) {
        std::vector<Row> rows;
        for (int i = 0; i < 30 + second * 20; ++i) {
          rows.push_back({"k" + std::to_string(i), value(random)});
          by_bucket[(kT0 / 1000) + second * 1000].push_back(rows.back().value);
        }
        Apply(*stores[s], index, ts, rows);
      }
    }
  }
  const std::vector<double> qs = {0, 0.1, 0.5, 0.9, 1};
  std::vector<storage::Store*> raw;
  for (auto& store : stores) raw.push_back(store.get());
  // Tiny bins: many rounds, every bucket's probes apart.
  const std::map<int64_t, std::vector<double>> got = Quantiles(raw, qs, "1s", 4, 8);
  ASSERT_EQ(got.size(), 4u);
  for (const auto& [start, values] : by_bucket) {
    SCOPED_TRACE(start);
    ASSERT_EQ(got.count(start), 1u);
    EXPECT_EQ(got.at(start), DuckDbQuantiles(values, qs));
  }
}

class GlobalQuantileTest : public ShardQueryTest {
 protected:
  // Spreads `values` over three stores at random and checks every quantile against DuckDB,
  // with the default bins and with tiny ones (many rounds).
  void Check(const std::vector<double>& values) {
    std::vector<std::unique_ptr<storage::Store>> stores;
    for (const char* name : {"s1", "s2", "s3"})
      stores.push_back(Open(std::string(name) + "-" + std::to_string(case_)));
    ++case_;
    std::vector<std::vector<Row>> parts(stores.size());
    std::mt19937_64 random(11);
    for (size_t i = 0; i < values.size(); ++i) {
      parts[random() % parts.size()].push_back({"k" + std::to_string(i), values[i]});
    }
    for (size_t s = 0; s < stores.size(); ++s) {
      if (!parts[s].empty()) Apply(*stores[s], 1, kT0, parts[s]);
    }
    const std::vector<double> qs = {0, 0.001, 0.01, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 1};
    const std::vector<double> expected = DuckDbQuantiles(values, qs);
    std::vector<storage::Store*> raw;
    for (auto& store : stores) raw.push_back(store.get());
    int rounds = 0;
    EXPECT_EQ(
        Quantiles(raw, qs, "all", QuantileSearch::kBins, QuantileSearch::kFetchValues, &rounds)[0],
        expected);
    EXPECT_LE(rounds, 3) << "default bins";
    EXPECT_EQ(Quantiles(raw, qs, "all", 4, 8, &rounds)[0], expected);
    // 4 bins narrow a range of OrderedBits by 4 at least: 32 rounds, plus the values.
    EXPECT_LE(rounds, 33) << "4 bins";
  }
  int case_ = 0;
};

TEST_F(GlobalQuantileTest, UniformValues) {
  std::mt19937_64 random(1);
  std::uniform_real_distribution<double> value(0, 1000);
  std::vector<double> values;
  for (int i = 0; i < 40'000; ++i) values.push_back(value(random));
  Check(values);
}

TEST_F(GlobalQuantileTest, FewDistinctValuesAndNegativeZero) {
  std::vector<double> values;
  for (int i = 0; i < 30'000; ++i) values.push_back(i % 7 == 0 ? -0.0 : (i % 5) - 2.0);
  Check(values);
}

TEST_F(GlobalQuantileTest, ValuesAcrossTheWholeDoubleRange) {
  std::mt19937_64 random(3);
  std::vector<double> values = {-1.7976931348623157e308, 1.7976931348623157e308, 4.9e-324, -0.0,
                                0.0};
  for (int i = 0; i < 20'000; ++i) {
    const double magnitude = std::ldexp(1.0, static_cast<int>(random() % 2000) - 1000);
    values.push_back((random() % 2 == 0 ? 1 : -1) * magnitude);
  }
  Check(values);
}

TEST_F(GlobalQuantileTest, GeometricValuesThatDefeatEqualWidthBinsOfValue) {
  std::vector<double> values;
  for (int i = 0; i < 1000; ++i) values.push_back(std::ldexp(1.0, -i));
  Check(values);
}

TEST_F(GlobalQuantileTest, OneAndTwoRows) {
  Check({42.5});
  Check({-1, 3});
}

}  // namespace
}  // namespace das::query
