// The import of what workers kept unreplicated into the shards (control/legacy_import.h), over
// workers and shards of the test's own: pages split by shard with their rows' times, keys to
// every shard, a failed page written again without a row stored twice, a worker without a
// topology holding the cluster, and settled workers not asked again after a restart.
#include "control/legacy_import.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "../temp_dir.h"
#include "common/hash.h"

namespace das::control {
namespace {

namespace asio = boost::asio;
using internal::v1::LegacyDoneResponse;
using internal::v1::LegacyKeysResponse;
using internal::v1::LegacyPageRequest;
using internal::v1::LegacyRowsResponse;
using internal::v1::SubBatch;
using internal::v1::SubBatchResult;

constexpr uint32_t kShards = 4;
constexpr uint32_t kPageRows = 1000;  // the fake worker's own bound on a page

uint32_t ShardOf(std::string_view key) {
  return static_cast<uint32_t>(HashPartitionKey(key) % kShards);
}

// A worker's unreplicated store, as worker/legacy_export.h pages it.
struct FakeWorker {
  std::vector<internal::v1::LegacyRow> rows;
  std::vector<internal::v1::LegacyKey> keys;
  std::atomic<bool> waiting{false};  // no topology yet
  std::atomic<int> pages{0};
  std::atomic<int> done{0};
};

// The shards' state machines as far as the import sees them: keys decided in order.
struct FakeShards {
  struct Stored {
    std::string key;
    double value;
    int64_t ingest_us;
  };
  std::map<std::pair<uint32_t, std::string>, uint64_t> keys;  // (shard, key) -> fingerprint
  std::vector<Stored> rows[kShards];
  int fail_write = -1;  // the index of the write to fail once (-1: none)
  int writes = 0;
  std::vector<std::string> pending_at_failure;

  SubBatchResult Write(uint32_t shard, const SubBatch& part) {
    SubBatchResult result;
    auto [it, added] =
        keys.emplace(std::make_pair(shard, part.idempotency_key()), part.batch_fingerprint());
    if (!added) {
      result.set_code(it->second == part.batch_fingerprint() ? SubBatchResult::DUPLICATE
                                                             : SubBatchResult::KEY_CONFLICT);
      return result;
    }
    for (int r = 0; r < part.rows_size(); ++r) {
      rows[shard].push_back(
          {part.rows(r).partition_key(), part.rows(r).value(), part.row_ingest_us(r)});
    }
    result.set_code(SubBatchResult::OK);
    result.set_rows_written(static_cast<uint64_t>(part.rows_size()));
    return result;
  }
};

class LegacyImportTest : public testing::Test {
 protected:
  void SetUp() override {
    thread_ = std::thread([this] { io_.run(); });
    for (int i = 0; i < 2500; ++i) {
      internal::v1::LegacyRow& row = workers_[1].rows.emplace_back();
      row.set_partition_key("k" + std::to_string(i));
      row.set_value(0.5 * i);
      row.set_ingest_us(1'000'000 + i);
    }
    for (int i = 0; i < 3; ++i) {
      internal::v1::LegacyKey& key = workers_[1].keys.emplace_back();
      key.set_key("batch-" + std::to_string(i));
      key.set_fingerprint(100 + i);
    }
  }
  void TearDown() override {
    importer_.reset();
    work_.reset();
    thread_.join();
  }

  LegacyImport::Hooks Hooks() {
    LegacyImport::Hooks hooks;
    hooks.members = [] { return std::vector<uint64_t>{1, 2}; };
    hooks.keys = [this](uint64_t worker,
                        LegacyPageRequest page) -> LegacyImport::Call<LegacyKeysResponse> {
      FakeWorker& w = workers_[worker];
      ++w.pages;
      LegacyKeysResponse out;
      out.set_total(w.keys.size());
      if (w.waiting) {
        out.set_waiting(true);
        co_return out;
      }
      const size_t from = page.from();
      for (size_t k = from; k < w.keys.size() && k < from + page.limit(); ++k) {
        *out.add_keys() = w.keys[k];
      }
      out.set_next(from + static_cast<uint64_t>(out.keys_size()));
      out.set_done(out.next() >= w.keys.size());
      out.set_total(w.keys.size());
      co_return out;
    };
    hooks.rows = [this](uint64_t worker,
                        LegacyPageRequest page) -> LegacyImport::Call<LegacyRowsResponse> {
      FakeWorker& w = workers_[worker];
      ++w.pages;
      LegacyRowsResponse out;
      out.set_total(w.rows.size());
      if (w.waiting) {
        out.set_waiting(true);
        co_return out;
      }
      const size_t from = page.from();
      const size_t limit = std::min(page.limit(), kPageRows);
      for (size_t r = from; r < w.rows.size() && r < from + limit; ++r) *out.add_rows() = w.rows[r];
      out.set_next(from + static_cast<uint64_t>(out.rows_size()));
      out.set_done(out.next() >= w.rows.size());
      out.set_total(w.rows.size());
      co_return out;
    };
    hooks.done = [this](uint64_t worker) -> LegacyImport::Call<LegacyDoneResponse> {
      ++workers_[worker].done;
      co_return LegacyDoneResponse();
    };
    hooks.shards = kShards;
    hooks.shard_of = &ShardOf;
    hooks.write = [this](uint32_t shard, SubBatch part) -> LegacyImport::Call<SubBatchResult> {
      if (shards_.writes++ == shards_.fail_write) {
        shards_.pending_at_failure.push_back(importer_->Pending().value_or(""));
        co_return Unavailable("shard " + std::to_string(shard) + " has no leader");
      }
      co_return shards_.Write(shard, part);
    };
    hooks.settled_file = dir_.path() + "/legacy-settled";
    hooks.after_round = [this] { Notify(); };
    return hooks;
  }

  void StartImport() {
    importer_ = std::make_unique<LegacyImport>(io_.get_executor(), Hooks(),
                                               std::chrono::milliseconds(1000));
    importer_->Start();
  }

  // Wakes what waits for the import's rounds or the fake workers' pages.
  void Notify() {
    std::lock_guard<std::mutex> lock(events_mu_);
    events_.notify_all();
  }

  // Waits (rounds apart, bounded) until `done` holds; the import retries on its own.
  template <typename Done>
  bool WaitFor(Done done) {
    std::unique_lock<std::mutex> lock(events_mu_);
    return events_.wait_for(lock, std::chrono::seconds(10), done);
  }

  // Waits until the import holds nothing up.
  testing::AssertionResult WaitSettled() {
    if (WaitFor([this] { return !importer_->Pending(); })) return testing::AssertionSuccess();
    return testing::AssertionFailure() << "still pending: " << importer_->Pending().value_or("");
  }

  // Every row of worker 1 exactly once, in its key's shard, with its own time.
  void ExpectRowsOnce() {
    std::map<std::string, int> seen;
    for (uint32_t s = 0; s < kShards; ++s) {
      for (const FakeShards::Stored& row : shards_.rows[s]) {
        ++seen[row.key];
        EXPECT_EQ(ShardOf(row.key), s) << row.key;
        const int i = std::stoi(row.key.substr(1));
        EXPECT_EQ(row.value, 0.5 * i);
        EXPECT_EQ(row.ingest_us, 1'000'000 + i);
      }
    }
    EXPECT_EQ(seen.size(), 2500u);
    for (const auto& [key, times] : seen) EXPECT_EQ(times, 1) << key;
  }

  std::string SettledFile() {
    std::ifstream in(dir_.path() + "/legacy-settled");
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

  TempDir dir_;
  std::mutex events_mu_;
  std::condition_variable events_;
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_{io_.get_executor()};
  std::thread thread_;
  std::map<uint64_t, FakeWorker> workers_;
  FakeShards shards_;
  std::unique_ptr<LegacyImport> importer_;
};

TEST_F(LegacyImportTest, KeysGoToEveryShardAndRowsToTheirsOnceWithTheirTimes) {
  StartImport();
  ASSERT_TRUE(WaitSettled());
  ExpectRowsOnce();
  for (uint32_t s = 0; s < kShards; ++s) {
    for (int k = 0; k < 3; ++k) {
      EXPECT_EQ(shards_.keys.at({s, "batch-" + std::to_string(k)}), 100u + k);
    }
  }
  EXPECT_EQ(workers_[1].done, 1);
  EXPECT_EQ(workers_[2].done, 0);  // it kept nothing: nothing to delete
  EXPECT_EQ(SettledFile(), "1\n2\n");
}

TEST_F(LegacyImportTest, AFailedPageHoldsTheClusterAndIsWrittenAgainWithoutDoubles) {
  shards_.fail_write =
      3 * kShards + kShards + 1;  // keys, the first page, then a write of the second
  StartImport();
  ASSERT_TRUE(WaitSettled());
  ASSERT_EQ(shards_.pending_at_failure.size(), 1u);
  EXPECT_NE(shards_.pending_at_failure[0].find("importing the rows worker 1 kept unreplicated"),
            std::string::npos)
      << shards_.pending_at_failure[0];
  ExpectRowsOnce();
  EXPECT_EQ(workers_[1].done, 1);
}

TEST_F(LegacyImportTest, AWorkerWithoutATopologyHoldsTheClusterUntilItHasOne) {
  workers_[1].waiting = true;
  StartImport();
  ASSERT_TRUE(WaitFor([this] { return workers_[1].pages >= 3; }));  // asked in three rounds
  const std::optional<std::string> pending = importer_->Pending();
  ASSERT_TRUE(pending.has_value());
  EXPECT_NE(pending->find("worker 1 is waiting for the topology"), std::string::npos) << *pending;
  EXPECT_EQ(shards_.writes, 0);
  workers_[1].waiting = false;
  ASSERT_TRUE(WaitSettled());
  ExpectRowsOnce();
}

// A worker that kept nothing (one that just joined) holds nothing up, topology or not.
TEST_F(LegacyImportTest, AWorkerThatKeptNothingHoldsNothingEvenWithoutATopology) {
  workers_[1].rows.clear();
  workers_[1].keys.clear();
  workers_[1].waiting = true;
  workers_[2].waiting = true;
  StartImport();
  ASSERT_TRUE(WaitSettled());
  EXPECT_EQ(shards_.writes, 0);
  EXPECT_EQ(workers_[1].done + workers_[2].done, 0);
}

TEST_F(LegacyImportTest, SettledWorkersAreNotAskedAgainAfterARestart) {
  StartImport();
  ASSERT_TRUE(WaitSettled());
  importer_->Stop();
  const int pages = workers_[1].pages + workers_[2].pages;
  StartImport();  // a restarted control node: the same settled file
  ASSERT_TRUE(WaitSettled());
  EXPECT_EQ(workers_[1].pages + workers_[2].pages, pages);
  ExpectRowsOnce();
}

// A page split by shard: every part keyed by the page, the same fingerprint on each, and a page
// cut elsewhere at the same first row another fingerprint (a conflict, never a silent
// duplicate).
TEST(SplitLegacyPageTest, EachShardsPartIsKeyedByThePage) {
  LegacyRowsResponse page;
  for (int i = 0; i < 50; ++i) {
    internal::v1::LegacyRow* row = page.add_rows();
    row->set_partition_key("p" + std::to_string(i));
    row->set_value(i);
    row->set_ingest_us(7 + i);
  }
  page.set_next(120);
  const std::map<uint32_t, SubBatch> parts = SplitLegacyPage(3, page, 70, &ShardOf);
  ASSERT_GT(parts.size(), 1u);
  int rows = 0;
  uint64_t fingerprint = parts.begin()->second.batch_fingerprint();
  for (const auto& [shard, part] : parts) {
    EXPECT_EQ(part.idempotency_key(), std::string(kImportKeyPrefix) + "3/70");
    EXPECT_EQ(part.batch_fingerprint(), fingerprint);
    ASSERT_EQ(part.row_ingest_us_size(), part.rows_size());
    for (int r = 0; r < part.rows_size(); ++r) {
      EXPECT_EQ(ShardOf(part.rows(r).partition_key()), shard);
      EXPECT_EQ(part.row_ingest_us(r), 7 + static_cast<int64_t>(part.rows(r).value()));
      ++rows;
    }
  }
  EXPECT_EQ(rows, 50);
  page.mutable_rows()->RemoveLast();
  page.set_next(119);
  EXPECT_NE(SplitLegacyPage(3, page, 70, &ShardOf).begin()->second.batch_fingerprint(),
            fingerprint);
}

}  // namespace
}  // namespace das::control
