// One replica's rows and keys read a page at a time (the import of an unreplicated store into
// shards), and rows applied with their own ingest times (how the shards store them).
#include "storage/replica_pages.h"

#include <cstdint>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "../temp_dir.h"
#include "storage/duckdb_util.h"
#include "storage/node_store.h"
#include "storage/store.h"
#include "storage/store_tables.h"

namespace das::storage {
namespace {

using Outcomes = std::vector<SubBatchOutcome>;

struct Node {
  std::unique_ptr<NodeStore> node;
  std::unique_ptr<Store> store;
  ~Node() {
    if (store) store->Stop();
    if (node) node->Stop();
  }
};

void Open(const TempDir& dir, uint32_t replica, Node& out) {
  NodeStoreOptions options;
  options.data_dir = dir.path() + "/node";
  Result<std::unique_ptr<NodeStore>> node = NodeStore::Open(options);
  ASSERT_TRUE(node.ok()) << node.status().ToString();
  out.node = std::move(node).value();
  ReplicaStoreOptions replica_options;
  replica_options.replica = replica;
  Result<std::unique_ptr<Store>> store = out.node->OpenReplica(replica_options);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  out.store = std::move(store).value();
}

Result<Outcomes> ApplySync(Store& store, ReplicatedEntry entry) {
  std::promise<Result<Outcomes>> done;
  store.Apply(std::move(entry), [&done](Result<Outcomes> r) { done.set_value(std::move(r)); });
  return done.get_future().get();
}

// `batches` as the store's next raft entry, with `ingest_us`.
Result<Outcomes> WriteSync(Store& store, std::vector<SubBatch> batches, int64_t ingest_us) {
  return ApplySync(store,
                   ReplicatedEntry{store.applied_index() + 1, ingest_us, std::move(batches)});
}

template <typename T, typename Read>
Result<T> OnReader(Store& store, Read read) {
  std::promise<Result<T>> done;
  store.RunOnReader([&done, &read](Result<_duckdb_connection*> conn) {
    if (!conn.ok()) return done.set_value(conn.status());
    done.set_value(read(*conn));
  });
  return done.get_future().get();
}

// key -> ingest time (microseconds), every row of `replica`.
std::map<std::string, int64_t> IngestTimes(Store& store) {
  Result<std::map<std::string, int64_t>> times =
      OnReader<std::map<std::string, int64_t>>(store, [&store](duckdb_connection conn) {
        const std::string sql =
            "SELECT partition_key, epoch_us(ingest_ts) FROM " + RowsTable(store.replica());
        std::map<std::string, int64_t> out;
        Result<duck::QueryResult> rows = duck::Query(conn, sql.c_str());
        if (!rows.ok()) return Result<std::map<std::string, int64_t>>(rows.status());
        while (std::optional<duck::Chunk> chunk = rows->NextChunk()) {
          for (size_t r = 0; r < chunk->size(); ++r) {
            out[std::string(chunk->String(0, r))] = chunk->Data<int64_t>(1)[r];
          }
        }
        return Result<std::map<std::string, int64_t>>(out);
      });
  EXPECT_TRUE(times.ok()) << times.status().ToString();
  return times.ok() ? *times : std::map<std::string, int64_t>{};
}

// Rows written with their own ingest times keep them (older than the entry's), and the shard's
// newest ingest time, and so the next entry's, is above every one of them.
TEST(ReplicaPagesTest, RowsAppliedWithTheirOwnIngestTimesKeepThem) {
  TempDir dir;
  Node n;
  ASSERT_NO_FATAL_FAILURE(Open(dir, 4, n));
  SubBatch imported;
  imported.rows = {{"old-a", 1}, {"old-b", 2}};
  imported.row_ingest_us = {1'000'000, 4'000'000'000'000'000};  // the second far ahead
  imported.idempotency_key = std::string("\0das-import/1/0", 15);
  imported.fingerprint = 5;
  ASSERT_TRUE(ApplySync(*n.store, ReplicatedEntry{1, 2'000'000, {imported}, 11}).ok());
  SubBatch plain;
  plain.rows = {{"new", 3}};
  ASSERT_TRUE(ApplySync(*n.store, ReplicatedEntry{2, 3'000'000, {plain}, 12}).ok());
  const std::map<std::string, int64_t> times = IngestTimes(*n.store);
  EXPECT_EQ(times.at("old-a"), 1'000'000);
  EXPECT_EQ(times.at("old-b"), 4'000'000'000'000'000);
  EXPECT_EQ(times.at("new"), 4'000'000'000'000'001);  // raised above the newest stored
  EXPECT_EQ(n.store->newest_ingest_us(), 4'000'000'000'000'001);
}

// Pages of rows (by row id) and keys (by key) cover the store exactly once, whatever the page's
// row or byte bound, and say when they are done.
TEST(ReplicaPagesTest, PagesCoverEveryRowAndKeyOnce) {
  TempDir dir;
  Node n;
  ASSERT_NO_FATAL_FAILURE(Open(dir, kUnreplicatedReplica, n));
  for (int b = 0; b < 5; ++b) {
    SubBatch batch;
    for (int r = 0; r < 1000; ++r) {
      batch.rows.push_back({"k" + std::to_string(b * 1000 + r), static_cast<double>(r)});
    }
    batch.idempotency_key = "batch-" + std::to_string(b);
    batch.fingerprint = 100 + b;
    ASSERT_TRUE(WriteSync(*n.store, {batch}, 1'000'000 * (b + 1)).ok());
  }
  for (const auto& [limit, bytes] : std::vector<std::pair<uint32_t, size_t>>{
           {700, 1 << 20}, {100000, 1 << 20}, {100000, 5000}}) {
    std::map<std::string, int> seen;
    uint64_t from = 0;
    for (int pages = 0;; ++pages) {
      ASSERT_LT(pages, 1000);
      Result<RowsPage> page = OnReader<RowsPage>(*n.store, [&](duckdb_connection conn) {
        return ReadRowsPage(conn, kUnreplicatedReplica, from, limit, bytes);
      });
      ASSERT_TRUE(page.ok()) << page.status().ToString();
      EXPECT_EQ(page->total, 5000u);
      EXPECT_LE(page->rows.size(), limit);
      for (const PagedRow& row : page->rows) {
        ++seen[row.partition_key];
        const int b = std::stoi(row.partition_key.substr(1)) / 1000;
        EXPECT_EQ(row.ingest_us, 1'000'000 * (b + 1)) << row.partition_key;
      }
      if (page->done) break;
      ASSERT_GT(page->next, from);
      from = page->next;
    }
    EXPECT_EQ(seen.size(), 5000u) << "limit " << limit << " bytes " << bytes;
    for (const auto& [key, times] : seen) EXPECT_EQ(times, 1) << key;
  }
  std::map<std::string, uint64_t> keys;
  for (uint64_t from = 0;;) {
    Result<KeysPage> page = OnReader<KeysPage>(*n.store, [&](duckdb_connection conn) {
      return ReadKeysPage(conn, kUnreplicatedReplica, from, 2, 1 << 20);
    });
    ASSERT_TRUE(page.ok()) << page.status().ToString();
    EXPECT_EQ(page->total, 5u);
    for (const PagedKey& key : page->keys) keys[key.key] = key.fingerprint;
    if (page->done) break;
    from = page->next;
  }
  ASSERT_EQ(keys.size(), 5u);
  for (int b = 0; b < 5; ++b) EXPECT_EQ(keys.at("batch-" + std::to_string(b)), 100u + b);
}

}  // namespace
}  // namespace das::storage
