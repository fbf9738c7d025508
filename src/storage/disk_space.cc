#include "storage/disk_space.h"

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include <spdlog/spdlog.h>

namespace das::storage {
namespace {

constexpr uint64_t kMiB = 1024 * 1024;
constexpr char kBallastName[] = "disk-ballast";

std::string BallastPath(const std::string& dir) {
  return (std::filesystem::path(dir) / kBallastName).string();
}

bool MakeBallast(const std::string& dir, uint64_t bytes) {
  const std::string path = BallastPath(dir);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  const int rv = ::posix_fallocate(fd, 0, static_cast<off_t>(bytes));
  ::close(fd);
  if (rv != 0) {
    std::error_code ignored;
    std::filesystem::remove(path, ignored);
    spdlog::warn("disk: cannot make the ballast {}: {}", path, std::strerror(rv));
    return false;
  }
  return true;
}

}  // namespace

Result<DiskSize> MeasureDisk(const std::string& dir) {
  struct statvfs fs {};
  if (::statvfs(dir.c_str(), &fs) != 0) {
    return Unavailable("statvfs " + dir + ": " + std::strerror(errno));
  }
  return DiskSize{static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize,
                  static_cast<uint64_t>(fs.f_blocks) * fs.f_frsize};
}

uint64_t DefaultDiskReserve(uint64_t total_bytes) {
  return std::min<uint64_t>(256 * kMiB, total_bytes / 4);
}

uint64_t CheckpointThresholdFor(uint64_t reserve_bytes) {
  if (reserve_bytes == 0 || reserve_bytes / 4 >= 16 * kMiB) return 0;
  return std::max<uint64_t>(reserve_bytes / 4, kMiB);
}

uint64_t BallastFor(uint64_t reserve_bytes) {
  return std::min<uint64_t>(reserve_bytes / 2, 32 * kMiB);
}

void KeepBallast(const std::string& dir, uint64_t bytes, uint64_t reserve_bytes) {
  if (bytes == 0) return;
  Result<DiskSize> disk = MeasureDisk(dir);
  if (!disk.ok()) return;
  std::error_code error;
  const bool exists = std::filesystem::exists(BallastPath(dir), error);
  if (disk->free_bytes < bytes) {
    if (!exists) return;
    std::filesystem::remove(BallastPath(dir), error);
    spdlog::warn(
        "disk full at start ({} MiB free): gave up the ballast of {} MiB in {} so that the store "
        "and raft can open; it is made again once there is room",
        disk->free_bytes / kMiB, bytes / kMiB, dir);
    return;
  }
  if (!exists) RestoreBallast(dir, bytes, reserve_bytes);
}

void RestoreBallast(const std::string& dir, uint64_t bytes, uint64_t reserve_bytes) {
  if (bytes == 0) return;
  std::error_code error;
  if (std::filesystem::exists(BallastPath(dir), error)) return;
  Result<DiskSize> disk = MeasureDisk(dir);
  if (!disk.ok() || disk->free_bytes < reserve_bytes + 2 * bytes) return;
  if (MakeBallast(dir, bytes))
    spdlog::info("disk: ballast of {} MiB made in {}", bytes / kMiB, dir);
}

}  // namespace das::storage
