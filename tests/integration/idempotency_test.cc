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
#include "support/http_client.h"

namespace das::it {
namespace {

class IdempotencyTest : public ClusterTest {
 protected:
  // Rows stored on worker 0 and worker 1, as each reports them (through the control node's
  // /health): exact per-worker counts, not only the total. A read of every shard first: a
  // worker counts the rows it applied, and a shard's read waits until it applied what its log
  // committed (an insert is answered at commit).
  std::vector<uint64_t> RowsPerWorker() {
    EXPECT_TRUE(GetAnalytics(port()).ok());
    Result<HttpResponse> r = HttpGet(port(), "/health");
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    v1::HealthResponse health;
    EXPECT_TRUE(r.ok() && health.ParseFromString(r->body));
    std::vector<uint64_t> rows(2, 0);
    for (const v1::WorkerStatus& w : health.workers()) {
      EXPECT_TRUE(w.healthy()) << w.ShortDebugString();
      if (w.worker_id() >= 1 && w.worker_id() <= 2) rows[w.worker_id() - 1] = w.rows();
    }
    return rows;
  }

  // A reuse of `key` with other rows: 422, rows_written 0, and nothing stored on any worker.
  void ExpectReuseRefused(const std::vector<TestRow>& rows, const std::string& key) {
    const std::vector<uint64_t> before = RowsPerWorker();
    v1::ErrorResponse error;
    EXPECT_TRUE(IsError(PostBatch(port(), rows, key), 422, Encoding::kProtobuf, &error));
    EXPECT_EQ(error.rows_written(), 0u) << error.ShortDebugString();
    EXPECT_EQ(error.error(),
              "idempotency_key was already used for different rows; nothing of this batch was "
              "stored");
    EXPECT_EQ(RowsPerWorker(), before) << "a refused reuse stored rows";
  }

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
  ASSERT_TRUE(cluster_.Start(Unreplicated()));
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

// Batches with one key and other rows, sent at once and spanning both workers: the key's home
// shard decides which came first before anything else of either is sent, so exactly one is
// stored, whole, and every other one is refused whole (422, nothing stored).
TEST_F(IdempotencyTest, ConcurrentReusesOfOneKeyStoreOneBatchWhole) {
  ASSERT_TRUE(cluster_.Start());
  constexpr int kSenders = 4;
  Expected all;
  for (int round = 0; round < 5; ++round) {
    const std::string key = "contested-" + std::to_string(round);
    std::vector<std::vector<TestRow>> batches;
    for (int s = 0; s < kSenders; ++s) {
      batches.push_back(SpanningBatch("contest" + std::to_string(round) + "-" + std::to_string(s)));
    }
    std::atomic<int> ready{0};
    std::vector<unsigned> statuses(kSenders, 0);
    std::vector<uint64_t> refused_rows(kSenders, 0);
    std::vector<std::thread> senders;
    for (int s = 0; s < kSenders; ++s) {
      senders.emplace_back([&, s] {
        ready.fetch_add(1);
        while (ready.load() < kSenders) std::this_thread::yield();
        Result<HttpResponse> r = PostBatch(port(), batches[s], key);
        if (!r.ok()) return;
        statuses[s] = static_cast<unsigned>(r->status);
        v1::ErrorResponse error;
        if (r->status != 200 && error.ParseFromString(r->body)) {
          refused_rows[s] = error.rows_written();
        }
      });
    }
    for (std::thread& t : senders) t.join();
    int stored = 0;
    for (int s = 0; s < kSenders; ++s) {
      if (statuses[s] == 200) {
        ++stored;
        all.Add(batches[s]);
        continue;
      }
      EXPECT_EQ(statuses[s], 422u) << "round " << round << ", sender " << s;
      EXPECT_EQ(refused_rows[s], 0u) << "round " << round << ", sender " << s;
    }
    EXPECT_EQ(stored, 1) << "round " << round;
  }
  ExpectComplete(all);  // the stored batches' rows exactly: nothing of a refused one
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

// Regression: a batch with key K whose rows all landed on worker 0, then a batch with K and
// other rows on both workers: 422, but worker 1 (which never saw K) stored its part.
TEST_F(IdempotencyTest, ReusedKeyWithOtherRowsStoresNothingOnAnyWorker) {
  ASSERT_TRUE(cluster_.Start(Unreplicated()));
  const std::vector<std::string> on0 = KeysOnWorker(0, 2, 3, "reuse0");
  const std::vector<std::string> on1 = KeysOnWorker(1, 2, 2, "reuse1");
  const std::vector<TestRow> first = {{on0[0], 1.0}, {on0[1], 2.0}};
  ASSERT_TRUE(BatchOk(port(), first, "K", 2));
  EXPECT_EQ(RowsPerWorker(), (std::vector<uint64_t>{2, 0}));
  ExpectReuseRefused({{on0[2], 3.0}, {on1[0], 4.0}, {on1[1], 5.0}}, "K");
  EXPECT_EQ(RowsPerWorker(), (std::vector<uint64_t>{2, 0}));
}

// The reuse's rows land only on the worker that got none of the first batch's rows.
TEST_F(IdempotencyTest, ReuseOnTheWorkerThatGotNoRowsIsRefused) {
  ASSERT_TRUE(cluster_.Start(Unreplicated()));
  const std::string on0 = KeysOnWorker(0, 2, 1, "only0")[0];
  const std::vector<std::string> on1 = KeysOnWorker(1, 2, 2, "only1");
  ASSERT_TRUE(BatchOk(port(), {{on0, 1.0}}, "K2", 1));
  ExpectReuseRefused({{on1[0], 7.0}, {on1[1], 8.0}}, "K2");
  EXPECT_EQ(RowsPerWorker(), (std::vector<uint64_t>{1, 0}));
}

// Keys, also on the workers that got no rows, are durable: every worker restarted, every
// reuse is still refused whole, and the first batch's retry is still a 200 that stores nothing.
TEST_F(IdempotencyTest, ReuseIsRefusedAfterEveryWorkerRestartedAndTheRetryStillWorks) {
  ASSERT_TRUE(cluster_.Start(Unreplicated()));
  const std::vector<std::string> on0 = KeysOnWorker(0, 2, 2, "restart0");
  const std::vector<std::string> on1 = KeysOnWorker(1, 2, 2, "restart1");
  const std::vector<TestRow> first = {{on0[0], 1.0}, {on0[1], 2.0}};
  ASSERT_TRUE(BatchOk(port(), first, "K3", 2));
  ASSERT_TRUE(cluster_.RestartWorker(0));
  ASSERT_TRUE(cluster_.RestartWorker(1));
  ExpectReuseRefused({{on1[0], 3.0}}, "K3");
  ExpectReuseRefused({{on0[0], 1.0}, {on1[1], 2.0}}, "K3");
  ExpectReuseRefused({{on0[0], 1.0}}, "K3");  // a subset of the first batch is another batch
  // The first batch, retried after the refused reuses: 200 with its full count, stored once.
  ASSERT_TRUE(BatchOk(port(), first, "K3", 2));
  ASSERT_TRUE(BatchOk(port(), first, "K3", 2, Encoding::kJson));
  EXPECT_EQ(RowsPerWorker(), (std::vector<uint64_t>{2, 0}));
  Expected all;
  all.Add(first);
  ExpectComplete(all);
}

// A worker that was down when the first batch was stored never saw the key; the reuse is
// refused whole all the same, because the key's home shard (on the live worker) decides it
// before anything is written. A key whose home shard is on the dead worker is a 503.
TEST_F(IdempotencyTest, ReuseIsRefusedWhereAWorkerMissedTheFirstBatch) {
  ASSERT_TRUE(cluster_.Start(Unreplicated()));
  const std::string on0 = KeysOnWorker(0, 2, 1, "missed0")[0];
  const std::vector<std::string> on1 = KeysOnWorker(1, 2, 1, "missed1");
  const std::string key = KeysOnWorker(0, 2, 1, "K4")[0];
  const std::string key_on_dead = KeysOnWorker(1, 2, 1, "K5")[0];
  ASSERT_TRUE(cluster_.KillWorker(1));
  // Every row lands on the live worker: the batch is stored.
  ASSERT_TRUE(BatchOk(port(), {{on0, 1.0}}, key, 1));
  EXPECT_TRUE(IsError(PostBatch(port(), {{on0, 2.0}}, key_on_dead), 503, Encoding::kProtobuf));
  ASSERT_TRUE(cluster_.RestartWorker(1));
  ExpectReuseRefused({{on1[0], 9.0}}, key);
  EXPECT_EQ(RowsPerWorker(), (std::vector<uint64_t>{1, 0}));
  ASSERT_TRUE(BatchOk(port(), {{on0, 1.0}}, key, 1));
}

}  // namespace
}  // namespace das::it

namespace das::it {
namespace {

// Shard `shard`'s (term, commit index), as the control node's /health reports them.
std::pair<uint64_t, uint64_t> TermAndCommit(int port, uint32_t shard) {
  Result<HttpResponse> r = HttpGet(port, "/health");
  v1::HealthResponse health;
  EXPECT_TRUE(r.ok() && health.ParseFromString(r->body));
  for (const v1::ShardStatus& s : health.shards()) {
    if (s.shard() == shard) return {s.term(), s.commit_index()};
  }
  ADD_FAILURE() << "no shard " << shard << " in /health";
  return {0, 0};
}

// Replicated, a keyed batch whose rows all fall in its key's home shard is one raft entry (its
// home shard decides the key as it stores the rows), not a check entry and then a write: the
// shard's commit index moves by one. Duplicate and reuse are decided the same way.
TEST_F(IdempotencyTest, AKeyedBatchWithinItsKeysShardIsOneRaftEntry) {
  ASSERT_TRUE(cluster_.Start());
  constexpr int kShards = 16;
  const std::string key = "home-batch";
  const auto home = static_cast<uint32_t>(ShardOf(key, kShards));
  std::vector<TestRow> rows;
  for (int i = 0; rows.size() < 5; ++i) {
    const std::string row_key = "home-row-" + std::to_string(i);
    if (ShardOf(row_key, kShards) == static_cast<int>(home)) rows.push_back({row_key, 1.5 * i});
  }
  Expected expected;
  expected.Add(rows);
  // Measured again when an election came in between (its no-op entry moves the index too).
  auto entries_of = [&](const std::function<void()>& send) {
    for (int attempt = 0; attempt < 5; ++attempt) {
      const auto [term, before] = TermAndCommit(port(), home);
      send();
      const auto [term_after, after] = TermAndCommit(port(), home);
      if (term == term_after) return after - before;
    }
    ADD_FAILURE() << "shard " << home << " kept electing";
    return uint64_t{0};
  };
  EXPECT_EQ(entries_of([&] { EXPECT_TRUE(BatchOk(port(), rows, key, rows.size())); }), 1u);
  EXPECT_EQ(entries_of([&] { EXPECT_TRUE(BatchOk(port(), rows, key, rows.size())); }), 1u);
  std::vector<TestRow> other = rows;
  other[0].value += 1;
  EXPECT_EQ(entries_of([&] {
              EXPECT_TRUE(IsError(PostBatch(port(), other, key), 422, Encoding::kProtobuf));
            }),
            1u);
  ExpectComplete(expected);
}

}  // namespace
}  // namespace das::it
