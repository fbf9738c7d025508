// Many concurrent writers: every insert is acknowledged and the aggregates are exact.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "support/api.h"
#include "support/cluster.h"

namespace das::it {
namespace {

class ConcurrencyTest : public ClusterTest {};

constexpr int kThreads = 16;
constexpr int kPerThread = 200;

// Row j of thread t: mixed keys (some shared between threads, on both workers), values that are
// multiples of 0.25 so that every sum is exact.
TestRow RowOf(int t, int j) {
  return {"w" + std::to_string((t * 7 + j) % 23), 0.25 * ((t * kPerThread + j) % 101) - 10.0};
}

TEST_F(ConcurrencyTest, SixteenWritersEveryInsertAcknowledgedAndCounted) {
  ASSERT_TRUE(cluster_.Start());
  std::vector<std::vector<std::string>> failures(kThreads);
  std::atomic<bool> writers_done{false};
  std::vector<std::string> reader_failures;
  uint64_t reads = 0;

  // A reader alongside: every answer complete, counts never go down.
  std::thread reader([&] {
    uint64_t last = 0;
    while (!writers_done.load()) {
      Result<Analytics> a = GetAnalytics(port());
      ++reads;
      if (!a.ok() || a->http_status != 200 || a->body.is_partial() || a->body.count() < last) {
        reader_failures.push_back(a.ok() ? a->body.ShortDebugString() : a.status().ToString());
        if (a.ok()) last = std::max<uint64_t>(last, a->body.count());
        continue;
      }
      last = a->body.count();
    }
  });
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&, t] {
      // Half the writers speak JSON.
      const Encoding encoding = t % 2 == 0 ? Encoding::kProtobuf : Encoding::kJson;
      for (int j = 0; j < kPerThread; ++j) {
        const TestRow row = RowOf(t, j);
        if (auto r = InsertOk(port(), row.key, row.value, encoding); !r) {
          failures[t].push_back(r.message());
        }
      }
    });
  }
  for (std::thread& w : writers) w.join();
  writers_done = true;
  reader.join();

  size_t failed = 0;
  for (int t = 0; t < kThreads; ++t) {
    failed += failures[t].size();
    if (!failures[t].empty()) ADD_FAILURE() << "thread " << t << ": " << failures[t].front();
  }
  EXPECT_EQ(failed, 0u) << "of " << kThreads * kPerThread << " inserts";
  EXPECT_TRUE(reader_failures.empty())
      << reader_failures.size() << " of " << reads
      << " concurrent reads were bad, first: " << reader_failures.front();

  Expected expected;
  for (int t = 0; t < kThreads; ++t) {
    for (int j = 0; j < kPerThread; ++j) expected.Add(RowOf(t, j).value);
  }
  Result<Analytics> a = GetAnalytics(port());
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_TRUE(Completeness(*a, 200, false, 2, 2));
  EXPECT_EQ(a->body.count(), static_cast<uint64_t>(kThreads * kPerThread));
  EXPECT_TRUE(expected.Matches(a->body));
}

TEST_F(ConcurrencyTest, ConcurrentBatchesWithDistinctKeysAreAllStored) {
  ASSERT_TRUE(cluster_.Start());
  constexpr int kBatchThreads = 8;
  constexpr int kBatches = 25;
  constexpr int kRows = 8;
  auto batch_of = [](int t, int b) {
    std::vector<TestRow> rows;
    for (int r = 0; r < kRows; ++r) {
      rows.push_back({"cb-" + std::to_string((t + b + r) % 31), 0.5 * ((t * 13 + b * 5 + r) % 40)});
    }
    return rows;
  };
  std::vector<std::vector<std::string>> failures(kBatchThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kBatchThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int b = 0; b < kBatches; ++b) {
        const std::string id = "t" + std::to_string(t) + "-b" + std::to_string(b);
        if (auto r = BatchOk(port(), batch_of(t, b), id, kRows); !r) {
          failures[t].push_back(r.message());
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  Expected expected;
  for (int t = 0; t < kBatchThreads; ++t) {
    EXPECT_TRUE(failures[t].empty()) << "thread " << t << ": " << failures[t].size()
                                     << " failures, first: " << failures[t].front();
    for (int b = 0; b < kBatches; ++b) expected.Add(batch_of(t, b));
  }
  Result<Analytics> a = GetAnalytics(port());
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_TRUE(Completeness(*a, 200, false, 2, 2));
  EXPECT_EQ(a->body.count(), static_cast<uint64_t>(kBatchThreads * kBatches * kRows));
  EXPECT_TRUE(expected.Matches(a->body));
}

}  // namespace
}  // namespace das::it
