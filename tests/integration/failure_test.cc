// Worker failures with --replication-factor 1: a killed or hung worker costs completeness (its
// shards), not availability; its keys get 503; the answer stays exact over the workers that
// responded and comes within the deadline.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <iostream>
#include <string>
#include <vector>

#include "support/api.h"
#include "support/cluster.h"
#include "support/http_client.h"

namespace das::it {
namespace {

// The default analytics deadline is 1.5 s; the bound is loose on purpose (2 cores, a loaded CI).
constexpr auto kAnalyticsBound = std::chrono::milliseconds(5000);
// The default insert deadline is 2 s.
constexpr auto kInsertBound = std::chrono::milliseconds(6000);

class FailureTest : public ClusterTest {
 protected:
  // The binaries' default deadlines, which these tests measure.
  // These tests are about the unreplicated system: a dead worker's rows are missing.
  static ClusterOptions DefaultDeadlines() {
    ClusterOptions options = Unreplicated();
    options.relaxed_deadlines = false;
    return options;
  }

  // Stores rows on both workers and remembers the aggregate of each.
  void Seed() {
    const std::vector<std::string> on0 = KeysOnWorker(0, 2, 4, "f0");
    const std::vector<std::string> on1 = KeysOnWorker(1, 2, 4, "f1");
    for (int i = 0; i < 4; ++i) {
      ASSERT_TRUE(InsertOk(port(), on0[i], 1.25 * (i + 1)));
      per_worker_[0].Add(1.25 * (i + 1));
      ASSERT_TRUE(InsertOk(port(), on1[i], -0.5 * (i + 1)));
      per_worker_[1].Add(-0.5 * (i + 1));
    }
    const std::vector<TestRow> batch = {{on0[0], 20.0}, {on1[0], -20.0}, {on1[1], 0.25}};
    ASSERT_TRUE(BatchOk(port(), batch, "seed", 3));
    per_worker_[0].Add(20.0);
    per_worker_[1].Add(-20.0);
    per_worker_[1].Add(0.25);
  }

  // Checks an analytics answer that only `live` responded to.
  void ExpectPartialOver(int live) {
    Result<Analytics> a = GetAnalytics(port());
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    EXPECT_TRUE(Completeness(*a, 200, true, 2, 1));
    EXPECT_TRUE(per_worker_[live].Matches(a->body)) << "over worker " << live << " only";
    EXPECT_LT(a->elapsed, kAnalyticsBound) << "analytics took " << a->elapsed.count() << " ms";
  }

  // GET /health: 200 from the control node, "degraded", one entry per worker.
  void GetDegradedHealth(v1::HealthResponse& health) {
    Result<HttpResponse> r = HttpGet(port(), "/health");
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->status, 200);
    ASSERT_TRUE(health.ParseFromString(r->body));
    EXPECT_EQ(health.status(), "degraded");
    EXPECT_EQ(health.node(), "control");
    ASSERT_EQ(health.workers_size(), 2);
  }

  Expected per_worker_[2];
};

TEST_F(FailureTest, KilledWorkerGivesPartialExactAnalyticsAnd503ForItsKeys) {
  ASSERT_TRUE(cluster_.Start(DefaultDeadlines()));
  ASSERT_NO_FATAL_FAILURE(Seed());
  ASSERT_TRUE(cluster_.KillWorker(1, SIGKILL));

  const std::string dead_key = KeysOnWorker(1, 2, 1, "dead")[0];
  const std::string live_key = KeysOnWorker(0, 2, 1, "live")[0];
  EXPECT_TRUE(IsError(PostInsert(port(), dead_key, 1.0), 503, Encoding::kProtobuf));
  EXPECT_TRUE(IsError(PostInsert(port(), dead_key, 1.0, Encoding::kJson), 503, Encoding::kJson));
  v1::ErrorResponse error;
  EXPECT_TRUE(IsError(PostBatch(port(), {{dead_key, 1.0}, {dead_key, 2.0}}, "dead-only"), 503,
                      Encoding::kProtobuf, &error));
  EXPECT_EQ(error.rows_written(), 0u) << error.ShortDebugString();
  ASSERT_TRUE(InsertOk(port(), live_key, 3.5));
  per_worker_[0].Add(3.5);
  // A batch whose rows and key (its home shard decides it) are on the live worker.
  const std::string live_batch = KeysOnWorker(0, 2, 1, "live-batch")[0];
  ASSERT_TRUE(BatchOk(port(), {{live_key, 0.5}, {live_key, 0.75}}, live_batch, 2));
  per_worker_[0].Add(0.5);
  per_worker_[0].Add(0.75);

  ExpectPartialOver(0);
  ExpectPartialOver(0);  // and again: no slower the second time

  // /health still answers 200, and says which worker is down.
  v1::HealthResponse health;
  ASSERT_NO_FATAL_FAILURE(GetDegradedHealth(health));
  EXPECT_TRUE(health.workers(0).healthy()) << health.ShortDebugString();
  EXPECT_FALSE(health.workers(1).healthy()) << health.ShortDebugString();
  EXPECT_NE(health.workers(1).error(), "");

  // Back: the rows refused with 503 were stored nowhere, the others are all there.
  ASSERT_TRUE(cluster_.RestartWorker(1));
  Expected all = per_worker_[0];
  for (double v : {-0.5, -1.0, -1.5, -2.0, -20.0, 0.25}) all.Add(v);  // worker 1's seed
  ASSERT_EQ(all.count(), per_worker_[0].count() + per_worker_[1].count());
  Result<Analytics> a = GetAnalytics(port());
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_TRUE(Completeness(*a, 200, false, 2, 2));
  EXPECT_TRUE(all.Matches(a->body));
}

TEST_F(FailureTest, StoppedWorkerGivesPartialAnalyticsWithinTheDeadline) {
  ASSERT_TRUE(cluster_.Start(DefaultDeadlines()));
  ASSERT_NO_FATAL_FAILURE(Seed());
  ASSERT_TRUE(cluster_.StopWorker(0));

  ExpectPartialOver(1);
  ExpectPartialOver(1);
  {
    // Nor does a filtered /analytics: it keeps the analytics deadline, not the query API's 5 s.
    const auto start = std::chrono::steady_clock::now();
    Result<HttpResponse> r = HttpGet(port(), "/analytics?from=0");
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_LT(std::chrono::steady_clock::now() - start, kAnalyticsBound);
    EXPECT_EQ(r->status, 200);
    v1::AnalyticsResponse filtered;
    ASSERT_TRUE(filtered.ParseFromString(r->body));
    EXPECT_TRUE(filtered.is_partial());
    EXPECT_EQ(filtered.responding_nodes(), 1u);
  }
  {
    // /health does not hang on the hung worker either.
    const auto start = std::chrono::steady_clock::now();
    Result<HttpResponse> r = HttpGet(port(), "/health");
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_LT(std::chrono::steady_clock::now() - start, kAnalyticsBound);
    EXPECT_EQ(r->status, 200);
    v1::HealthResponse health;
    ASSERT_TRUE(health.ParseFromString(r->body));
    EXPECT_EQ(health.status(), "degraded") << health.ShortDebugString();
  }

  // An insert for the hung worker's keys gets 503 within the insert deadline. Its outcome is
  // unknown to the control node (the worker may apply it once resumed): value 1000 makes it
  // visible below.
  const std::string hung_key = KeysOnWorker(0, 2, 1, "hung")[0];
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(IsError(PostInsert(port(), hung_key, 1000.0), 503, Encoding::kProtobuf));
  EXPECT_LT(std::chrono::steady_clock::now() - start, kInsertBound);
  // The other worker still takes inserts.
  const std::string live_key = KeysOnWorker(1, 2, 1, "live")[0];
  ASSERT_TRUE(InsertOk(port(), live_key, 0.125));
  per_worker_[1].Add(0.125);
  ExpectPartialOver(1);

  ASSERT_TRUE(cluster_.ContinueWorker(0));
  ASSERT_TRUE(cluster_.WaitControlSeesAllWorkersHealthy());
  Result<Analytics> a = GetAnalytics(port());
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_TRUE(Completeness(*a, 200, false, 2, 2));
  const uint64_t base_count = per_worker_[0].count() + per_worker_[1].count();
  const double base_sum = per_worker_[0].sum() + per_worker_[1].sum();
  const bool applied = a->body.count() == base_count + 1;
  EXPECT_TRUE(a->body.count() == base_count || applied) << a->body.ShortDebugString();
  EXPECT_EQ(a->body.sum(), base_sum + (applied ? 1000.0 : 0.0)) << a->body.ShortDebugString();
  EXPECT_EQ(a->body.min(), -20.0);
  EXPECT_EQ(a->body.max(), applied ? 1000.0 : 20.0);
  if (applied) {
    std::cout << "note: the insert answered 503 during SIGSTOP was applied after SIGCONT\n";
  }
}

// A control node restarted while a worker is dead: the dead worker's shards never get a leader,
// and the node serves the others all the same (its /health 200 "degraded", not "starting").
TEST_F(FailureTest, AControlNodeRestartedWhileAWorkerIsDeadServesTheOthers) {
  ASSERT_TRUE(cluster_.Start(DefaultDeadlines()));
  ASSERT_NO_FATAL_FAILURE(Seed());
  ASSERT_TRUE(cluster_.KillWorker(1));
  ASSERT_TRUE(cluster_.RestartControl());
  const std::string live_key = KeysOnWorker(0, 2, 1, "after-restart")[0];
  ASSERT_TRUE(InsertOk(port(), live_key, 0.375));
  per_worker_[0].Add(0.375);
  EXPECT_TRUE(
      IsError(PostInsert(port(), KeysOnWorker(1, 2, 1, "dead")[0], 1.0), 503, Encoding::kProtobuf));
  ExpectPartialOver(0);
  v1::HealthResponse health;
  ASSERT_NO_FATAL_FAILURE(GetDegradedHealth(health));
  EXPECT_FALSE(health.workers(1).healthy()) << health.ShortDebugString();
}

TEST_F(FailureTest, NoWorkerAtAllGives503AndDegradedHealth) {
  ClusterOptions options = DefaultDeadlines();
  options.start_workers = false;
  ASSERT_TRUE(cluster_.Start(options));
  Result<Analytics> a = GetAnalytics(port());
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_TRUE(Completeness(*a, 503, true, 2, 0)) << a->body.ShortDebugString();
  EXPECT_TRUE(Expected().Matches(a->body));
  EXPECT_LT(a->elapsed, kAnalyticsBound);

  Result<HttpResponse> json = HttpGet(port(), "/analytics?format=json");
  ASSERT_TRUE(json.ok()) << json.status().ToString();
  EXPECT_EQ(json->status, 503);
  EXPECT_EQ(json->MediaType(), "application/json");
  Result<google::protobuf::Struct> object = ParseJsonObject(json->body);
  ASSERT_TRUE(object.ok()) << object.status().ToString();
  EXPECT_EQ(FieldNames(*object), "count,is_partial,responding_nodes,sum,total_nodes");

  EXPECT_TRUE(IsError(PostInsert(port(), "k", 1.0), 503, Encoding::kProtobuf));
  EXPECT_TRUE(IsError(PostInsert(port(), "k", 1.0, Encoding::kJson), 503, Encoding::kJson));
  EXPECT_TRUE(IsError(PostBatch(port(), {{"a", 1.0}, {"b", 2.0}, {"c", 3.0}}, "none"), 503,
                      Encoding::kProtobuf));

  // The shards never had a leader: 503 "starting", and each worker named as down.
  Result<HttpResponse> r = HttpGet(port(), "/health");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 503);
  v1::HealthResponse health;
  ASSERT_TRUE(health.ParseFromString(r->body));
  EXPECT_EQ(health.status(), "starting");
  EXPECT_NE(health.starting(), "");
  ASSERT_EQ(health.workers_size(), 2);
  for (const v1::WorkerStatus& w : health.workers()) {
    EXPECT_FALSE(w.healthy()) << w.ShortDebugString();
    EXPECT_NE(w.error(), "");
  }
}

}  // namespace
}  // namespace das::it
