// Sums are exact: no sum of finite values overflows inside the system or turns into NaN, and
// what a worker starts from after a restart (a scan of its DuckDB file) agrees with what it
// computed while running.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "support/api.h"
#include "support/cluster.h"
#include "support/http_client.h"

namespace das::it {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

class ExactnessTest : public ClusterTest {
 protected:
  // The complete answer, with the exact count, sum, average, min and max.
  void ExpectAnalytics(uint64_t count, double sum, double average, double min, double max) {
    Result<Analytics> a = GetAnalytics(port());
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    EXPECT_TRUE(Completeness(*a, 200, false, 2, 2));
    const v1::AnalyticsResponse& body = a->body;
    EXPECT_EQ(body.count(), count) << body.ShortDebugString();
    EXPECT_EQ(body.sum(), sum) << body.ShortDebugString();
    ASSERT_TRUE(body.has_average()) << body.ShortDebugString();
    EXPECT_EQ(body.average(), average) << body.ShortDebugString();
    EXPECT_FALSE(std::isnan(body.average()));
    EXPECT_EQ(body.min(), min);
    EXPECT_EQ(body.max(), max);
  }
};

// Regression: three valid rows of 1e308 overflowed the running sum, its compensation made it
// NaN, and every later answer said "NaN" for the whole cluster, also after a restart.
TEST_F(ExactnessTest, HugeValuesNeverGiveNaNAndTheSumComesBackAcrossRestarts) {
  ASSERT_TRUE(cluster_.Start());
  const std::string on0 = KeysOnWorker(0, 2, 1, "huge0")[0];
  const std::string on1 = KeysOnWorker(1, 2, 1, "huge1")[0];
  ASSERT_TRUE(InsertOk(port(), on0, 1e308));
  ASSERT_TRUE(InsertOk(port(), on0, 1e308, Encoding::kJson));
  ASSERT_TRUE(InsertOk(port(), on1, 1e308));
  ASSERT_TRUE(InsertOk(port(), on1, -1e308));
  // The exact sum is 2e308: outside the double range, so +Infinity; the average is exact.
  ExpectAnalytics(4, kInf, 1e308 / 2, -1e308, 1e308);
  Result<HttpResponse> json = HttpGet(port(), "/analytics?format=json");
  ASSERT_TRUE(json.ok()) << json.status().ToString();
  EXPECT_NE(json->body.find(R"("sum":"Infinity")"), std::string::npos) << json->body;
  EXPECT_NE(json->body.find(R"("average":5e+307)"), std::string::npos) << json->body;

  // A restart starts each worker from a scan of its file, which must agree.
  ASSERT_TRUE(cluster_.RestartWorker(0));
  ASSERT_TRUE(cluster_.RestartWorker(1));
  ExpectAnalytics(4, kInf, 1e308 / 2, -1e308, 1e308);

  // Later rows bring the sum back inside the range: exactly 0.
  ASSERT_TRUE(BatchOk(port(), {{on0, -1e308}, {on1, -1e308}}, "", 2));
  ExpectAnalytics(6, 0.0, 0.0, -1e308, 1e308);
  ASSERT_TRUE(cluster_.RestartWorker(0));
  ASSERT_TRUE(cluster_.RestartWorker(1));
  ExpectAnalytics(6, 0.0, 0.0, -1e308, 1e308);
}

// Cancellation across workers: each worker's sum alone rounds, the merge of the exact sums
// does not (1e16 + 1 on one worker, -1e16 on the other: exactly 1).
TEST_F(ExactnessTest, SumsAreMergedExactlyAcrossWorkers) {
  ASSERT_TRUE(cluster_.Start());
  const std::string on0 = KeysOnWorker(0, 2, 1, "cancel0")[0];
  const std::string on1 = KeysOnWorker(1, 2, 1, "cancel1")[0];
  ASSERT_TRUE(BatchOk(port(), {{on0, 1e16}, {on0, 1.0}, {on1, -1e16}}, "", 3));
  ExpectAnalytics(3, 1.0, 1.0 / 3, -1e16, 1e16);
  ASSERT_TRUE(cluster_.RestartWorker(0));
  ExpectAnalytics(3, 1.0, 1.0 / 3, -1e16, 1e16);
}

}  // namespace
}  // namespace das::it
