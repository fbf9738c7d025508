// Restarts: a worker killed with SIGKILL comes back with every acknowledged row exactly once; a
// restarted control node serves the stored data; SIGTERM stops the processes cleanly.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <string>
#include <vector>

#include "support/api.h"
#include "support/cluster.h"

namespace das::it {
namespace {

class RestartTest : public ClusterTest {
 protected:
  // Stores 12 single rows and a 6-row batch over both workers.
  void Seed(const std::string& prefix) {
    const std::vector<std::string> on0 = KeysOnWorker(0, 2, 6, prefix + "0");
    const std::vector<std::string> on1 = KeysOnWorker(1, 2, 6, prefix + "1");
    std::vector<TestRow> batch;
    for (int i = 0; i < 6; ++i) {
      ASSERT_TRUE(InsertOk(port(), on0[i], 0.25 * i + 1, Encoding::kProtobuf));
      expected_.Add(0.25 * i + 1);
      ASSERT_TRUE(InsertOk(port(), on1[i], -0.75 * i, Encoding::kJson));
      expected_.Add(-0.75 * i);
      batch.push_back({i % 2 == 0 ? on0[i] : on1[i], 5.5 * i});
    }
    ASSERT_TRUE(BatchOk(port(), batch, prefix + "-batch", 6));
    expected_.Add(batch);
  }

  void ExpectComplete() {
    Result<Analytics> a = GetAnalytics(port());
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    EXPECT_TRUE(Completeness(*a, 200, false, 2, 2));
    EXPECT_TRUE(expected_.Matches(a->body));
  }

  Expected expected_;
};

TEST_F(RestartTest, KilledWorkerComesBackWithEveryAcknowledgedRowOnce) {
  ASSERT_TRUE(cluster_.Start());
  ASSERT_NO_FATAL_FAILURE(Seed("a"));
  // SIGKILL right after the last acknowledgement: acknowledged means durable.
  ASSERT_TRUE(cluster_.KillWorker(1));
  ASSERT_TRUE(cluster_.RestartWorker(1));
  ExpectComplete();

  // Both at once, then more writes on the restarted workers.
  ASSERT_TRUE(cluster_.KillWorker(0));
  ASSERT_TRUE(cluster_.KillWorker(1));
  ASSERT_TRUE(cluster_.RestartWorker(0));
  ASSERT_TRUE(cluster_.RestartWorker(1));
  ExpectComplete();
  ASSERT_NO_FATAL_FAILURE(Seed("b"));
  ExpectComplete();
}

TEST_F(RestartTest, RestartedControlNodeServesStoredDataAndTakesInserts) {
  ASSERT_TRUE(cluster_.Start());
  ASSERT_NO_FATAL_FAILURE(Seed("c"));
  ASSERT_TRUE(cluster_.KillControl(SIGKILL));
  ASSERT_TRUE(cluster_.RestartControl());  // same port
  // Every shard led by a data replica again (the restarted witness may have won an election
  // meanwhile, and reads wait for its handoff), and every worker seen healthy: responding_nodes
  // counts a worker no shard read needed once a health check saw it.
  ASSERT_TRUE(cluster_.WaitClusterOk());
  ExpectComplete();
  ASSERT_NO_FATAL_FAILURE(Seed("d"));
  ExpectComplete();
}

TEST_F(RestartTest, SigtermStopsProcessesCleanlyAndKeepsData) {
  ASSERT_TRUE(cluster_.Start());
  ASSERT_NO_FATAL_FAILURE(Seed("e"));
  ASSERT_TRUE(cluster_.KillWorker(0, SIGTERM));  // waits up to 10 s for the exit
  ASSERT_TRUE(cluster_.KillControl(SIGTERM));
  // A graceful stop ends with exit status 0, not death by the signal.
  for (Process* p : {cluster_.worker_process(0), cluster_.control_process()}) {
    const std::optional<int> status = p->Wait(std::chrono::milliseconds(0));
    ASSERT_TRUE(status.has_value());
    EXPECT_EQ(DescribeWaitStatus(*status), "exited with 0") << p->log_path();
  }
  ASSERT_TRUE(cluster_.RestartWorker(0));
  ASSERT_TRUE(cluster_.RestartControl());
  // Every shard led by a data replica again (the restarted witness may have won an election
  // meanwhile, and reads wait for its handoff), and every worker seen healthy: responding_nodes
  // counts a worker no shard read needed once a health check saw it.
  ASSERT_TRUE(cluster_.WaitClusterOk());
  ExpectComplete();
}

}  // namespace
}  // namespace das::it
