// A full disk, through the real binaries: worker 2's data directory on a size-limited tmpfs,
// filled to the last byte while keyed batches keep coming. Every batch is
// acknowledged (worker 1 and the witness are a majority), answers stay complete and exact,
// worker 2 stays up and says "disk full", its shards are led elsewhere; once there is room it
// catches up by itself, with nothing lost or stored twice. The same after a start on a full
// disk. Mounting the tmpfs needs root (the project's test machines run as root).
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "support/api.h"
#include "support/cluster.h"
#include "support/replicated.h"

namespace das::it {
namespace {

constexpr uint64_t kMiB = 1024 * 1024;
constexpr uint64_t kDiskMiB = 128;
constexpr uint64_t kReserveMiB = 32;  // the workers' default on this disk: a quarter of it
constexpr int kRowsPerBatch = 100;

// A tmpfs of `mib` MiB mounted at `path` for the test's length (detached at the end, even if a
// process still has files open there).
class Tmpfs {
 public:
  Tmpfs(std::string path, uint64_t mib) : path_(std::move(path)) {
    std::filesystem::create_directories(path_);
    const std::string size = "size=" + std::to_string(mib) + "m";
    if (::mount("tmpfs", path_.c_str(), "tmpfs", 0, size.c_str()) != 0) {
      error_ = "mount tmpfs at " + path_ + ": " + std::strerror(errno) + " (the test needs root)";
    }
  }
  ~Tmpfs() {
    if (error_.empty()) ::umount2(path_.c_str(), MNT_DETACH);
  }
  const std::string& error() const { return error_; }

  uint64_t FreeBytes() const {
    struct statvfs fs {};
    return ::statvfs(path_.c_str(), &fs) == 0 ? uint64_t{fs.f_bavail} * fs.f_frsize : 0;
  }
  // Takes all but `leave` bytes of what is free, in a file of its own. The worker allocates too
  // (a raft log segment, its store): space it took between the look and the allocation makes
  // that fail, and the filler is grown again to what is free then.
  testing::AssertionResult Fill(uint64_t leave) {
    const int fd = ::open(filler().c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return testing::AssertionFailure() << "open filler: " << std::strerror(errno);
    int rv = 0;
    off_t size = 0;
    for (int attempt = 0; attempt < 20; ++attempt) {
      const uint64_t free = FreeBytes();
      if (free <= leave) break;
      rv = ::posix_fallocate(fd, 0, size + static_cast<off_t>(free - leave));
      if (rv == 0) break;
      if (rv != ENOSPC) break;
      struct stat st {};
      size = ::fstat(fd, &st) == 0 ? st.st_size : size;
    }
    ::close(fd);
    if (rv != 0) return testing::AssertionFailure() << "fallocate: " << std::strerror(rv);
    return testing::AssertionSuccess();
  }
  void Free() { std::filesystem::remove(filler()); }

 private:
  std::string filler() const { return path_ + "/filler"; }
  std::string path_;
  std::string error_;
};

class DiskTest : public ClusterTest {
 protected:
  // kBatches keyed batches over every shard, each acknowledged whole.
  testing::AssertionResult InsertBatches(const std::string& round, int batches) {
    for (int b = 0; b < batches; ++b) {
      std::vector<TestRow> rows;
      for (int i = 0; i < kRowsPerBatch; ++i) {
        rows.push_back({round + "-" + std::to_string(b) + "-" + std::to_string(i), 0.5 * i});
      }
      const std::string key = round + "-" + std::to_string(b);
      if (auto r = BatchOk(port(), rows, key, kRowsPerBatch); !r) return r;
      expected_.Add(rows);
      last_ = {rows, key};
    }
    return testing::AssertionSuccess();
  }

  testing::AssertionResult Worker2(
      const std::string& what,
      const std::function<bool(const v1::HealthResponse&, const v1::WorkerStatus&)>& done) {
    return cluster_.PollControlHealth(
        kRecoveryBound,
        [&](const v1::HealthResponse& health) {
          for (const v1::WorkerStatus& w : health.workers()) {
            if (w.worker_id() == 2) return done(health, w);
          }
          return false;
        },
        what);
  }

  // Worker 2 says its disk is full, and leads no shard.
  testing::AssertionResult Worker2FullAndLeadingNothing() {
    return Worker2("worker 2 full and leading nothing",
                   [](const v1::HealthResponse& health, const v1::WorkerStatus& w) {
                     if (!w.disk_full() || w.error().find("disk full") == std::string::npos) {
                       return false;
                     }
                     for (const v1::ShardStatus& shard : health.shards()) {
                       if (shard.leader().empty() || shard.leader() == "worker-2") return false;
                     }
                     return health.status() == "degraded";
                   });
  }

  // Worker 2 has room again, caught up, and holds every row (it has a replica of every shard).
  testing::AssertionResult Worker2CaughtUp() {
    if (auto r = Worker2("worker 2 with room again",
                         [](const v1::HealthResponse&, const v1::WorkerStatus& w) {
                           return !w.disk_full() && w.healthy();
                         });
        !r) {
      return r;
    }
    if (auto r = cluster_.WaitReplicasCaughtUp(1, kRecoveryBound); !r) return r;
    const uint64_t rows = expected_.count();
    return cluster_.PollControlHealth(
        kRecoveryBound,
        [rows](const v1::HealthResponse& health) {
          if (health.workers_size() != 2) return false;
          for (const v1::WorkerStatus& w : health.workers()) {
            if (w.rows() != rows) return false;
          }
          return true;
        },
        "every worker holding " + std::to_string(rows) + " rows");
  }

  Expected expected_;
  std::pair<std::vector<TestRow>, std::string> last_;
};

TEST_F(DiskTest, AWorkerWhoseDiskFillsStaysUpLosesNothingAndCatchesUpOnceThereIsRoom) {
  Tmpfs disk(cluster_.dir() + "/worker-2", kDiskMiB);
  ASSERT_EQ(disk.error(), "");
  ASSERT_TRUE(cluster_.Start());
  ASSERT_TRUE(InsertBatches("before", 10));
  // The balancer gives worker 2 the shards it prefers: those must move when its disk fills.
  ASSERT_TRUE(cluster_.PollControlHealth(
      kRecoveryBound,
      [](const v1::HealthResponse& health) {
        int led = 0;
        for (const v1::ShardStatus& shard : health.shards()) led += shard.leader() == "worker-2";
        return led == health.shards_size() / 2;
      },
      "worker 2 leading half the shards"));

  // Not a byte left (but its ballast): writes go on through worker 1 and the witness, worker 2
  // stores nothing and hands its shards over.
  ASSERT_TRUE(disk.Fill(0));
  ASSERT_TRUE(InsertBatches("full", 20));
  ASSERT_TRUE(Worker2FullAndLeadingNothing());
  ASSERT_TRUE(InsertBatches("led-elsewhere", 10));
  EXPECT_TRUE(ExpectCompleteAndExact(port(), expected_, 2));
  ASSERT_TRUE(cluster_.worker_process(1)->Running());

  disk.Free();
  ASSERT_TRUE(Worker2CaughtUp());
  EXPECT_TRUE(ExpectCompleteAndExact(port(), expected_, 2));
  // The last batch again: a duplicate, stored once.
  ASSERT_TRUE(BatchOk(port(), last_.first, last_.second, kRowsPerBatch));
  EXPECT_TRUE(ExpectCompleteAndExact(port(), expected_, 2));

  // A start on a full disk gives up its ballast, comes up full, then catches up the same way.
  ASSERT_TRUE(cluster_.KillWorker(1));
  ASSERT_TRUE(disk.Fill(0));
  ASSERT_TRUE(cluster_.RestartWorker(1, /*wait_ok=*/false));
  ASSERT_TRUE(Worker2FullAndLeadingNothing());
  ASSERT_TRUE(InsertBatches("after-restart", 10));
  EXPECT_TRUE(ExpectCompleteAndExact(port(), expected_, 2));
  disk.Free();
  ASSERT_TRUE(Worker2CaughtUp());
  EXPECT_TRUE(ExpectCompleteAndExact(port(), expected_, 2));
}

// Unreplicated, a write has no log to wait in: the worker whose disk is full refuses it at once
// with a 503 that says why, stores nothing, and takes writes again once there is room.
TEST_F(DiskTest, UnreplicatedAWorkerWithAFullDiskRefusesWritesClearlyUntilThereIsRoom) {
  Tmpfs disk(cluster_.dir() + "/worker-1", kDiskMiB);
  ASSERT_EQ(disk.error(), "");
  ClusterOptions options = Unreplicated();
  options.worker_flags = {"--disk-reserve-mb", std::to_string(kReserveMiB)};
  ASSERT_TRUE(cluster_.Start(options));
  const std::vector<std::string> on1 = KeysOnWorker(0, 2, 2, "full");
  const std::vector<std::string> on2 = KeysOnWorker(1, 2, 1, "room");
  ASSERT_TRUE(InsertOk(port(), on1[0], 1.0));
  expected_.Add(1.0);
  ASSERT_TRUE(disk.Fill((kReserveMiB - 12) * kMiB));
  Result<HttpResponse> refused = PostInsert(port(), on1[1], 2.0, Encoding::kJson);
  ASSERT_TRUE(refused.ok()) << refused.status().ToString();
  EXPECT_EQ(refused->status, 503);
  EXPECT_NE(refused->body.find("disk is full"), std::string::npos) << refused->body;
  ASSERT_TRUE(InsertOk(port(), on2[0], 3.0));  // the other worker has room
  expected_.Add(3.0);
  EXPECT_TRUE(ExpectCompleteAndExact(port(), expected_, 2));
  disk.Free();
  ASSERT_TRUE(InsertOk(port(), on1[1], 2.0));
  expected_.Add(2.0);
  EXPECT_TRUE(ExpectCompleteAndExact(port(), expected_, 2));
}

// The control node's data directory (cluster.pb and the witness's raft logs) filled to the last
// byte: the witness's raft log stops taking entries, the two workers are a majority of every
// shard, so writes go on; once there is room the witness catches up.
TEST_F(DiskTest, TheWitnessOnAFullDiskStopsNoWrite) {
  Tmpfs disk(cluster_.dir() + "/control", kDiskMiB);
  ASSERT_EQ(disk.error(), "");
  ASSERT_TRUE(cluster_.Start());
  ASSERT_TRUE(InsertBatches("before", 5));
  ASSERT_TRUE(disk.Fill(0));
  ASSERT_TRUE(InsertBatches("full", 20));
  EXPECT_TRUE(ExpectCompleteAndExact(port(), expected_, 2));
  ASSERT_TRUE(cluster_.control_process()->Running());
  ASSERT_TRUE(cluster_.PollControlHealth(
      kRecoveryBound,
      [](const v1::HealthResponse& health) {
        return health.control_disk_full() && health.status() == "degraded" &&
               health.control_disk_free_bytes() < kMiB;
      },
      "the control node's disk reported full"));
  disk.Free();
  ASSERT_TRUE(InsertBatches("after", 5));
  EXPECT_TRUE(ExpectCompleteAndExact(port(), expected_, 2));
  ASSERT_TRUE(cluster_.PollControlHealth(
      kRecoveryBound,
      [](const v1::HealthResponse& health) {
        return health.status() == "ok" && !health.control_disk_full();
      },
      "every replica caught up, the witness's too"));
}

}  // namespace
}  // namespace das::it
