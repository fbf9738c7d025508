// The migration of a worker's data directory from the layout before one store per worker (a
// DuckDB file per shard replica, worker.duckdb unreplicated) into its node store, on files the
// build before it wrote (tests/data/v0-layout, made by tests/data/make-v0-layout.sh): every row,
// key, request id and applied index comes along, once; an old file is deleted only after its
// import committed, and one that cannot be read is kept and fails the open.
#include <filesystem>
#include <fstream>
#include <future>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "../temp_dir.h"
#include "storage/duckdb_util.h"
#include "storage/node_store.h"
#include "storage/store.h"
#include "store_sync.h"

namespace das::storage {
namespace {

const std::string kData = DAS_TEST_DATA_DIR "/v0-layout";

// What an old replica file holds, read with plain SQL from the file itself.
struct OldFile {
  uint64_t count = 0;
  double sum = 0;
  uint64_t applied_index = 0;
  uint64_t requests = 0;
  bool has_batch_key = false;
};

double Number(duckdb_connection conn, const std::string& sql) {
  Result<duck::QueryResult> result = duck::Query(conn, sql.c_str());
  EXPECT_TRUE(result.ok()) << sql << ": " << result.status().ToString();
  if (!result.ok()) return -1;
  std::optional<duck::Chunk> chunk = result->NextChunk();
  return chunk ? chunk->Get<double>(0, 0).value_or(0) : -1;
}

OldFile ReadOld(const std::string& path) {
  Result<duck::DatabaseHandle> db = duck::OpenDatabase(":memory:", 1);
  Result<duck::ConnectionHandle> conn = duck::Connect(db->get());
  duckdb_connection c = conn->get();
  EXPECT_TRUE(duck::Exec(c, ("ATTACH " + duck::Quote(path) + " AS old (READ_ONLY)").c_str()).ok());
  OldFile old;
  old.count = static_cast<uint64_t>(Number(c, "SELECT count(*)::DOUBLE FROM old.rows"));
  old.sum = Number(c, "SELECT coalesce(sum(value), 0)::DOUBLE FROM old.rows");
  old.applied_index = static_cast<uint64_t>(
      Number(c,
             "SELECT greatest((SELECT coalesce(max(applied_index), 0) FROM old.raft_applied), "
             "(SELECT coalesce(max(raft_index), 0) FROM old.raft_requests))::DOUBLE"));
  old.requests = static_cast<uint64_t>(Number(c, "SELECT count(*)::DOUBLE FROM old.raft_requests"));
  old.has_batch_key =
      Number(c, "SELECT count(*)::DOUBLE FROM old.idempotency_keys WHERE key = 'v0-batch'") == 1;
  return old;
}

std::unique_ptr<NodeStore> OpenNode(const std::string& dir) {
  NodeStoreOptions options;
  options.data_dir = dir;
  Result<std::unique_ptr<NodeStore>> node = NodeStore::Open(options);
  EXPECT_TRUE(node.ok()) << node.status().ToString();
  return node.ok() ? std::move(node).value() : nullptr;
}

Result<std::unique_ptr<Store>> OpenMigrating(NodeStore& node, uint32_t replica,
                                             const std::string& old_file) {
  ReplicaStoreOptions options;
  options.replica = replica;
  options.migrate_from = old_file;
  // The old files' keys keep the time their batch was stored at (when the files were made):
  // with the default retention of a day they are past it a day later, and the test would
  // depend on the date it runs. A retention longer than the files' age keeps them.
  options.idempotency_retention = std::chrono::hours(24 * 365 * 100);
  return node.OpenReplica(options);
}

void ExpectHolds(Store& store, const OldFile& old) {
  const Aggregate scanned = ScanSync(store);
  EXPECT_EQ(scanned.count, old.count);
  EXPECT_EQ(scanned.sum.Value(), old.sum);
  EXPECT_EQ(store.applied_index(), old.applied_index);
  // The key is known where the old file had it, else not.
  EXPECT_EQ(store.FindKey("v0-batch").has_value(), old.has_batch_key);
}

// Both shard replicas of an old replicated worker: rows, keys, applied index and request window
// as the old files held them (14 rows summing to 1022.5 over the two, as the generator stored
// them); the old files are gone, and a second open changes nothing.
TEST(MigrationTest, OldShardFilesAreImportedWholeThenDeleted) {
  TempDir dir;
  const std::string node_dir = dir.path() + "/worker";
  std::vector<OldFile> old;
  for (int shard : {0, 1}) {
    const std::string from = kData + "/r3w-worker-1/shards/" + std::to_string(shard);
    std::filesystem::create_directories(node_dir + "/shards/" + std::to_string(shard));
    std::filesystem::copy_file(from + "/shard.duckdb",
                               node_dir + "/shards/" + std::to_string(shard) + "/shard.duckdb");
    old.push_back(ReadOld(from + "/shard.duckdb"));
  }
  EXPECT_EQ(old[0].count + old[1].count, 14u);
  EXPECT_EQ(old[0].sum + old[1].sum, 1022.5);
  EXPECT_TRUE(old[0].has_batch_key || old[1].has_batch_key);
  for (int round = 0; round < 2; ++round) {  // the second open finds nothing to migrate
    auto node = OpenNode(node_dir);
    ASSERT_NE(node, nullptr);
    for (uint32_t shard : {0u, 1u}) {
      const std::string file = node_dir + "/shards/" + std::to_string(shard) + "/shard.duckdb";
      Result<std::unique_ptr<Store>> store = OpenMigrating(*node, shard, file);
      ASSERT_TRUE(store.ok()) << store.status().ToString();
      ExpectHolds(**store, old[shard]);
      EXPECT_FALSE(std::filesystem::exists(file));
      // An entry after the old ones applies on top of them, once.
      if (round == 0) {
        std::promise<Result<std::vector<SubBatchOutcome>>> done;
        auto result = done.get_future();
        SubBatch batch;
        batch.rows.push_back({"new", 1});
        (*store)->Apply(ReplicatedEntry{old[shard].applied_index + 1, 0, {batch}, 9},
                        [&done](auto r) { done.set_value(std::move(r)); });
        ASSERT_TRUE(result.get().ok());
        ++old[shard].count;
        old[shard].sum += 1;
        ++old[shard].applied_index;
      }
    }
  }
}

// A crash after the import committed and before the old file was deleted: the next open
// imports it again, and the same rows replace the same rows (nothing twice).
TEST(MigrationTest, AnOldFileLeftByACrashIsImportedAgainNotTwice) {
  TempDir dir;
  const std::string node_dir = dir.path() + "/worker";
  const std::string source = kData + "/r1-worker-1/worker.duckdb";
  const std::string file = node_dir + "/worker.duckdb";
  std::filesystem::create_directories(node_dir);
  const OldFile old = ReadOld(source);
  EXPECT_GT(old.count, 0u);
  for (int open = 0; open < 2; ++open) {
    std::filesystem::copy_file(source, file, std::filesystem::copy_options::overwrite_existing);
    auto node = OpenNode(node_dir);
    ASSERT_NE(node, nullptr);
    Result<std::unique_ptr<Store>> store = OpenMigrating(*node, kUnreplicatedReplica, file);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    ExpectHolds(**store, old);
    EXPECT_FALSE(std::filesystem::exists(file));
  }
}

// An old file that is no DuckDB database fails the replica's open, is kept for a person to
// look at, and nothing of it is in the store.
TEST(MigrationTest, AnUnreadableOldFileFailsTheOpenAndIsKept) {
  TempDir dir;
  const std::string node_dir = dir.path() + "/worker";
  const std::string file = node_dir + "/shards/3/shard.duckdb";
  std::filesystem::create_directories(node_dir + "/shards/3");
  std::ofstream(file) << "not a database";
  auto node = OpenNode(node_dir);
  ASSERT_NE(node, nullptr);
  Result<std::unique_ptr<Store>> store = OpenMigrating(*node, 3, file);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kInternal);
  EXPECT_NE(store.status().message().find(file), std::string::npos) << store.status().message();
  EXPECT_TRUE(std::filesystem::exists(file));
  EXPECT_EQ(node->Replicas().value(), std::vector<uint32_t>{});
}

}  // namespace
}  // namespace das::storage
