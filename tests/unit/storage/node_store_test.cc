// The node store: every replica of a worker in one DuckDB database, one applier, one
// transaction a round across replicas; a replica removed, copied or killed mid-round.
#include "storage/node_store.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <future>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <prometheus/histogram.h>

#include "../temp_dir.h"
#include "storage/duckdb_util.h"
#include "storage/store.h"
#include "store_sync.h"

namespace das::storage {
namespace {

using Code = SubBatchOutcome::Code;
using Outcomes = std::vector<SubBatchOutcome>;

NodeStoreOptions Options(const TempDir& dir, const std::string& name = "node") {
  NodeStoreOptions options;
  options.data_dir = dir.path() + "/" + name;
  return options;
}

std::unique_ptr<NodeStore> OpenNode(NodeStoreOptions options) {
  Result<std::unique_ptr<NodeStore>> node = NodeStore::Open(std::move(options));
  EXPECT_TRUE(node.ok()) << node.status().ToString();
  return node.ok() ? std::move(node).value() : nullptr;
}

std::unique_ptr<Store> OpenReplica(NodeStore& node, uint32_t replica) {
  ReplicaStoreOptions options;
  options.replica = replica;
  Result<std::unique_ptr<Store>> store = node.OpenReplica(options);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  return store.ok() ? std::move(store).value() : nullptr;
}

SubBatch Rows(std::vector<double> values, std::string key = "") {
  SubBatch batch;
  for (size_t i = 0; i < values.size(); ++i) {
    batch.rows.push_back({"key-" + std::to_string(i), values[i]});
  }
  batch.idempotency_key = std::move(key);
  if (!batch.idempotency_key.empty()) batch.fingerprint = 7;
  return batch;
}

// Entry `index` (request id 1000 + index) of one row with value `index`, once applied.
Result<Outcomes> ApplySync(Store& store, uint64_t index, std::vector<SubBatch> batches = {}) {
  if (batches.empty()) batches.push_back(Rows({static_cast<double>(index)}));
  std::promise<Result<Outcomes>> done;
  auto result = done.get_future();
  store.Apply(ReplicatedEntry{index, 0, std::move(batches), 1000 + index},
              [&done](Result<Outcomes> r) { done.set_value(std::move(r)); });
  return result.get();
}

Aggregate RunningSync(Store& store) {
  Aggregate out;
  store.ComputeAggregate([&out](Result<Aggregate> r) {
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    out = *r;
  });
  return out;
}

// Entries 1..n, one row each of value 1..n: count n, sum n(n+1)/2.
void ExpectEntries(Store& store, uint64_t n) {
  const Aggregate scanned = ScanSync(store);
  EXPECT_EQ(scanned.count, n) << "replica " << store.replica();
  EXPECT_EQ(scanned.sum.Value(), static_cast<double>(n * (n + 1) / 2))
      << "replica " << store.replica();
  EXPECT_EQ(RunningSync(store).count, n);
  EXPECT_EQ(store.applied_index(), n);
}

double RoundsCommitted(prometheus::Histogram& rounds) {
  return static_cast<double>(rounds.Collect().histogram.sample_count);
}

// The node's one database has the memory limit it was given: every replica shares it.
TEST(NodeStoreTest, TheDatabaseHasTheNodesMemoryLimit) {
  TempDir dir;
  NodeStoreOptions options = Options(dir);
  options.memory_limit_bytes = 64ull << 20;
  std::unique_ptr<NodeStore> node = OpenNode(options);
  ASSERT_NE(node, nullptr);
  std::unique_ptr<Store> store = OpenReplica(*node, 3);
  ASSERT_NE(store, nullptr);
  std::promise<Result<bool>> done;
  store->RunOnReader([&done](Result<_duckdb_connection*> conn) {
    if (!conn.ok()) return done.set_value(conn.status());
    Result<duck::QueryResult> rows =
        duck::Query(*conn, "SELECT current_setting('memory_limit') = '64.0 MiB'");
    if (!rows.ok()) return done.set_value(rows.status());
    std::optional<duck::Chunk> chunk = rows->NextChunk();
    done.set_value(chunk.has_value() && chunk->size() == 1 && chunk->Data<bool>(0)[0]);
  });
  Result<bool> limited = done.get_future().get();
  ASSERT_TRUE(limited.ok()) << limited.status().ToString();
  EXPECT_TRUE(*limited);
}

// The writes three replicas queued while the applier paused are applied in one transaction,
// and each replica keeps its own rows, applied index and keys.
TEST(NodeStoreTest, ReplicasQueuedTogetherShareOneTransaction) {
  TempDir dir;
  prometheus::Histogram rounds({0.1, 1.0});
  NodeStoreOptions options = Options(dir);
  options.commit_seconds = &rounds;
  options.min_commit_interval = std::chrono::minutes(10);  // only Expedite ends a pause
  auto node = OpenNode(options);
  ASSERT_NE(node, nullptr);
  std::vector<std::unique_ptr<Store>> stores;
  for (uint32_t replica : {3u, 5u, 9u}) stores.push_back(OpenReplica(*node, replica));
  ASSERT_TRUE(ApplySync(*stores[0], 1).ok());  // the first round: at once
  EXPECT_EQ(RoundsCommitted(rounds), 1.0);

  std::vector<std::future<Result<Outcomes>>> pending;
  for (auto& store : stores) {
    for (uint64_t index = store->applied_index() + 1; index <= 3; ++index) {
      auto done = std::make_shared<std::promise<Result<Outcomes>>>();
      pending.push_back(done->get_future());
      store->Apply(ReplicatedEntry{index, 0, {Rows({static_cast<double>(index)})}, 1000 + index},
                   [done](Result<Outcomes> r) { done->set_value(std::move(r)); });
    }
  }
  EXPECT_EQ(stores[1]->applied_index(), 0u);  // the applier pauses, for minutes
  stores[2]->Expedite(3);
  for (auto& future : pending) ASSERT_TRUE(future.get().ok());
  EXPECT_EQ(RoundsCommitted(rounds), 2.0);  // eight entries of three replicas: one round
  for (auto& store : stores) ExpectEntries(*store, 3);
  EXPECT_EQ(node->Replicas().value(), (std::vector<uint32_t>{3, 5, 9}));
  for (auto& store : stores) store->Stop();
  node->Stop();
}

// A key belongs to its replica: the same key in two replicas is two keys.
TEST(NodeStoreTest, KeysAreDecidedPerReplica) {
  TempDir dir;
  auto node = OpenNode(Options(dir));
  ASSERT_NE(node, nullptr);
  auto a = OpenReplica(*node, 1);
  auto b = OpenReplica(*node, 2);
  Result<Outcomes> first = ApplySync(*a, 1, {Rows({1, 2}, "k")});
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->front().code, Code::kOk);
  Result<Outcomes> other = ApplySync(*b, 1, {Rows({1, 2}, "k")});
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->front().code, Code::kOk);
  Result<Outcomes> again = ApplySync(*a, 2, {Rows({1, 2}, "k")});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->front().code, Code::kDuplicate);
  EXPECT_EQ(a->FindKey("k").value_or(KeyRecord{}).fingerprint, 7u);
  EXPECT_EQ(ScanSync(*a).count, 2u);
  EXPECT_EQ(ScanSync(*b).count, 2u);
}

// A replica removed while another is written leaves nothing behind, and the other loses
// nothing; the removed one opened again starts empty.
TEST(NodeStoreTest, RemovedReplicaLeavesNoRowsWhileOthersAreWritten) {
  TempDir dir;
  auto node = OpenNode(Options(dir));
  ASSERT_NE(node, nullptr);
  auto removed = OpenReplica(*node, 4);
  auto kept = OpenReplica(*node, 6);
  for (uint64_t index = 1; index <= 20; ++index) {
    ASSERT_TRUE(ApplySync(*removed, index, {Rows({1, 2, 3}, "key-" + std::to_string(index))}).ok());
  }
  constexpr uint64_t kWrites = 400;
  std::atomic<bool> failed{false};
  std::thread writer([&] {
    for (uint64_t index = 1; index <= kWrites; ++index) {
      if (!ApplySync(*kept, index).ok()) failed = true;
    }
  });
  removed->Stop();
  Status deleted = node->RemoveReplica(4);
  writer.join();
  ASSERT_TRUE(deleted.ok()) << deleted.ToString();
  EXPECT_FALSE(failed.load());
  EXPECT_EQ(node->Replicas().value(), std::vector<uint32_t>{6});
  ExpectEntries(*kept, kWrites);
  removed = OpenReplica(*node, 4);
  ASSERT_NE(removed, nullptr);
  EXPECT_EQ(ScanSync(*removed).count, 0u);
  EXPECT_EQ(removed->applied_index(), 0u);
  EXPECT_FALSE(removed->FindKey("key-1").has_value());  // its keys went with it
}

// An open replica cannot be removed, nor opened twice.
TEST(NodeStoreTest, OpenReplicaIsNeitherRemovedNorOpenedTwice) {
  TempDir dir;
  auto node = OpenNode(Options(dir));
  ASSERT_NE(node, nullptr);
  auto store = OpenReplica(*node, 1);
  ReplicaStoreOptions again;
  again.replica = 1;
  EXPECT_EQ(node->OpenReplica(again).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(node->RemoveReplica(1).code(), StatusCode::kInvalidArgument);
}

// A copy of one replica is made while another takes writes, and installed into another node
// store while one of its replicas takes writes too: each ends with exactly its own entries.
TEST(NodeStoreTest, CopyOfOneReplicaWhileOthersTakeWrites) {
  TempDir dir;
  auto source = OpenNode(Options(dir, "source"));
  auto target = OpenNode(Options(dir, "target"));
  ASSERT_NE(source, nullptr);
  ASSERT_NE(target, nullptr);
  auto copied = OpenReplica(*source, 2);
  auto busy = OpenReplica(*source, 3);
  for (uint64_t index = 1; index <= 50; ++index) ASSERT_TRUE(ApplySync(*copied, index).ok());
  auto behind = OpenReplica(*target, 2);
  auto other = OpenReplica(*target, 7);

  constexpr uint64_t kWrites = 300;
  std::atomic<bool> failed{false};
  std::thread writers([&] {
    for (uint64_t index = 1; index <= kWrites; ++index) {
      if (!ApplySync(*busy, index).ok() || !ApplySync(*other, index).ok()) failed = true;
    }
  });
  const std::string path = dir.path() + "/copy.duckdb";
  std::promise<Result<uint64_t>> exported;
  copied->ExportCopy(path, [&](Result<uint64_t> index) { exported.set_value(index); });
  Result<uint64_t> index = exported.get_future().get();
  ASSERT_TRUE(index.ok()) << index.status().ToString();
  EXPECT_EQ(*index, 50u);
  std::promise<Status> installed;
  behind->ReplaceFromCopy(
      50, [&](const std::atomic<bool>&) -> Result<std::string> { return path; },
      [&](Status status) { installed.set_value(status); });
  ASSERT_TRUE(ApplySync(*behind, 51).ok());  // queued after the copy: applied on top of it
  Status status = installed.get_future().get();
  writers.join();
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_FALSE(failed.load());
  ExpectEntries(*behind, 51);
  ExpectEntries(*copied, 50);
  ExpectEntries(*busy, kWrites);
  ExpectEntries(*other, kWrites);
}

// kill -9 while the applier runs rounds over several replicas: after the restart, each
// replica holds exactly the entries up to its applied index (rows and index commit together),
// and a replay of every entry from 1 stores nothing twice.
TEST(NodeStoreTest, KillMidRoundKeepsEachReplicaExact) {
  TempDir dir;
  const std::vector<uint32_t> replicas = {0, 1, 2, 3};
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(ready[0]);
    Result<std::unique_ptr<NodeStore>> node = NodeStore::Open(Options(dir));
    if (!node.ok()) ::_exit(2);
    std::vector<std::unique_ptr<Store>> stores;
    for (uint32_t replica : replicas) {
      ReplicaStoreOptions options;
      options.replica = replica;
      Result<std::unique_ptr<Store>> store = (*node)->OpenReplica(options);
      if (!store.ok()) ::_exit(3);
      stores.push_back(std::move(store).value());
    }
    // Entries queued without waiting, so that rounds are large and still running when the
    // parent's kill comes (20,000 entries a replica take the applier a while); then it waits.
    for (uint64_t index = 1; index <= 20000; ++index) {
      for (auto& store : stores) {
        store->Apply(ReplicatedEntry{index, 0, {Rows({static_cast<double>(index)})}, 0},
                     [](Result<Outcomes>) {});
      }
      if (index == 2000 && ::write(ready[1], "r", 1) != 1) ::_exit(4);
    }
    for (;;) ::pause();
  }
  ::close(ready[1]);
  char byte = 0;
  ASSERT_EQ(::read(ready[0], &byte, 1), 1);
  ::close(ready[0]);
  ASSERT_EQ(::kill(child, SIGKILL), 0);
  int wstatus = 0;
  ASSERT_EQ(::waitpid(child, &wstatus, 0), child);
  ASSERT_TRUE(WIFSIGNALED(wstatus));

  auto node = OpenNode(Options(dir));
  ASSERT_NE(node, nullptr);
  for (uint32_t replica : replicas) {
    auto store = OpenReplica(*node, replica);
    ASSERT_NE(store, nullptr);
    const uint64_t applied = store->applied_index();
    ExpectEntries(*store, applied);
    for (uint64_t index = 1; index <= applied + 3; ++index) {
      ASSERT_TRUE(ApplySync(*store, index).ok());
    }
    ExpectEntries(*store, applied + 3);
  }
}

}  // namespace
}  // namespace das::storage

namespace das::storage {
namespace {

// A made-up disk for the guard: the free bytes it reports (`real`: the tmpfs at that path
// instead), and its looks counted, so that a test waits for the guard to have looked (an
// event), not for time to pass.
struct FakeDisk {
  std::atomic<uint64_t> free{1'000};
  std::string real;
  std::atomic<bool> lie{false};  // the next look says there is room, whatever `real` has
  std::mutex mu;
  std::condition_variable looked;
  uint64_t looks = 0;  // GUARDED_BY(mu)

  uint64_t Look() {
    {
      std::lock_guard lock(mu);
      ++looks;
    }
    looked.notify_all();
    if (lie.exchange(false)) return uint64_t{1} << 30;
    return real.empty() ? free.load() : std::filesystem::space(real).available;
  }
  uint64_t Looks() {
    std::lock_guard lock(mu);
    return looks;
  }
  // Waits (bounded: a liveness guard) until the guard has looked `n` times in all.
  bool WaitLooks(uint64_t n) {
    std::unique_lock lock(mu);
    return looked.wait_for(lock, std::chrono::seconds(30), [&] { return looks >= n; });
  }
};

// A node store in `data_dir` whose guard keeps `reserve` bytes on `disk`.
std::unique_ptr<NodeStore> OpenGuarded(const std::string& data_dir,
                                       const std::shared_ptr<FakeDisk>& disk, uint64_t reserve) {
  NodeStoreOptions options;
  options.data_dir = data_dir;
  options.disk_reserve_bytes = reserve;
  options.free_bytes = [disk]() -> Result<uint64_t> { return disk->Look(); };
  return OpenNode(options);
}

// The disk guard with a made-up free space: below the reserve no round starts; raft entries
// of every replica wait (unanswered, unapplied) and are applied in order once there is room.
TEST(NodeStoreTest, AFullDiskHoldsEntriesUntilThereIsRoom) {
  TempDir dir;
  auto disk = std::make_shared<FakeDisk>();
  auto node = OpenGuarded(dir.path() + "/node", disk, 100);
  ASSERT_NE(node, nullptr);
  auto replica = OpenReplica(*node, 3);
  ASSERT_NE(replica, nullptr);
  ASSERT_TRUE(ApplySync(*replica, 1).ok());

  disk->free.store(50);
  const uint64_t before = disk->Looks();
  std::promise<Result<Outcomes>> held;
  replica->Apply(ReplicatedEntry{2, 0, {Rows({2})}, 1002},
                 [&held](Result<Outcomes> r) { held.set_value(std::move(r)); });
  // The applier looked, found the disk full, and looked again after its pause: entry 2 waits.
  ASSERT_TRUE(disk->WaitLooks(before + 2));
  ASSERT_TRUE(node->disk().full);
  EXPECT_EQ(replica->applied_index(), 1u);
  EXPECT_EQ(replica->queue_depth(), 1u);
  EXPECT_EQ(node->disk().free_bytes, 50u);
  EXPECT_EQ(node->disk().reserve_bytes, 100u);

  auto other = OpenReplica(*node, 4);
  ASSERT_NE(other, nullptr);
  std::promise<Result<Outcomes>> other_held;
  other->Apply(ReplicatedEntry{1, 0, {Rows({9})}, 2001},
               [&other_held](Result<Outcomes> r) { other_held.set_value(std::move(r)); });
  const uint64_t looked = disk->Looks();
  ASSERT_TRUE(disk->WaitLooks(looked + 1));  // looked again since: still full, still waiting
  EXPECT_EQ(other->applied_index(), 0u);
  EXPECT_EQ(other->queue_depth(), 1u);

  disk->free.store(110);  // above the reserve, not a quarter above: still full
  EXPECT_TRUE(node->disk().full);
  disk->free.store(125);
  Result<Outcomes> applied = held.get_future().get();
  ASSERT_TRUE(applied.ok()) << applied.status().ToString();
  EXPECT_EQ((*applied)[0].code, Code::kOk);
  EXPECT_EQ(replica->applied_index(), 2u);
  EXPECT_FALSE(node->disk().full);
  EXPECT_EQ(RunningSync(*replica).count, 2u);
  Result<Outcomes> other_applied = other_held.get_future().get();
  ASSERT_TRUE(other_applied.ok()) << other_applied.status().ToString();
  EXPECT_EQ(other->applied_index(), 1u);
  EXPECT_EQ(ScanSync(*other).count, 1u);
  other->Stop();
  replica->Stop();
}

// Closing a replica, or the node, while its entries wait for room does not wait for room:
// they are answered kShuttingDown (their raft log applies them again at the next start).
TEST(NodeStoreTest, StoppingWhileTheDiskIsFullRefusesWhatWaits) {
  TempDir dir;
  auto disk = std::make_shared<FakeDisk>();
  disk->free.store(10);
  auto node = OpenGuarded(dir.path() + "/node", disk, 100);
  ASSERT_NE(node, nullptr);
  ASSERT_TRUE(node->disk().full);  // measured at open
  auto replica = OpenReplica(*node, 4);
  ASSERT_NE(replica, nullptr);
  std::promise<Result<Outcomes>> held;
  replica->Apply(ReplicatedEntry{1, 0, {Rows({1})}, 1001},
                 [&held](Result<Outcomes> r) { held.set_value(std::move(r)); });
  replica->Stop();
  Result<Outcomes> answer = held.get_future().get();
  ASSERT_FALSE(answer.ok());
  EXPECT_EQ(answer.status().code(), StatusCode::kShuttingDown);
  node->Stop();
  auto reopened = OpenNode(Options(dir));
  ASSERT_NE(reopened, nullptr);
  auto again = OpenReplica(*reopened, 4);
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(again->applied_index(), 0u);
  again->Stop();
}

}  // namespace
}  // namespace das::storage

namespace das::storage {
namespace {

// The disk fills between the guard's look and the COMMIT (the guard is told there is room):
// DuckDB refuses the WAL write, the round waits, unanswered and in order, and is stored once
// once there is room. On a real 8 MiB tmpfs (mounting it needs root, as the test machines run).
TEST(NodeStoreTest, ARoundThatFindsTheDiskFullWaitsForRoomAndIsStoredOnce) {
  TempDir dir;
  const std::string disk = dir.path() + "/disk";
  std::filesystem::create_directories(disk);
  ASSERT_EQ(::mount("tmpfs", disk.c_str(), "tmpfs", 0, "size=8m"), 0)
      << "mount tmpfs: " << std::strerror(errno) << " (the test needs root)";
  struct Unmount {
    std::string path;
    ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
  } unmount{disk};
  // The tmpfs's real free space, except for one look that says there is room.
  auto guard = std::make_shared<FakeDisk>();
  guard->real = disk;
  auto node = OpenGuarded(disk + "/node", guard, 1);
  ASSERT_NE(node, nullptr);
  auto replica = OpenReplica(*node, 2);
  ASSERT_NE(replica, nullptr);
  ASSERT_TRUE(ApplySync(*replica, 1).ok());

  const std::string filler = disk + "/filler";
  {
    const int fd = ::open(filler.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0);
    std::vector<char> block(64 * 1024, 1);
    while (::write(fd, block.data(), block.size()) > 0) {
    }
    ::close(fd);
  }
  guard->lie.store(true);
  const uint64_t before = guard->Looks();
  std::promise<Result<Outcomes>> held;
  std::vector<SubBatch> batches;
  // Larger than what is left in the WAL's last page.
  batches.push_back(Rows(std::vector<double>(20'000, 0.5)));
  replica->Apply(ReplicatedEntry{2, 0, std::move(batches), 1002},
                 [&held](Result<Outcomes> r) { held.set_value(std::move(r)); });
  // The look that lied, the failed round put back, then the next look: it waits, unanswered
  // and not applied.
  ASSERT_TRUE(guard->WaitLooks(before + 2));
  ASSERT_TRUE(node->disk().full);
  std::future<Result<Outcomes>> answer = held.get_future();
  EXPECT_EQ(answer.wait_for(std::chrono::seconds(0)), std::future_status::timeout);
  EXPECT_EQ(replica->applied_index(), 1u);

  std::filesystem::remove(filler);
  Result<Outcomes> applied = answer.get();
  ASSERT_TRUE(applied.ok()) << applied.status().ToString();
  EXPECT_EQ((*applied)[0].code, Code::kOk);
  EXPECT_EQ((*applied)[0].rows_written, 20'000u);
  EXPECT_EQ(replica->applied_index(), 2u);
  EXPECT_EQ(RunningSync(*replica).count, 20'001u);
  EXPECT_EQ(ScanSync(*replica).count, 20'001u);
  replica->Stop();
  node->Stop();
  auto reopened = OpenNode(Options(dir, "disk/node"));
  ASSERT_NE(reopened, nullptr);
  auto again = OpenReplica(*reopened, 2);
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(again->applied_index(), 2u);
  EXPECT_EQ(ScanSync(*again).count, 20'001u);
  again->Stop();
}

}  // namespace
}  // namespace das::storage
