// The reserve, ballast and checkpoint threshold a worker derives from its disk, and the ballast
// made at start on a disk with room. (Giving the ballast up on a full disk needs a full disk:
// tests/integration/disk_test.cc.)
#include "storage/disk_space.h"

#include <gtest/gtest.h>

#include <filesystem>

#include <unistd.h>

#include "../temp_dir.h"
#include "storage/memory_budget.h"

namespace das::storage {
namespace {

constexpr uint64_t kMiB = 1024 * 1024;

TEST(DiskSpaceTest, TheReserveIsAQuarterOfTheDiskAtMost256MiB) {
  EXPECT_EQ(DefaultDiskReserve(96 * kMiB), 24 * kMiB);
  EXPECT_EQ(DefaultDiskReserve(1024 * kMiB), 256 * kMiB);
  EXPECT_EQ(DefaultDiskReserve(500ull * 1024 * kMiB), 256 * kMiB);
}

TEST(DiskSpaceTest, ACheckpointFitsInASmallReserve) {
  EXPECT_EQ(CheckpointThresholdFor(0), 0u);           // DuckDB's own
  EXPECT_EQ(CheckpointThresholdFor(256 * kMiB), 0u);  // 64 MiB: above DuckDB's 16 MiB
  EXPECT_EQ(CheckpointThresholdFor(24 * kMiB), 6 * kMiB);
  EXPECT_EQ(CheckpointThresholdFor(2 * kMiB), kMiB);  // never under 1 MiB
}

TEST(DiskSpaceTest, TheBallastIsHalfTheReserveAtMost32MiB) {
  EXPECT_EQ(BallastFor(24 * kMiB), 12 * kMiB);
  EXPECT_EQ(BallastFor(256 * kMiB), 32 * kMiB);
}

TEST(MemoryBudgetTest, DuckDBGetsAQuarterOfTheMachineAtLeast128MiB) {
  EXPECT_EQ(DefaultDuckdbMemory(24 * 1024 * kMiB), 6 * 1024 * kMiB);
  EXPECT_EQ(DefaultDuckdbMemory(256 * kMiB), 128 * kMiB);
  EXPECT_EQ(DefaultDuckdbMemory(0), 0u);  // unknown: DuckDB's own default
  const uint64_t machine = MachineMemoryBytes();
  EXPECT_GT(machine, 128 * kMiB);
  EXPECT_LE(machine, static_cast<uint64_t>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGE_SIZE));
}

TEST(DiskSpaceTest, AStartWithRoomMakesTheBallastOnce) {
  TempDir dir;
  const std::filesystem::path ballast = std::filesystem::path(dir.path()) / "disk-ballast";
  KeepBallast(dir.path(), 2 * kMiB, 4 * kMiB);
  ASSERT_TRUE(std::filesystem::exists(ballast));
  EXPECT_EQ(std::filesystem::file_size(ballast), 2 * kMiB);
  KeepBallast(dir.path(), 2 * kMiB, 4 * kMiB);  // kept as it is
  EXPECT_EQ(std::filesystem::file_size(ballast), 2 * kMiB);
  Result<DiskSize> disk = MeasureDisk(dir.path());
  ASSERT_TRUE(disk.ok()) << disk.status().ToString();
  EXPECT_GT(disk->total_bytes, disk->free_bytes);
}

}  // namespace
}  // namespace das::storage
