// A wrong clock, through the real binaries: one node's wall clock skewed by libfaketime (its
// monotonic clock left alone), rows inserted now, then a query over the last ten minutes by the
// real clock must count every row, complete; /health, /metrics and the log say whose clock is
// off. Replicated (two workers and the witness) and unreplicated.
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "support/api.h"
#include "support/cluster.h"
#include "support/prometheus_text.h"

namespace das::it {
namespace {

constexpr int64_t kHourMs = 3'600'000;
constexpr int kBatches = 10;
constexpr int kRowsPerBatch = 100;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class ClockTest : public ClusterTest {
 protected:
  void SetUp() override {
    ClusterTest::SetUp();
    if (!FakeClockAvailable()) GTEST_FAIL() << "libfaketime is not installed (scripts/setup.sh)";
  }

  // Starts the cluster and waits until every shard has a leader and the control node has
  // measured every worker's clock (a skewed one makes /health "degraded", never "ok").
  testing::AssertionResult StartAndMeasure(ClusterOptions options) {
    options.wait_ready = false;
    if (auto r = cluster_.Start(options); !r) return r;
    return cluster_.PollControlHealth(
        std::chrono::seconds(120),
        [&](const v1::HealthResponse& health) {
          if (health.status() == "starting") return false;
          for (const v1::ShardStatus& shard : health.shards()) {
            if (shard.leader().empty()) return false;
          }
          for (const v1::WorkerStatus& worker : health.workers()) {
            if (!worker.healthy() || !worker.has_clock_offset_ms()) return false;
          }
          return health.workers_size() == options.workers;
        },
        "every worker's clock measured");
  }

  // kBatches batches over every shard; every row acknowledged.
  testing::AssertionResult InsertRows() {
    for (int b = 0; b < kBatches; ++b) {
      std::vector<TestRow> rows;
      for (int i = 0; i < kRowsPerBatch; ++i) {
        rows.push_back({"clock-" + std::to_string(b) + "-" + std::to_string(i), 1.0});
      }
      if (auto r = BatchOk(port(), rows, "", kRowsPerBatch); !r) return r;
    }
    return testing::AssertionSuccess();
  }

  // The rows a query with `json` counts, requiring a complete answer.
  testing::AssertionResult CountIs(const std::string& json, uint64_t want) {
    Result<HttpResponse> r = HttpPost(port(), "/v1/query", json, kJson);
    if (!r.ok()) return testing::AssertionFailure() << r.status().ToString();
    v1::QueryResponse answer;
    if (r->status != 200 || !google::protobuf::util::JsonStringToMessage(r->body, &answer).ok()) {
      return testing::AssertionFailure() << json << " -> " << r->status << " " << r->body;
    }
    const uint64_t count = answer.rows_size() == 1 ? answer.rows(0).count() : 0;
    if (answer.is_partial() || count != want) {
      return testing::AssertionFailure() << json << " -> " << r->body << " (want " << want << ")";
    }
    return testing::AssertionSuccess();
  }

  // Every row is within ten minutes of the real clock, none an hour ago.
  void ExpectEveryRowStampedNow() {
    const int64_t now = NowMs();
    const uint64_t all = kBatches * kRowsPerBatch;
    EXPECT_TRUE(CountIs(R"({"from":")" + std::to_string(now - 600'000) + R"(","to":")" +
                            std::to_string(now + 600'000) + R"("})",
                        all));
    EXPECT_TRUE(CountIs(R"({"from":")" + std::to_string(now - 2 * kHourMs) + R"(","to":")" +
                            std::to_string(now - 30 * 60'000) + R"("})",
                        0));
  }

  v1::HealthResponse Health() {
    Result<HttpResponse> r = HttpGet(port(), "/health");
    v1::HealthResponse health;
    EXPECT_TRUE(r.ok() && health.ParseFromString(r->body)) << r.status().ToString();
    return health;
  }

  std::optional<double> Metric(const std::string& name, const MetricLabels& labels) {
    Result<HttpResponse> r = HttpGet(port(), "/metrics");
    if (!r.ok()) return std::nullopt;
    Result<MetricsText> text = MetricsText::Parse(r->body);
    if (!text.ok()) return std::nullopt;
    return text->Value(name, labels);
  }

  // How many lines of the control node's log contain `needle`.
  int ControlLogLines(const std::string& needle) {
    std::ifstream log(cluster_.control_process()->log_path());
    int n = 0;
    for (std::string line; std::getline(log, line);) n += line.find(needle) != std::string::npos;
    return n;
  }

  // An offset of about an hour, whatever the probes' round trips were.
  static bool AboutAnHour(int64_t ms, int sign) { return std::llabs(ms - sign * kHourMs) < 60'000; }
};

TEST_F(ClockTest, AWorkerAnHourBehindHidesNoRowAndIsReported) {
  ClusterOptions options;
  options.worker_env[1] = FakeClock("-1h");  // worker 2
  ASSERT_TRUE(StartAndMeasure(options));
  ASSERT_TRUE(InsertRows());
  ExpectEveryRowStampedNow();

  const v1::HealthResponse health = Health();
  EXPECT_EQ(health.status(), "degraded");
  EXPECT_EQ(health.clock_correction_ms(), 0);  // the control node's clock stands
  EXPECT_EQ(health.max_clock_offset_ms(), 500u);
  ASSERT_EQ(health.workers_size(), 2);
  for (const v1::WorkerStatus& worker : health.workers()) {
    if (worker.worker_id() == 2) {
      EXPECT_TRUE(AboutAnHour(worker.clock_offset_ms(), -1)) << worker.ShortDebugString();
      EXPECT_TRUE(worker.clock_past_bound());
    } else {
      EXPECT_LT(std::llabs(worker.clock_offset_ms()), 500) << worker.ShortDebugString();
      EXPECT_FALSE(worker.clock_past_bound());
    }
  }
  const std::optional<double> offset = Metric("das_clock_offset_seconds", {{"worker", "2"}});
  ASSERT_TRUE(offset.has_value());
  EXPECT_NEAR(*offset, -3600.0, 60.0);
  EXPECT_EQ(Metric("das_clock_correction_seconds", {}), 0.0);
  // Said once, not once a probe.
  EXPECT_EQ(ControlLogLines("worker 2's clock is"), 1);
}

TEST_F(ClockTest, TheControlNodesWrongClockIsOutvotedByTwoWorkersThatAgree) {
  ClusterOptions options;
  options.control_env = FakeClock("-1h");
  ASSERT_TRUE(StartAndMeasure(options));
  // Both workers read an hour ahead of the control node: the median corrects it.
  ASSERT_TRUE(cluster_.PollControlHealth(
      std::chrono::seconds(30),
      [](const v1::HealthResponse& health) { return AboutAnHour(health.clock_correction_ms(), 1); },
      "the control node's clock corrected"));
  ASSERT_TRUE(InsertRows());
  ExpectEveryRowStampedNow();
  EXPECT_EQ(ControlLogLines("this control node's clock is"), 1);
}

TEST_F(ClockTest, UnreplicatedAWorkerAnHourAheadHidesNoRow) {
  ClusterOptions options = Unreplicated();
  options.worker_env[0] = FakeClock("+1h");  // worker 1
  ASSERT_TRUE(StartAndMeasure(options));
  ASSERT_TRUE(InsertRows());
  ExpectEveryRowStampedNow();
  const v1::HealthResponse health = Health();
  EXPECT_EQ(health.status(), "degraded");
  ASSERT_EQ(health.workers_size(), 2);
  EXPECT_TRUE(AboutAnHour(health.workers(0).clock_offset_ms(), 1));
  EXPECT_TRUE(health.workers(0).clock_past_bound());
  EXPECT_FALSE(health.workers(1).clock_past_bound());
}

}  // namespace
}  // namespace das::it
