// An upgrade: workers started on data directories the build before one store per worker wrote
// (tests/data/v0-layout, see tests/data/make-v0-layout.sh) keep every row and key, once.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "support/api.h"
#include "support/cluster.h"

namespace das::it {
namespace {

const std::string kData = DAS_TEST_DATA_DIR "/v0-layout";

// The generator's rows: k0..k9 with 0.5 * i, and the batch "v0-batch" (b0..b3: 100..400).
const std::vector<TestRow> kBatch = {{"b0", 100}, {"b1", 200}, {"b2", 300}, {"b3", 400}};

class MigrationTest : public ClusterTest {
 protected:
  // The old layout's unreplicated files, into the two workers' data directories.
  void CopyOldFiles() {
    for (int id : {1, 2}) {
      const std::string dir = cluster_.dir() + "/worker-" + std::to_string(id);
      std::filesystem::create_directories(dir);
      std::filesystem::copy_file(kData + "/r1-worker-" + std::to_string(id) + "/worker.duckdb",
                                 dir + "/worker.duckdb");
    }
  }

  static Expected OldRows() {
    Expected expected;
    for (int i = 0; i < 10; ++i) expected.Add(0.5 * i);
    expected.Add(kBatch);
    return expected;
  }

  void ExpectComplete(const Expected& expected) {
    Result<Analytics> a = GetAnalytics(port());
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    EXPECT_TRUE(Completeness(*a, 200, false, 2, 2));
    EXPECT_TRUE(expected.Matches(a->body));
  }
};

// Two unreplicated workers, each on its old worker.duckdb: the answers are exact over the old
// rows, a retry of the old batch is a duplicate and a reuse of its key with other rows a 422,
// the old files are gone, and a restart keeps it all.
TEST_F(MigrationTest, UnreplicatedWorkersKeepTheirRowsAndKeysAcrossTheUpgrade) {
  CopyOldFiles();
  ASSERT_TRUE(cluster_.Start(Unreplicated()));
  Expected expected = OldRows();
  for (int restart = 0; restart < 2; ++restart) {
    ASSERT_NO_FATAL_FAILURE(ExpectComplete(expected));
    EXPECT_TRUE(BatchOk(port(), kBatch, "v0-batch", 4));  // a duplicate: nothing stored
    EXPECT_TRUE(IsError(PostBatch(port(), {{"b0", 1}}, "v0-batch"), 422, Encoding::kProtobuf));
    for (int id : {1, 2}) {
      const std::string dir = cluster_.dir() + "/worker-" + std::to_string(id);
      EXPECT_FALSE(std::filesystem::exists(dir + "/worker.duckdb"));
      EXPECT_TRUE(std::filesystem::exists(dir + "/store.duckdb"));
    }
    ASSERT_TRUE(InsertOk(port(), "after-upgrade-" + std::to_string(restart), 1.25));
    expected.Add(1.25);
    ASSERT_TRUE(cluster_.KillWorker(0));
    ASSERT_TRUE(cluster_.KillWorker(1));
    ASSERT_TRUE(cluster_.RestartWorker(0));
    ASSERT_TRUE(cluster_.RestartWorker(1));
  }
  Result<Analytics> a = GetAnalytics(port());
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_TRUE(expected.Matches(a->body));
}

// The same old files under a replicated cluster (an upgrade that also turns replication on): the
// control node imports the rows (with their ingest times) and keys the workers kept
// unreplicated into the shards, and answers nothing until it has; afterwards every answer is
// exact, the old batch's retry a duplicate, its key's reuse a 422, and restarts of every node
// import nothing twice.
TEST_F(MigrationTest, AReplicatedClusterImportsWhatTheOldLayoutKeptUnreplicated) {
  CopyOldFiles();
  const auto started = std::chrono::system_clock::now();
  ASSERT_TRUE(cluster_.Start());
  Expected expected = OldRows();
  for (int restart = 0; restart < 2; ++restart) {
    ASSERT_NO_FATAL_FAILURE(ExpectComplete(expected));
    // The old rows keep the time they were stored at, before this test began.
    const auto before =
        std::chrono::duration_cast<std::chrono::milliseconds>(started.time_since_epoch()).count();
    Result<HttpResponse> old =
        HttpGet(port(), "/analytics?from=0&to=" + std::to_string(before) + "&format=protobuf");
    ASSERT_TRUE(old.ok());
    ASSERT_EQ(old->status, 200) << old->body;
    v1::AnalyticsResponse old_rows;
    ASSERT_TRUE(old_rows.ParseFromString(old->body));
    EXPECT_EQ(old_rows.count(), 14u);
    EXPECT_TRUE(BatchOk(port(), kBatch, "v0-batch", 4));  // a duplicate: nothing stored
    EXPECT_TRUE(IsError(PostBatch(port(), {{"b0", 1}}, "v0-batch"), 422, Encoding::kProtobuf));
    ASSERT_TRUE(InsertOk(port(), "after-upgrade-" + std::to_string(restart), 1.25));
    expected.Add(1.25);
    ASSERT_TRUE(cluster_.KillControl());
    ASSERT_TRUE(cluster_.RestartWorker(0, /*wait_ok=*/false));
    ASSERT_TRUE(cluster_.RestartWorker(1, /*wait_ok=*/false));
    ASSERT_TRUE(cluster_.RestartControl());
    ASSERT_TRUE(cluster_.WaitClusterOk());
  }
  Result<Analytics> a = GetAnalytics(port());
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_TRUE(expected.Matches(a->body));
}

}  // namespace
}  // namespace das::it
