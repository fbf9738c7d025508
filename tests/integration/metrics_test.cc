// GET /metrics (README, "Metrics") through the real binaries: the exposition parsed by a
// strict parser of the text format (support/prometheus_text.h), and its counters checked to move
// by exactly what the test did.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "support/api.h"
#include "support/cluster.h"
#include "support/http_client.h"
#include "support/prometheus_text.h"

namespace das::it {
namespace {

// The parsed /metrics of the node on `port`, failing the test if it is not valid.
MetricsText Scrape(int port) {
  Result<HttpResponse> response = HttpGet(port, "/metrics");
  EXPECT_TRUE(response.ok()) << response.status().ToString();
  if (!response.ok()) return {};
  EXPECT_EQ(response->status, 200) << response->body;
  EXPECT_EQ(response->Header("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  Result<MetricsText> parsed = MetricsText::Parse(response->body);
  EXPECT_TRUE(parsed.ok()) << parsed.status().ToString() << "\n" << response->body;
  return parsed.ok() ? std::move(parsed).value() : MetricsText{};
}

std::string TypeOf(const MetricsText& text, const std::string& family) {
  const MetricFamily* found = text.Find(family);
  return found ? found->type : "missing";
}

double Requests(const MetricsText& text, const std::string& route, const std::string& code) {
  return text.Value("das_http_requests_total", {{"route", route}, {"code", code}}).value_or(0);
}

double LatencyCount(const MetricsText& text, const std::string& route) {
  return text.Value("das_http_request_duration_seconds_count", {{"route", route}}).value_or(0);
}

class MetricsTest : public ClusterTest {};

TEST_F(MetricsTest, TheControlNodeCountsRequestsAndRowsAsTheyHappen) {
  ASSERT_TRUE(cluster_.Start());
  const MetricsText before = Scrape(port());
  EXPECT_EQ(TypeOf(before, "das_http_requests_total"), "counter");
  EXPECT_EQ(TypeOf(before, "das_http_request_duration_seconds"), "histogram");
  EXPECT_EQ(TypeOf(before, "das_ingest_rows_total"), "counter");
  EXPECT_EQ(TypeOf(before, "das_ingest_bytes_total"), "counter");
  EXPECT_EQ(TypeOf(before, "das_insert_queue_depth"), "gauge");
  // Two workers, so the control node is every shard's witness: its replicas are reported.
  EXPECT_EQ(TypeOf(before, "das_raft_term"), "gauge");
  EXPECT_EQ(before.Samples("das_raft_term").size(), 16u);
  EXPECT_EQ(before.Samples("das_insert_queue_depth").size(), 16u);
  // The standard process families, and the version.
  EXPECT_EQ(TypeOf(before, "process_cpu_seconds_total"), "counter");
  EXPECT_GT(before.Sum("process_cpu_seconds_total"), 0);
  EXPECT_GT(before.Sum("process_resident_memory_bytes"), 1e6);
  EXPECT_GT(before.Sum("process_open_fds"), 3);
  EXPECT_GT(before.Sum("process_start_time_seconds"), 1.7e9);
  EXPECT_EQ(before.Samples("das_build_info").size(), 1u);

  for (int i = 0; i < 5; ++i) ASSERT_TRUE(InsertOk(port(), "key-" + std::to_string(i), i));
  std::vector<TestRow> rows;
  for (int i = 0; i < 100; ++i) rows.push_back({"batch-" + std::to_string(i), 0.5});
  Result<HttpResponse> batch = PostBatch(port(), rows, "metrics-batch-1");
  ASSERT_TRUE(batch.ok() && batch->status == 200);
  Result<HttpResponse> retry = PostBatch(port(), rows, "metrics-batch-1");
  ASSERT_TRUE(retry.ok() && retry->status == 200);  // a duplicate: stored once
  ASSERT_TRUE(IsError(PostInsert(port(), "", 1.0), 422, std::nullopt));
  ASSERT_EQ(HttpGet(port(), "/no/such/route")->status, 404);
  ASSERT_EQ(HttpGet(port(), "/no/such/route?x=1")->status, 404);

  const MetricsText after = Scrape(port());
  EXPECT_EQ(Requests(after, "/insert", "200") - Requests(before, "/insert", "200"), 5);
  EXPECT_EQ(Requests(after, "/insert", "422") - Requests(before, "/insert", "422"), 1);
  EXPECT_EQ(Requests(after, "/insert/batch", "200") - Requests(before, "/insert/batch", "200"), 2);
  EXPECT_EQ(Requests(after, "other", "404") - Requests(before, "other", "404"), 2);
  EXPECT_EQ(LatencyCount(after, "/insert") - LatencyCount(before, "/insert"), 6);
  EXPECT_EQ(Requests(after, "/metrics", "200") - Requests(before, "/metrics", "200"), 1);
  const double stored = after.Value("das_ingest_rows_total", {{"outcome", "stored"}}).value_or(0) -
                        before.Value("das_ingest_rows_total", {{"outcome", "stored"}}).value_or(0);
  const double duplicate =
      after.Value("das_ingest_rows_total", {{"outcome", "duplicate"}}).value_or(0) -
      before.Value("das_ingest_rows_total", {{"outcome", "duplicate"}}).value_or(0);
  EXPECT_EQ(stored, 105);
  EXPECT_EQ(duplicate, 100);
  EXPECT_GT(after.Sum("das_ingest_bytes_total"), before.Sum("das_ingest_bytes_total"));
  // No raw path ever becomes a label.
  for (const MetricSample& sample : after.Samples("das_http_requests_total")) {
    EXPECT_NE(sample.labels.at("route"), "/no/such/route");
  }
}

TEST_F(MetricsTest, WorkersReportTheirRequestsCommitsAndEveryShardReplica) {
  ASSERT_TRUE(cluster_.Start());
  std::vector<TestRow> rows;
  for (int i = 0; i < 400; ++i) rows.push_back({"w-" + std::to_string(i), 1.0});
  ASSERT_TRUE(BatchOk(port(), rows, "", 400));

  double received = 0;
  for (int w = 0; w < cluster_.num_workers(); ++w) {
    const MetricsText text = Scrape(cluster_.worker_port(w));
    EXPECT_EQ(TypeOf(text, "das_store_commit_duration_seconds"), "histogram");
    EXPECT_EQ(TypeOf(text, "das_internal_write_rows"), "histogram");
    EXPECT_EQ(TypeOf(text, "das_raft_leader_changes_total"), "counter");
    EXPECT_GT(text.Sum("process_resident_memory_bytes"), 1e6);
    received += text.Sum("das_internal_write_rows_sum");
    // Every shard has a replica here, each with one role of four.
    EXPECT_EQ(text.Samples("das_raft_term").size(), 16u);
    EXPECT_EQ(text.Samples("das_raft_role").size(), 64u);
    EXPECT_EQ(text.Sum("das_raft_role"), 16);
    // A queue per replica; none for an unreplicated store, which only an older build kept.
    EXPECT_EQ(text.Samples("das_store_queue_depth").size(), 16u);
    EXPECT_FALSE(text.Value("das_store_queue_depth", {{"shard", "unreplicated"}}).has_value());
  }
  // Each row went to its shard's leader (a redirected retry would add to this, never less).
  EXPECT_GE(received, 400);

  // Once the stores caught up, each worker's replicas hold every row: the two data replicas of
  // every shard (the control node is the witness).
  for (int w = 0; w < cluster_.num_workers(); ++w) {
    ASSERT_TRUE(cluster_.PollControlHealth(
        std::chrono::seconds(60),
        [&](const v1::HealthResponse&) {
          return Scrape(cluster_.worker_port(w)).Sum("das_replica_rows") == 400;
        },
        "worker " + std::to_string(w) + "'s replicas hold all 400 rows"));
    // So its stores committed, and every replica has heard from a leader (the counter counts
    // the first one it knew).
    const MetricsText text = Scrape(cluster_.worker_port(w));
    EXPECT_GT(text.Sum("das_store_commit_duration_seconds_count"), 0);
    for (const MetricSample& changes : text.Samples("das_raft_leader_changes_total")) {
      EXPECT_GE(changes.value, 1) << "worker " << w << ", shard " << changes.labels.at("shard");
    }
  }
  // Exactly one leader per shard over the workers and the witness, once the cluster is ok (the
  // three nodes are scraped one after another: asked again while a leadership change is seen
  // half-way).
  ASSERT_TRUE(cluster_.WaitClusterOk());
  std::map<std::string, double> leaders;
  ASSERT_TRUE(cluster_.PollControlHealth(
      std::chrono::seconds(60),
      [&](const v1::HealthResponse&) {
        leaders.clear();
        for (int port_of : {cluster_.worker_port(0), cluster_.worker_port(1), port()}) {
          for (const MetricSample& s :
               Scrape(port_of).Samples("das_raft_role", {{"role", "leader"}})) {
            leaders[s.labels.at("shard")] += s.value;
          }
        }
        return leaders.size() == 16 &&
               std::all_of(leaders.begin(), leaders.end(),
                           [](const auto& shard) { return shard.second == 1; });
      },
      "one leader per shard over the workers and the witness"));
}

TEST_F(MetricsTest, NoMetricsMeansNoRoute) {
  ClusterOptions options = Unreplicated();
  options.control_flags = {"--no-metrics"};
  options.worker_flags = {"--no-metrics"};
  ASSERT_TRUE(cluster_.Start(options));
  EXPECT_EQ(HttpGet(port(), "/metrics")->status, 404);
  EXPECT_EQ(HttpGet(cluster_.worker_port(0), "/metrics")->status, 404);
  ASSERT_TRUE(InsertOk(port(), "k", 1.0));
}

// --replication-factor 1: each shard one voter, on one worker, which leads it; the control node
// has a writer per shard and no witness.
TEST_F(MetricsTest, UnreplicatedShardsHaveOneVoterEachOnTheirWorker) {
  ASSERT_TRUE(cluster_.Start(Unreplicated()));
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(InsertOk(port(), "u-" + std::to_string(i), 2.0));
  ASSERT_EQ(CurrentCount(port()), 20u);  // read at every shard: each applied its entries
  double rows = 0;
  for (int w = 0; w < cluster_.num_workers(); ++w) {
    const MetricsText text = Scrape(cluster_.worker_port(w));
    rows += text.Sum("das_replica_rows");
    EXPECT_EQ(text.Samples("das_raft_term").size(), 8u) << "worker " << w;
    EXPECT_EQ(text.Samples("das_raft_role", {{"role", "leader"}}).size(), 8u) << "worker " << w;
    for (const MetricSample& leads : text.Samples("das_raft_role", {{"role", "leader"}})) {
      EXPECT_EQ(leads.value, 1) << "worker " << w << ", shard " << leads.labels.at("shard");
    }
  }
  EXPECT_EQ(rows, 20);
  const MetricsText control = Scrape(port());
  EXPECT_EQ(control.Samples("das_insert_queue_depth").size(), 16u);  // by shard
  EXPECT_TRUE(control.Samples("das_raft_term").empty());             // no witness
}

}  // namespace
}  // namespace das::it
