#include "storage/store.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <future>
#include <limits>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "common/clock.h"

#include "../temp_dir.h"
#include "common/fingerprint.h"
#include "storage/duckdb_util.h"

namespace das::storage {
namespace {

using Code = SubBatchOutcome::Code;
using Outcomes = std::vector<SubBatchOutcome>;

StoreOptions Options(const TempDir& dir) {
  StoreOptions options;
  options.data_dir = dir.path() + "/data";
  return options;
}

std::unique_ptr<Store> OpenOrDie(StoreOptions options) {
  Result<std::unique_ptr<Store>> store = Store::Open(std::move(options));
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  return store.ok() ? std::move(store).value() : nullptr;
}

// `batches` as the store's next raft entry, which decides their keys from what it holds (as at
// a replay). `ingest_us`: the entry's ingest time as its leader fixed it (0: the store's clock).
Result<Outcomes> WriteSync(Store& store, std::vector<SubBatch> batches, int64_t ingest_us = 0) {
  std::promise<Result<Outcomes>> done;
  std::future<Result<Outcomes>> result = done.get_future();
  store.Apply(ReplicatedEntry{store.applied_index() + 1, ingest_us, std::move(batches)},
              [&done](Result<Outcomes> r) { done.set_value(std::move(r)); });
  return result.get();
}

Aggregate AggregateSync(Store& store) {
  std::promise<Result<Aggregate>> done;
  std::future<Result<Aggregate>> result = done.get_future();
  store.ComputeAggregate([&done](Result<Aggregate> r) { done.set_value(std::move(r)); });
  Result<Aggregate> aggregate = result.get();
  EXPECT_TRUE(aggregate.ok()) << aggregate.status().ToString();
  return aggregate.ok() ? aggregate.value() : Aggregate{};
}

Aggregate ScanSync(Store& store) {
  std::promise<Result<Aggregate>> done;
  std::future<Result<Aggregate>> result = done.get_future();
  store.ScanAggregate([&done](Result<Aggregate> r) { done.set_value(std::move(r)); });
  Result<Aggregate> aggregate = result.get();
  EXPECT_TRUE(aggregate.ok()) << aggregate.status().ToString();
  return aggregate.ok() ? aggregate.value() : Aggregate{};
}

// The rows in the table, counted by DuckDB (not by the running aggregate).
uint64_t CountSync(Store& store) { return ScanSync(store).count; }

// A sub-batch of rows "key-<i>" = values[i]; with a key, it is a whole client batch (its
// fingerprint is that of these rows), as the control node sends it.
SubBatch Batch(std::vector<double> values, std::string key = "") {
  SubBatch batch;
  Fingerprinter fingerprint;
  for (size_t i = 0; i < values.size(); ++i) {
    batch.rows.push_back({"key-" + std::to_string(i), values[i]});
    fingerprint.Add(batch.rows.back().partition_key, values[i]);
  }
  batch.idempotency_key = std::move(key);
  if (!batch.idempotency_key.empty()) batch.fingerprint = fingerprint.Finish();
  return batch;
}

// Expects exactly one sub-batch outcome.
void ExpectOutcome(const Result<Outcomes>& result, Code code, uint64_t rows_written) {
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  ASSERT_EQ(result->size(), 1u);
  EXPECT_EQ(result->front().code, code);
  EXPECT_EQ(result->front().rows_written, rows_written);
}

TEST(StoreTest, WriteThenAggregateIsExact) {
  TempDir dir;
  auto store = OpenOrDie(Options(dir));
  ASSERT_NE(store, nullptr);
  ExpectOutcome(WriteSync(*store, {Batch({1.5, -2.25, 10.0})}), Code::kOk, 3);
  ExpectOutcome(WriteSync(*store, {Batch({3.75})}), Code::kOk, 1);
  Aggregate aggregate = AggregateSync(*store);
  EXPECT_EQ(aggregate.count, 4u);
  EXPECT_EQ(aggregate.sum.Value(), 13.0);
  EXPECT_EQ(aggregate.min, -2.25);
  EXPECT_EQ(aggregate.max, 10.0);
  EXPECT_EQ(CountSync(*store), 4u);
}

TEST(StoreTest, EmptyStoreHasCountZeroAndNoMinMax) {
  TempDir dir;
  auto store = OpenOrDie(Options(dir));
  ASSERT_NE(store, nullptr);
  Aggregate aggregate = AggregateSync(*store);
  EXPECT_EQ(aggregate.count, 0u);
  EXPECT_EQ(aggregate.sum.Value(), 0.0);
  EXPECT_FALSE(aggregate.min.has_value());
  EXPECT_FALSE(aggregate.max.has_value());
  EXPECT_EQ(CountSync(*store), 0u);
}

// Many small addends to a large sum are all kept: the sum is exact.
TEST(StoreTest, SumIsExact) {
  TempDir dir;
  StoreOptions options = Options(dir);
  options.duckdb_threads = 1;
  auto store = OpenOrDie(options);
  ASSERT_NE(store, nullptr);
  std::vector<double> values(1001, 1.0);
  values[0] = 1e16;
  double naive = 0;
  for (double v : values) naive += v;
  ASSERT_EQ(naive, 1e16);  // each +1.0 is lost: the spacing of doubles at 1e16 is 2
  ExpectOutcome(WriteSync(*store, {Batch(values)}), Code::kOk, 1001);
  Aggregate aggregate = AggregateSync(*store);
  EXPECT_EQ(aggregate.count, 1001u);
  EXPECT_EQ(aggregate.sum.Value(), 1e16 + 1000.0);
  EXPECT_EQ(aggregate.min, 1.0);
  EXPECT_EQ(aggregate.max, 1e16);
}

// The running aggregate (what analytics read) equals the scan of the table, before and after a
// restart: both are exact, so they agree bit for bit whatever the order of the rows.
TEST(StoreTest, RunningAggregateMatchesTheTableScan) {
  TempDir dir;
  {
    auto store = OpenOrDie(Options(dir));
    ASSERT_NE(store, nullptr);
    for (int i = 0; i < 50; ++i) {
      ExpectOutcome(WriteSync(*store, {Batch({i * 0.25, -i * 1.5, 1e6 + i})}), Code::kOk, 3);
    }
    Aggregate running = AggregateSync(*store);
    Aggregate scanned = ScanSync(*store);
    EXPECT_EQ(running.count, 150u);
    EXPECT_EQ(running.count, scanned.count);
    EXPECT_EQ(running.sum, scanned.sum);
    EXPECT_EQ(running.sum.Value(), 50 * 1e6 + (0.25 - 1.5 + 1) * (49 * 50 / 2));
    EXPECT_EQ(running.min, -73.5);
    EXPECT_EQ(running.min, scanned.min);
    EXPECT_EQ(running.max, 1e6 + 49);
    EXPECT_EQ(running.max, scanned.max);
  }
  auto reopened = OpenOrDie(Options(dir));
  ASSERT_NE(reopened, nullptr);
  Aggregate after = AggregateSync(*reopened);
  EXPECT_EQ(after.count, 150u);
  EXPECT_EQ(after.sum, ScanSync(*reopened).sum);
  EXPECT_EQ(after.sum, AggregateSync(*reopened).sum);
  EXPECT_EQ(after.min, -73.5);
}

TEST(StoreTest, RunningSumKeepsCancellingLargeTerms) {
  TempDir dir;
  auto store = OpenOrDie(Options(dir));
  ASSERT_NE(store, nullptr);
  ExpectOutcome(WriteSync(*store, {Batch({1e16, 1.0, -1e16})}), Code::kOk, 3);
  EXPECT_EQ(AggregateSync(*store).sum.Value(), 1.0);
  EXPECT_EQ(ScanSync(*store).sum.Value(), 1.0);  // DuckDB's kahan_sum gives 0 here
}

// Regression: three valid rows of 1e308 overflowed the running sum, its compensation turned
// that into NaN, and neither later rows nor a restart (DuckDB's kahan_sum) brought it back.
TEST(StoreTest, SumOutsideTheDoubleRangeRecoversAcrossARestart) {
  TempDir dir;
  {
    auto store = OpenOrDie(Options(dir));
    ASSERT_NE(store, nullptr);
    ExpectOutcome(WriteSync(*store, {Batch({1e308, 1e308, 1e308, -1e308})}), Code::kOk, 4);
    Aggregate a = AggregateSync(*store);
    EXPECT_EQ(a.sum.Value(), std::numeric_limits<double>::infinity());
    EXPECT_EQ(a.sum.Divide(a.count), 1e308 / 2);
    EXPECT_EQ(ScanSync(*store).sum, a.sum);
  }
  auto store = OpenOrDie(Options(dir));
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(AggregateSync(*store).sum.Divide(4), 1e308 / 2);
  ExpectOutcome(WriteSync(*store, {Batch({-1e308, -1e308})}), Code::kOk, 2);
  Aggregate a = AggregateSync(*store);
  EXPECT_EQ(a.count, 6u);
  EXPECT_EQ(a.sum.Value(), 0.0);
  EXPECT_EQ(a.sum.Divide(a.count), 0.0);
  EXPECT_EQ(a.max, 1e308);
  EXPECT_EQ(a.min, -1e308);
}

TEST(StoreTest, EmptySubBatchWithoutKeyIsOkWithZeroRows) {
  TempDir dir;
  auto store = OpenOrDie(Options(dir));
  ASSERT_NE(store, nullptr);
  ExpectOutcome(WriteSync(*store, {SubBatch{}}), Code::kOk, 0);
  EXPECT_EQ(CountSync(*store), 0u);
}

TEST(StoreTest, RetryWithSameKeyIsDuplicateAndStoresNothing) {
  TempDir dir;
  auto store = OpenOrDie(Options(dir));
  ASSERT_NE(store, nullptr);
  ExpectOutcome(WriteSync(*store, {Batch({1, 2, 3}, "req-1")}), Code::kOk, 3);
  ExpectOutcome(WriteSync(*store, {Batch({1, 2, 3}, "req-1")}), Code::kDuplicate, 3);
  EXPECT_EQ(AggregateSync(*store).count, 3u);
  EXPECT_EQ(AggregateSync(*store).sum.Value(), 6.0);
}

TEST(StoreTest, SameKeyTwiceInOneWriteIsDuplicateTheSecondTime) {
  TempDir dir;
  auto store = OpenOrDie(Options(dir));
  ASSERT_NE(store, nullptr);
  Result<Outcomes> result =
      WriteSync(*store, {Batch({1, 2}, "twice"), Batch({5}), Batch({1, 2}, "twice")});
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  ASSERT_EQ(result->size(), 3u);
  EXPECT_EQ((*result)[0].code, Code::kOk);
  EXPECT_EQ((*result)[0].rows_written, 2u);
  EXPECT_EQ((*result)[1].code, Code::kOk);
  EXPECT_EQ((*result)[1].rows_written, 1u);
  EXPECT_EQ((*result)[2].code, Code::kDuplicate);
  EXPECT_EQ((*result)[2].rows_written, 2u);
  EXPECT_EQ(CountSync(*store), 3u);
}

TEST(StoreTest, SameKeyWithOtherRowsIsKeyConflictAndStoresNothing) {
  TempDir dir;
  auto store = OpenOrDie(Options(dir));
  ASSERT_NE(store, nullptr);
  ExpectOutcome(WriteSync(*store, {Batch({1, 2}, "k")}), Code::kOk, 2);
  ExpectOutcome(WriteSync(*store, {Batch({1, 2.5}, "k")}), Code::kKeyConflict, 0);
  ExpectOutcome(WriteSync(*store, {Batch({1}, "k")}), Code::kKeyConflict, 0);
  // In one Write, the conflicting sub-batch is refused while the others are stored.
  Result<Outcomes> mixed = WriteSync(*store, {Batch({7}), Batch({9}, "k")});
  ASSERT_TRUE(mixed.ok()) << mixed.status().ToString();
  ASSERT_EQ(mixed->size(), 2u);
  EXPECT_EQ((*mixed)[0].code, Code::kOk);
  EXPECT_EQ((*mixed)[1].code, Code::kKeyConflict);
  Aggregate aggregate = AggregateSync(*store);
  EXPECT_EQ(aggregate.count, 3u);
  EXPECT_EQ(aggregate.sum.Value(), 10.0);
}

// A check_only sub-batch (next to others) looks the key up and stores nothing, not even its
// rows.
TEST(StoreTest, CheckOnlySubBatchStoresNothing) {
  TempDir dir;
  auto store = OpenOrDie(Options(dir));
  ASSERT_NE(store, nullptr);
  SubBatch check = Batch({5, 6}, "checked");
  check.check_only = true;
  Result<Outcomes> result = WriteSync(*store, {check, Batch({1})});
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ((*result)[0].code, Code::kOk);
  EXPECT_EQ((*result)[0].rows_written, 0u);
  EXPECT_EQ(CountSync(*store), 1u);
  EXPECT_EQ(AggregateSync(*store).count, 1u);
  EXPECT_FALSE(store->FindKey("checked").has_value());  // not recorded
}

void CreateRowsTableWithCheck(const std::string& data_dir);

Result<Outcomes> ApplySync(Store& store, uint64_t index, int64_t ingest_us,
                           std::vector<SubBatch> batches) {
  std::promise<Result<Outcomes>> done;
  std::future<Result<Outcomes>> result = done.get_future();
  store.Apply(ReplicatedEntry{index, ingest_us, std::move(batches)},
              [&done](Result<Outcomes> r) { done.set_value(std::move(r)); });
  return result.get();
}

// The ingest timestamps in the table, distinct, in microseconds.
std::vector<int64_t> IngestTimes(const StoreOptions& options) {
  Result<duck::DatabaseHandle> db = duck::OpenDatabase(options.data_dir + "/store.duckdb", 1);
  EXPECT_TRUE(db.ok()) << db.status().ToString();
  std::vector<int64_t> out;
  if (!db.ok()) return out;
  Result<duck::ConnectionHandle> conn = duck::Connect(db->get());
  Result<duck::QueryResult> rows = duck::Query(
      conn->get(),
      "SELECT DISTINCT epoch_us(ingest_ts) AS t FROM replica_rows_4294967295 ORDER BY t");
  EXPECT_TRUE(rows.ok()) << rows.status().ToString();
  while (std::optional<duck::Chunk> chunk = rows->NextChunk()) {
    for (size_t i = 0; i < chunk->size(); ++i) out.push_back(chunk->Data<int64_t>(0)[i]);
  }
  return out;
}

// Committed raft entries: stored with the ingest time their leader fixed, their index stored in
// the same transaction, so a replay after a restart stores nothing twice.
TEST(StoreTest, AppliedEntriesKeepTheirIngestTimeAndAReplaySkipsThem) {
  TempDir dir;
  const StoreOptions options = Options(dir);
  // Leader times within the key retention of this machine's clock (a reopen prunes older keys).
  const int64_t kT1 = Clock::Real().WallMicros() - 60'000'000;
  const int64_t kT2 = kT1 + 1'500'000;
  {
    auto store = OpenOrDie(options);
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(store->applied_index(), 0u);
    ExpectOutcome(ApplySync(*store, 1, kT1, {Batch({1, 2})}), Code::kOk, 2);
    ExpectOutcome(ApplySync(*store, 2, kT2, {Batch({4}, "entry-key")}), Code::kOk, 1);
    EXPECT_EQ(store->applied_index(), 2u);
    EXPECT_EQ(AggregateSync(*store).applied_index, 2u);
  }
  EXPECT_EQ(IngestTimes(options), (std::vector<int64_t>{kT1, kT2}));
  auto store = OpenOrDie(options);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->applied_index(), 2u);
  // The log replays from the start: both entries are skipped, not stored or deduplicated.
  Result<Outcomes> replay1 = ApplySync(*store, 1, kT1, {Batch({1, 2})});
  ASSERT_TRUE(replay1.ok());
  EXPECT_TRUE(replay1->empty());
  Result<Outcomes> replay2 = ApplySync(*store, 2, kT2, {Batch({4}, "entry-key")});
  ASSERT_TRUE(replay2.ok());
  EXPECT_TRUE(replay2->empty());
  ExpectOutcome(ApplySync(*store, 3, kT2, {Batch({4}, "entry-key")}), Code::kDuplicate, 1);
  ExpectOutcome(ApplySync(*store, 4, kT2, {Batch({8})}), Code::kOk, 1);
  EXPECT_EQ(store->applied_index(), 4u);
  Aggregate aggregate = AggregateSync(*store);
  EXPECT_EQ(aggregate.count, 4u);
  EXPECT_EQ(aggregate.sum.Value(), 15.0);
  EXPECT_EQ(CountSync(*store), 4u);
}

Result<Outcomes> ApplyRequest(Store& store, uint64_t index, uint64_t request_id,
                              std::vector<SubBatch> batches) {
  std::promise<Result<Outcomes>> done;
  std::future<Result<Outcomes>> result = done.get_future();
  store.Apply(ReplicatedEntry{index, 0, std::move(batches), request_id},
              [&done](Result<Outcomes> r) { done.set_value(std::move(r)); });
  return result.get();
}

// An internal retry (the same request id in a later entry, through the same or a new leader)
// is answered with the first entry's outcomes and stores nothing, also after a restart.
TEST(StoreTest, RepeatedRequestIdIsAnsweredWithTheFirstOutcomeAcrossRestarts) {
  TempDir dir;
  const StoreOptions options = Options(dir);
  {
    auto store = OpenOrDie(options);
    ASSERT_NE(store, nullptr);
    Result<Outcomes> first = ApplyRequest(*store, 1, 77, {Batch({1, 2}), Batch({4}, "rk")});
    ASSERT_TRUE(first.ok()) << first.status().ToString();
    ASSERT_EQ(first->size(), 2u);
    EXPECT_EQ((*first)[0].code, Code::kOk);
    EXPECT_EQ((*first)[0].rows_written, 2u);
    EXPECT_EQ((*first)[1].rows_written, 1u);
    Result<Outcomes> retry = ApplyRequest(*store, 2, 77, {Batch({1, 2}), Batch({4}, "rk")});
    ASSERT_TRUE(retry.ok()) << retry.status().ToString();
    ASSERT_EQ(retry->size(), 2u);
    EXPECT_EQ((*retry)[0].code, Code::kOk);  // the first answer, not a DUPLICATE of the key
    EXPECT_EQ((*retry)[0].rows_written, 2u);
    EXPECT_EQ((*retry)[1].code, Code::kOk);
    EXPECT_EQ(AggregateSync(*store).count, 3u);
    EXPECT_EQ(store->applied_index(), 2u);
    // Another id with the same rows is another request: stored.
    ExpectOutcome(ApplyRequest(*store, 3, 78, {Batch({1, 2})}), Code::kOk, 2);
  }
  auto store = OpenOrDie(options);
  ASSERT_NE(store, nullptr);
  Result<Outcomes> late = ApplyRequest(*store, 4, 77, {Batch({1, 2}), Batch({4}, "rk")});
  ASSERT_TRUE(late.ok()) << late.status().ToString();
  ASSERT_EQ(late->size(), 2u);
  EXPECT_EQ((*late)[0].rows_written, 2u);
  Aggregate aggregate = AggregateSync(*store);
  EXPECT_EQ(aggregate.count, 5u);
  EXPECT_EQ(aggregate.sum.Value(), 10.0);
  EXPECT_EQ(CountSync(*store), 5u);
}

// Two entries of one transaction with the same id: the second is the retry.
TEST(StoreTest, RepeatedRequestIdInOneGroupIsStoredOnce) {
  TempDir dir;
  auto store = OpenOrDie(Options(dir));
  ASSERT_NE(store, nullptr);
  std::promise<Result<Outcomes>> first_done, second_done;
  store->Apply(ReplicatedEntry{1, 0, {Batch({3})}, 9},
               [&](Result<Outcomes> r) { first_done.set_value(std::move(r)); });
  store->Apply(ReplicatedEntry{2, 0, {Batch({3})}, 9},
               [&](Result<Outcomes> r) { second_done.set_value(std::move(r)); });
  ExpectOutcome(first_done.get_future().get(), Code::kOk, 1);
  ExpectOutcome(second_done.get_future().get(), Code::kOk, 1);
  EXPECT_EQ(AggregateSync(*store).count, 1u);
  EXPECT_EQ(CountSync(*store), 1u);
}

// A failed transaction stores nothing of its entries and keeps the applied index.
TEST(StoreTest, FailedApplyLeavesTheAppliedIndex) {
  TempDir dir;
  StoreOptions options = Options(dir);
  ASSERT_NO_FATAL_FAILURE(CreateRowsTableWithCheck(options.data_dir));
  auto store = OpenOrDie(options);
  ASSERT_NE(store, nullptr);
  ExpectOutcome(ApplySync(*store, 1, 0, {Batch({1})}), Code::kOk, 1);
  ASSERT_FALSE(ApplySync(*store, 2, 0, {Batch({1e301})}).ok());
  EXPECT_EQ(store->applied_index(), 1u);
  store.reset();
  auto reopened = OpenOrDie(options);
  ASSERT_NE(reopened, nullptr);
  EXPECT_EQ(reopened->applied_index(), 1u);
  EXPECT_EQ(CountSync(*reopened), 1u);
}

TEST(StoreTest, RestartKeepsRowsAndKeys) {
  TempDir dir;
  {
    auto store = OpenOrDie(Options(dir));
    ASSERT_NE(store, nullptr);
    ExpectOutcome(WriteSync(*store, {Batch({1, 2, 3}, "before-restart")}), Code::kOk, 3);
    ExpectOutcome(WriteSync(*store, {Batch({4})}), Code::kOk, 1);
    store->Stop();
  }
  auto store = OpenOrDie(Options(dir));
  ASSERT_NE(store, nullptr);
  Aggregate aggregate = AggregateSync(*store);
  EXPECT_EQ(aggregate.count, 4u);
  EXPECT_EQ(aggregate.sum.Value(), 10.0);
  ExpectOutcome(WriteSync(*store, {Batch({1, 2, 3}, "before-restart")}), Code::kDuplicate, 3);
  ExpectOutcome(WriteSync(*store, {Batch({9}, "before-restart")}), Code::kKeyConflict, 0);
  EXPECT_EQ(CountSync(*store), 4u);
}

// A key is remembered for at least the retention. It is forgotten by the next write that
// retries it after that (or by the periodic prune, or on open), and the retry then stores its
// rows again, as a new request.
TEST(StoreTest, ExpiredKeyIsForgottenByALaterWrite) {
  TempDir dir;
  ManualClock clock;
  StoreOptions options = Options(dir);
  options.idempotency_retention = std::chrono::seconds(1);
  options.clock = &clock;
  auto store = OpenOrDie(options);
  ASSERT_NE(store, nullptr);
  ExpectOutcome(WriteSync(*store, {Batch({1}, "short-lived")}), Code::kOk, 1);
  clock.Advance(std::chrono::milliseconds(1000));  // exactly the retention: still remembered
  ExpectOutcome(WriteSync(*store, {Batch({1}, "short-lived")}), Code::kDuplicate, 1);
  clock.Advance(std::chrono::milliseconds(1));
  ExpectOutcome(WriteSync(*store, {Batch({1}, "short-lived")}), Code::kOk, 1);
  ExpectOutcome(WriteSync(*store, {Batch({1}, "short-lived")}), Code::kDuplicate, 1);
  EXPECT_EQ(CountSync(*store), 2u);
}

TEST(StoreTest, ExpiredKeyIsForgottenOnOpen) {
  TempDir dir;
  ManualClock clock;
  StoreOptions options = Options(dir);
  options.idempotency_retention = std::chrono::seconds(1);
  options.clock = &clock;
  {
    auto store = OpenOrDie(options);
    ASSERT_NE(store, nullptr);
    ExpectOutcome(WriteSync(*store, {Batch({1, 2}, "short-lived")}), Code::kOk, 2);
  }
  clock.Advance(std::chrono::milliseconds(1001));
  auto store = OpenOrDie(options);
  ASSERT_NE(store, nullptr);
  ExpectOutcome(WriteSync(*store, {Batch({1, 2}, "short-lived")}), Code::kOk, 2);
  EXPECT_EQ(CountSync(*store), 4u);
}

// The rows' ingest time comes with the write; keys expire by it, not by this node's clock: a
// clock far ahead at a restart forgets no key the cluster's time still keeps (a retry of it
// is a duplicate, not stored twice).
TEST(StoreTest, AClockAheadAtOpenForgetsNoKeyTheClustersTimeKeeps) {
  TempDir dir;
  ManualClock clock;
  StoreOptions options = Options(dir);
  options.idempotency_retention = std::chrono::seconds(1);
  options.clock = &clock;
  const int64_t cluster_us = clock.WallMicros();
  {
    auto store = OpenOrDie(options);
    ASSERT_NE(store, nullptr);
    ExpectOutcome(WriteSync(*store, {Batch({1, 2}, "kept")}, cluster_us), Code::kOk, 2);
    EXPECT_EQ(store->newest_ingest_us(), cluster_us);
  }
  clock.Advance(std::chrono::hours(1));  // this node's clock jumps an hour ahead
  auto store = OpenOrDie(options);
  ASSERT_NE(store, nullptr);
  ExpectOutcome(WriteSync(*store, {Batch({1, 2}, "kept")}, cluster_us + 500'000), Code::kDuplicate,
                2);
  EXPECT_EQ(CountSync(*store), 2u);
}

TEST(StoreTest, ConcurrentSingleRowWritesAreGroupCommitted) {
  TempDir dir;
  StoreOptions options = Options(dir);
  options.reader_threads = 2;
  auto store = OpenOrDie(options);
  ASSERT_NE(store, nullptr);
  constexpr int kThreads = 16;
  constexpr int kWritesPerThread = 500;
  std::atomic<int> ok{0};
  std::atomic<int> not_ok{0};
  std::vector<std::thread> threads;
  std::mutex log;  // entries are queued in their index order, as a raft loop applies them
  uint64_t index = 0;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<std::future<void>> pending;
      for (int i = 0; i < kWritesPerThread; ++i) {
        auto done = std::make_shared<std::promise<void>>();
        pending.push_back(done->get_future());
        SubBatch batch = Batch({1.0}, "t" + std::to_string(t) + "-" + std::to_string(i));
        std::lock_guard next(log);
        store->Apply(ReplicatedEntry{++index, 0, {std::move(batch)}},
                     [&, done](Result<Outcomes> r) {
                       const bool good = r.ok() && r->size() == 1 && r->front().code == Code::kOk &&
                                         r->front().rows_written == 1;
                       (good ? ok : not_ok).fetch_add(1);
                       done->set_value();
                     });
      }
      for (auto& f : pending) f.wait();
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(ok.load(), kThreads * kWritesPerThread);
  EXPECT_EQ(not_ok.load(), 0);
  Aggregate aggregate = AggregateSync(*store);
  EXPECT_EQ(aggregate.count, 8000u);
  EXPECT_EQ(aggregate.sum.Value(), 8000.0);
}

TEST(StoreTest, StopFinishesQueuedWritesAndRefusesLaterOnes) {
  TempDir dir;
  auto store = OpenOrDie(Options(dir));
  ASSERT_NE(store, nullptr);
  std::atomic<int> ok{0};
  for (uint64_t i = 1; i <= 200; ++i) {
    store->Apply(ReplicatedEntry{i, 0, {Batch({1.0})}},
                 [&](Result<Outcomes> r) { ok += r.ok() ? 1 : 0; });
  }
  store->Stop();
  EXPECT_EQ(ok.load(), 200);
  Result<Outcomes> late = WriteSync(*store, {Batch({1.0})});
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.status().code(), StatusCode::kShuttingDown);
  std::promise<StatusCode> code;
  store->ComputeAggregate([&](Result<Aggregate> r) { code.set_value(r.status().code()); });
  EXPECT_EQ(code.get_future().get(), StatusCode::kShuttingDown);
  store->Stop();  // a second Stop is harmless
  store.reset();
  auto reopened = OpenOrDie(Options(dir));
  ASSERT_NE(reopened, nullptr);
  EXPECT_EQ(CountSync(*reopened), 200u);
}

TEST(StoreTest, SecondOpenOfTheSameDirectoryIsUnavailable) {
  TempDir dir;
  auto store = OpenOrDie(Options(dir));
  ASSERT_NE(store, nullptr);
  Result<std::unique_ptr<Store>> second = Store::Open(Options(dir));
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable);
  store->Stop();
  auto third = OpenOrDie(Options(dir));  // the lock went with the first store
  EXPECT_NE(third, nullptr);
}

TEST(StoreTest, UnusableDataDirIsUnavailable) {
  TempDir dir;
  std::FILE* file = std::fopen((dir.path() + "/not-a-dir").c_str(), "w");
  ASSERT_NE(file, nullptr);
  std::fclose(file);
  StoreOptions options;
  options.data_dir = dir.path() + "/not-a-dir/data";
  Result<std::unique_ptr<Store>> store = Store::Open(options);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kUnavailable);
}

// Every acknowledged row survives a SIGKILL: DuckDB replays its WAL on the next open.
TEST(StoreTest, AcknowledgedRowsSurviveKill) {
  TempDir dir;
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    Result<std::unique_ptr<Store>> store = Store::Open(Options(dir));
    if (!store.ok()) ::_exit(2);
    for (int i = 0; i < 50; ++i) {
      Result<Outcomes> r = WriteSync(**store, {Batch({1.0, 2.0}, "k" + std::to_string(i))});
      if (!r.ok()) ::_exit(3);
    }
    ::kill(::getpid(), SIGKILL);
  }
  int wstatus = 0;
  ASSERT_EQ(::waitpid(child, &wstatus, 0), child);
  ASSERT_TRUE(WIFSIGNALED(wstatus)) << "child exit status " << WEXITSTATUS(wstatus);
  auto store = OpenOrDie(Options(dir));
  ASSERT_NE(store, nullptr);
  Aggregate aggregate = AggregateSync(*store);
  EXPECT_EQ(aggregate.count, 100u);
  EXPECT_EQ(aggregate.sum.Value(), 150.0);
  ExpectOutcome(WriteSync(*store, {Batch({1.0, 2.0}, "k7")}), Code::kDuplicate, 2);
}

// Creates the store's rows table before the store does, with a CHECK a test can violate.
void CreateRowsTableWithCheck(const std::string& data_dir) {
  std::filesystem::create_directories(data_dir);
  Result<duck::DatabaseHandle> db = duck::OpenDatabase(data_dir + "/store.duckdb", 0);
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  Result<duck::ConnectionHandle> conn = duck::Connect(db->get());
  ASSERT_TRUE(conn.ok()) << conn.status().ToString();
  Status created = duck::Exec(conn->get(),
                              "CREATE TABLE replica_rows_4294967295 (partition_key VARCHAR NOT "
                              "NULL, value DOUBLE NOT NULL CHECK (value < 1e300), ingest_ts "
                              "TIMESTAMP NOT NULL)");
  ASSERT_TRUE(created.ok()) << created.ToString();
}

TEST(StoreTest, FailedTransactionStoresNothingOfItsGroup) {
  TempDir dir;
  StoreOptions options = Options(dir);
  ASSERT_NO_FATAL_FAILURE(CreateRowsTableWithCheck(options.data_dir));
  auto store = OpenOrDie(options);
  ASSERT_NE(store, nullptr);
  // Enough rows that the appender flushes some into the table before the bad row fails.
  const std::vector<double> many(250'000, 1.0);
  Result<Outcomes> failed = WriteSync(*store, {Batch(many, "big"), Batch({1e301})});
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), StatusCode::kInternal);
  EXPECT_EQ(CountSync(*store), 0u);
  EXPECT_EQ(AggregateSync(*store).count, 0u);  // the running aggregate saw nothing either
  // The key was rolled back with the rows: a retry stores them.
  ExpectOutcome(WriteSync(*store, {Batch(many, "big")}), Code::kOk, 250'000);
  ExpectOutcome(WriteSync(*store, {Batch(many, "big")}), Code::kDuplicate, 250'000);
  EXPECT_EQ(CountSync(*store), 250'000u);
  EXPECT_EQ(AggregateSync(*store).count, 250'000u);
}

// The writer keeps its appenders across transactions: rows of a rolled-back group must not
// reach a later one.
TEST(StoreTest, RolledBackGroupLeavesNothingForTheNextTransaction) {
  TempDir dir;
  StoreOptions options = Options(dir);
  ASSERT_NO_FATAL_FAILURE(CreateRowsTableWithCheck(options.data_dir));
  auto store = OpenOrDie(options);
  ASSERT_NE(store, nullptr);
  ExpectOutcome(WriteSync(*store, {Batch({1.0})}), Code::kOk, 1);
  ASSERT_FALSE(WriteSync(*store, {Batch({2.0, 4.0}), Batch({1e301})}).ok());
  ExpectOutcome(WriteSync(*store, {Batch({8.0})}), Code::kOk, 1);
  EXPECT_EQ(CountSync(*store), 2u);
  EXPECT_EQ(ScanSync(*store).sum.Value(), 9.0);
  EXPECT_EQ(AggregateSync(*store).sum.Value(), 9.0);
}

// --- Catching up from a copy of another replica's store (Store::ExportCopy, ReplaceFromCopy).

Result<uint64_t> ExportSync(Store& store, const std::string& path) {
  std::promise<Result<uint64_t>> done;
  std::future<Result<uint64_t>> result = done.get_future();
  store.ExportCopy(path, [&done](Result<uint64_t> r) { done.set_value(std::move(r)); });
  return result.get();
}

StoreOptions ReplicaOptions(const TempDir& dir, const std::string& name) {
  StoreOptions options;
  options.data_dir = dir.path() + "/" + name;
  return options;
}

// A replica behind (entry 1 of 3) takes a copy of one ahead: entries queued after the
// replacement wait for it; those the copy holds are skipped, a proposer of one gets its first
// outcome from the copied request window, and later ones apply on the copied state (its keys,
// its request ids), across a restart too.
TEST(StoreTest, CopyReplacesTheStoreAndLaterEntriesApplyOnIt) {
  TempDir dir;
  auto source = OpenOrDie(ReplicaOptions(dir, "source"));
  ASSERT_NE(source, nullptr);
  ASSERT_TRUE(ApplyRequest(*source, 1, 11, {Batch({1, 2}), Batch({4}, "ck")}).ok());
  ASSERT_TRUE(ApplyRequest(*source, 2, 12, {Batch({8})}).ok());
  ASSERT_TRUE(ApplyRequest(*source, 3, 13, {Batch({16, 32})}).ok());
  const std::string copy = dir.path() + "/copy.duckdb";
  Result<uint64_t> exported = ExportSync(*source, copy);
  ASSERT_TRUE(exported.ok()) << exported.status().ToString();
  EXPECT_EQ(*exported, 3u);
  // The source goes on after the copy: none of this is in it.
  ASSERT_TRUE(ApplyRequest(*source, 4, 14, {Batch({1000})}).ok());

  const StoreOptions options = ReplicaOptions(dir, "target");
  {
    auto target = OpenOrDie(options);
    ASSERT_NE(target, nullptr);
    ASSERT_TRUE(ApplyRequest(*target, 1, 11, {Batch({1, 2}), Batch({4}, "ck")}).ok());
    std::promise<Status> replaced;
    int fetches = 0;
    target->ReplaceFromCopy(
        3,
        [&](const std::atomic<bool>&) -> Result<std::string> {
          ++fetches;
          return copy;
        },
        [&replaced](Status status) { replaced.set_value(std::move(status)); });
    // Entry 3 is in the copy: its proposer is answered from the copied window, nothing stored.
    Result<Outcomes> repeated = ApplyRequest(*target, 3, 13, {Batch({16, 32})});
    Status installed = replaced.get_future().get();
    ASSERT_TRUE(installed.ok()) << installed.ToString();
    EXPECT_EQ(fetches, 1);
    ExpectOutcome(repeated, Code::kOk, 2);
    ExpectOutcome(ApplyRequest(*target, 4, 14, {Batch({1000})}), Code::kOk, 1);
    EXPECT_FALSE(std::filesystem::exists(copy));  // deleted after use
    EXPECT_EQ(target->applied_index(), 4u);
    // The copied key and request ids decide as they did on the source.
    EXPECT_EQ(target->FindKey("ck").value_or(KeyRecord{}).fingerprint,
              Batch({4}, "ck").fingerprint);
    ExpectOutcome(ApplyRequest(*target, 5, 12, {Batch({8})}), Code::kOk, 1);  // a retry
    const Aggregate aggregate = AggregateSync(*target);
    EXPECT_EQ(aggregate.count, 7u);
    EXPECT_EQ(aggregate.sum.Value(), 1063.0);
    EXPECT_EQ(aggregate.applied_index, 5u);
    EXPECT_EQ(CountSync(*target), 7u);
  }
  auto reopened = OpenOrDie(options);
  ASSERT_NE(reopened, nullptr);
  EXPECT_EQ(reopened->applied_index(), 5u);
  EXPECT_EQ(AggregateSync(*reopened).count, 7u);
  EXPECT_EQ(AggregateSync(*reopened).sum.Value(), 1063.0);
  EXPECT_EQ(reopened->FindKey("ck").value_or(KeyRecord{}).fingerprint,
            Batch({4}, "ck").fingerprint);
  const Result<Outcomes> retried =
      ApplyRequest(*reopened, 6, 11, {Batch({1, 2}), Batch({4}, "ck")});
  ASSERT_TRUE(retried.ok()) << retried.status().ToString();
  ASSERT_EQ(retried->size(), 2u);
  EXPECT_EQ((*retried)[0].rows_written, 2u);
  EXPECT_EQ(AggregateSync(*reopened).count, 7u);
}

// A fetch that fails, then one whose copy is older than the index asked for, are tried again;
// the store changes only once a copy covers it. A store already there fetches nothing.
TEST(StoreTest, ReplaceTriesAgainUntilACopyCoversTheIndex) {
  TempDir dir;
  auto source = OpenOrDie(ReplicaOptions(dir, "source"));
  ASSERT_NE(source, nullptr);
  ASSERT_TRUE(ApplySync(*source, 1, 0, {Batch({1})}).ok());
  const std::string old_copy = dir.path() + "/old.duckdb";
  ASSERT_TRUE(ExportSync(*source, old_copy).ok());
  ASSERT_TRUE(ApplySync(*source, 2, 0, {Batch({2})}).ok());
  const std::string new_copy = dir.path() + "/new.duckdb";
  ASSERT_TRUE(ExportSync(*source, new_copy).ok());

  auto target = OpenOrDie(ReplicaOptions(dir, "target"));
  ASSERT_NE(target, nullptr);
  std::vector<std::string> answers = {"", old_copy, new_copy};
  size_t fetches = 0;
  std::promise<Status> replaced;
  target->ReplaceFromCopy(
      2,
      [&](const std::atomic<bool>&) -> Result<std::string> {
        const std::string answer = answers.at(fetches++);
        if (answer.empty()) return Unavailable("no peer answered");
        return answer;
      },
      [&replaced](Status status) { replaced.set_value(std::move(status)); });
  Status installed = replaced.get_future().get();
  ASSERT_TRUE(installed.ok()) << installed.ToString();
  EXPECT_EQ(fetches, 3u);
  EXPECT_EQ(target->applied_index(), 2u);
  EXPECT_EQ(AggregateSync(*target).count, 2u);

  std::promise<Status> again;
  target->ReplaceFromCopy(
      2, [](const std::atomic<bool>&) -> Result<std::string> { return Internal("not called"); },
      [&again](Status status) { again.set_value(std::move(status)); });
  EXPECT_TRUE(again.get_future().get().ok());
}

// A store stopped while no copy can be had applies nothing queued after the replacement: an
// entry after the gap must never be stored over it. The next run finds the store as it was.
TEST(StoreTest, StopWhileWaitingForACopyAppliesNothingAfterIt) {
  TempDir dir;
  const StoreOptions options = ReplicaOptions(dir, "target");
  {
    auto target = OpenOrDie(options);
    ASSERT_NE(target, nullptr);
    ASSERT_TRUE(ApplySync(*target, 1, 0, {Batch({1})}).ok());
    std::promise<void> first_fetch;
    std::atomic<bool> fetched{false};
    std::promise<Status> replaced;
    target->ReplaceFromCopy(
        9,
        [&](const std::atomic<bool>&) -> Result<std::string> {
          if (!fetched.exchange(true)) first_fetch.set_value();
          return Unavailable("no peer answered");
        },
        [&replaced](Status status) { replaced.set_value(std::move(status)); });
    std::promise<Result<Outcomes>> after;
    target->Apply(ReplicatedEntry{10, 0, {Batch({5})}},
                  [&after](Result<Outcomes> r) { after.set_value(std::move(r)); });
    first_fetch.get_future().get();
    target->Stop();
    EXPECT_EQ(replaced.get_future().get().code(), StatusCode::kShuttingDown);
    EXPECT_EQ(after.get_future().get().status().code(), StatusCode::kShuttingDown);
  }
  auto reopened = OpenOrDie(options);
  ASSERT_NE(reopened, nullptr);
  EXPECT_EQ(reopened->applied_index(), 1u);
  EXPECT_EQ(CountSync(*reopened), 1u);
}

// A replica store pauses between transactions (min_commit_interval) so that entries queued
// meanwhile share one; Expedite() ends the pause for an entry someone waits for, and Stop()
// ends it too. The interval is far longer than the test's timeout: only those two can finish
// the waits below.
TEST(StoreTest, ExpediteAndStopEndTheCommitInterval) {
  TempDir dir;
  StoreOptions options = ReplicaOptions(dir, "replica");
  options.min_commit_interval = std::chrono::minutes(10);
  auto store = OpenOrDie(options);
  ASSERT_NE(store, nullptr);
  ExpectOutcome(ApplySync(*store, 1, 0, {Batch({1})}), Code::kOk, 1);  // the first: at once
  std::promise<Result<Outcomes>> second;
  store->Apply(ReplicatedEntry{2, 0, {Batch({2})}},
               [&second](Result<Outcomes> r) { second.set_value(std::move(r)); });
  EXPECT_EQ(store->applied_index(), 1u);  // the writer pauses, for minutes
  store->Expedite(2);
  ExpectOutcome(second.get_future().get(), Code::kOk, 1);
  EXPECT_EQ(store->applied_index(), 2u);

  std::promise<Result<Outcomes>> third;
  store->Apply(ReplicatedEntry{3, 0, {Batch({3})}},
               [&third](Result<Outcomes> r) { third.set_value(std::move(r)); });
  store->Stop();  // finishes what is queued without waiting out the pause
  ExpectOutcome(third.get_future().get(), Code::kOk, 1);
}

// Expedite names the entry waited for, and holds until the store applied it: a follower's
// store may be told before the entry reaches it (it learns of the commit later). Only that can
// finish the waits below within the test's timeout.
TEST(StoreTest, AnExpediteAheadOfItsEntryEndsThePauseWhenItComes) {
  TempDir dir;
  StoreOptions options = ReplicaOptions(dir, "replica");
  options.min_commit_interval = std::chrono::minutes(10);
  auto store = OpenOrDie(options);
  ASSERT_NE(store, nullptr);
  ExpectOutcome(ApplySync(*store, 1, 0, {Batch({1})}), Code::kOk, 1);  // the first: at once
  store->Expedite(3);                                                  // nothing queued yet
  std::promise<Result<Outcomes>> second;
  std::promise<Result<Outcomes>> third;
  store->Apply(ReplicatedEntry{2, 0, {Batch({2})}},
               [&second](Result<Outcomes> r) { second.set_value(std::move(r)); });
  ExpectOutcome(second.get_future().get(), Code::kOk, 1);
  store->Apply(ReplicatedEntry{3, 0, {Batch({3})}},
               [&third](Result<Outcomes> r) { third.set_value(std::move(r)); });
  ExpectOutcome(third.get_future().get(), Code::kOk, 1);
  EXPECT_EQ(store->applied_index(), 3u);
  store->Stop();
}

// ATTACH takes no parameters: a copy's path goes into the SQL as a quoted literal, so a path
// with a quote in it must still work.
TEST(StoreTest, CopyPathWithAQuoteWorks) {
  TempDir dir;
  auto source = OpenOrDie(ReplicaOptions(dir, "source"));
  ASSERT_NE(source, nullptr);
  ASSERT_TRUE(ApplySync(*source, 1, 0, {Batch({7})}).ok());
  const std::string copy = dir.path() + "/it's a copy.duckdb";
  Result<uint64_t> exported = ExportSync(*source, copy);
  ASSERT_TRUE(exported.ok()) << exported.status().ToString();
  auto target = OpenOrDie(ReplicaOptions(dir, "target"));
  ASSERT_NE(target, nullptr);
  std::promise<Status> replaced;
  target->ReplaceFromCopy(
      1, [&](const std::atomic<bool>&) -> Result<std::string> { return copy; },
      [&replaced](Status status) { replaced.set_value(std::move(status)); });
  Status installed = replaced.get_future().get();
  ASSERT_TRUE(installed.ok()) << installed.ToString();
  EXPECT_EQ(AggregateSync(*target).sum.Value(), 7.0);
}

}  // namespace
}  // namespace das::storage
