// Batches and their idempotency keys: a batch is split by worker, each part is atomic, and a
// retry with the same key answers 200 and never stores a row twice, across worker and control
// node restarts.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "support/api.h"
#include "support/cluster.h"

namespace das::it {
namespace {

class IdempotencyTest : public ClusterTest {
 protected:
  void ExpectComplete(const Expected& expected) {
    Result<Analytics> a = GetAnalytics(port());
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    EXPECT_TRUE(Completeness(*a, 200, false, 2, 2));
    EXPECT_TRUE(expected.Matches(a->body));
  }
};

// 4 rows on worker 0 and 3 on worker 1, interleaved.
std::vector<TestRow> SpanningBatch(const std::string& prefix) {
  const std::vector<std::string> on0 = KeysOnWorker(0, 2, 4, prefix + "0");
  const std::vector<std::string> on1 = KeysOnWorker(1, 2, 3, prefix + "1");
  return {{on0[0], 1.0}, {on1[0], 10.0}, {on0[1], 2.0}, {on1[1], 20.0},
          {on0[2], 3.0}, {on1[2], 30.0}, {on0[3], 4.25}};
}

TEST_F(IdempotencyTest, BatchSpanningADownWorkerIs503ThenRetryStoresEachRowOnce) {
  ASSERT_TRUE(cluster_.Start());
  const std::vector<TestRow> batch = SpanningBatch("span");
  Expected live_part;
  for (const TestRow& row : batch) {
    if (WorkerOf(row.key, 2) == 0) live_part.Add(row.value);
  }
  ASSERT_TRUE(cluster_.KillWorker(1));

  v1::ErrorResponse error;
  ASSERT_TRUE(IsError(PostBatch(port(), batch, "span-1"), 503, Encoding::kProtobuf, &error));
  // Worker 0's part is atomic on its own: stored whole or not at all, and the answer says which.
  Result<Analytics> a = GetAnalytics(port());
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_TRUE(Completeness(*a, 200, true, 2, 1));
  EXPECT_TRUE(a->body.count() == 0 || a->body.count() == live_part.count())
      << a->body.ShortDebugString();
  EXPECT_EQ(error.rows_written(), a->body.count())
      << "ErrorResponse.rows_written should count the rows stored: " << error.ShortDebugString();
  if (a->body.count() != 0) {
    EXPECT_TRUE(live_part.Matches(a->body));
  }

  ASSERT_TRUE(cluster_.RestartWorker(1));
  Expected all;
  all.Add(batch);
  ASSERT_TRUE(BatchOk(port(), batch, "span-1", batch.size()));
  ExpectComplete(all);
  ASSERT_TRUE(BatchOk(port(), batch, "span-1", batch.size()));
  ASSERT_TRUE(BatchOk(port(), batch, "span-1", batch.size(), Encoding::kJson));
  ExpectComplete(all);
}

TEST_F(IdempotencyTest, RetryAfterFullSuccessStoresNothingAcrossRestarts) {
  ASSERT_TRUE(cluster_.Start());
  const std::vector<TestRow> batch = SpanningBatch("full");
  Expected all;
  all.Add(batch);
  ASSERT_TRUE(BatchOk(port(), batch, "full-1", batch.size()));
  // Killed right after the acknowledgement: the rows and their key are durable together.
  ASSERT_TRUE(cluster_.KillWorker(0));
  ASSERT_TRUE(cluster_.KillWorker(1));
  ASSERT_TRUE(cluster_.RestartWorker(0));
  ASSERT_TRUE(cluster_.RestartWorker(1));
  ExpectComplete(all);
  ASSERT_TRUE(BatchOk(port(), batch, "full-1", batch.size()));
  ExpectComplete(all);

  ASSERT_TRUE(cluster_.RestartControl());
  ASSERT_TRUE(BatchOk(port(), batch, "full-1", batch.size()));
  ASSERT_TRUE(BatchOk(port(), batch, "full-1", batch.size(), Encoding::kJson));
  ExpectComplete(all);
}

TEST_F(IdempotencyTest, ConcurrentRetriesOfOneBatchStoreItOnce) {
  ASSERT_TRUE(cluster_.Start());
  constexpr int kSenders = 6;
  Expected all;
  for (int round = 0; round < 5; ++round) {
    const std::vector<TestRow> batch = SpanningBatch("race" + std::to_string(round));
    const std::string id = "race-" + std::to_string(round);
    std::atomic<int> ready{0};
    std::vector<std::string> failures(kSenders);
    std::vector<std::thread> senders;
    for (int s = 0; s < kSenders; ++s) {
      senders.emplace_back([&, s] {
        ready.fetch_add(1);
        while (ready.load() < kSenders) std::this_thread::yield();
        if (auto r = BatchOk(port(), batch, id, batch.size()); !r) failures[s] = r.message();
      });
    }
    for (std::thread& t : senders) t.join();
    for (int s = 0; s < kSenders; ++s) {
      EXPECT_EQ(failures[s], "") << "round " << round << ", sender " << s;
    }
    all.Add(batch);
  }
  ExpectComplete(all);
}

TEST_F(IdempotencyTest, DeduplicationIsByKeyNotByContent) {
  ASSERT_TRUE(cluster_.Start());
  const std::vector<TestRow> batch = SpanningBatch("content");
  Expected all;
  ASSERT_TRUE(BatchOk(port(), batch, "content-a", batch.size()));
  ASSERT_TRUE(BatchOk(port(), batch, "content-b", batch.size()));
  all.Add(batch);
  all.Add(batch);
  // Without a key, every batch is new.
  ASSERT_TRUE(BatchOk(port(), batch, "", batch.size()));
  ASSERT_TRUE(BatchOk(port(), batch, "", batch.size()));
  all.Add(batch);
  all.Add(batch);
  ExpectComplete(all);
}

}  // namespace
}  // namespace das::it
