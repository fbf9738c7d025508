#include "worker/data_pool.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace das::worker {

PoolClaim::~PoolClaim() { ::close(fd_); }

Status PoolClaim::SetAside(uint64_t old_id) {
  const std::string aside = data_dir_ + ".left-" + std::to_string(old_id);
  std::error_code error;
  std::filesystem::rename(data_dir_, aside, error);
  if (error)
    return Unavailable("cannot move " + data_dir_ + " to " + aside + ": " + error.message());
  std::filesystem::create_directories(data_dir_, error);
  if (error) return Unavailable("cannot create " + data_dir_ + ": " + error.message());
  return Status::Ok();
}

Result<std::unique_ptr<PoolClaim>> ClaimFromPool(const std::string& pool, int limit) {
  std::error_code error;
  std::filesystem::create_directories(pool, error);
  if (error) return Unavailable("cannot create the data pool " + pool + ": " + error.message());
  for (int n = 1; n <= limit; ++n) {
    const std::string dir =
        (std::filesystem::path(pool) / ("worker-" + std::to_string(n))).string();
    const std::string lock = dir + ".lock";
    const int fd = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return Unavailable("cannot open " + lock + ": " + std::strerror(errno));
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int why = errno;
      ::close(fd);
      if (why == EWOULDBLOCK) continue;  // another running worker holds it
      return Unavailable("cannot lock " + lock + ": " + std::strerror(why));
    }
    std::filesystem::create_directories(dir, error);
    if (error) {
      ::close(fd);
      return Unavailable("cannot create " + dir + ": " + error.message());
    }
    return std::unique_ptr<PoolClaim>(new PoolClaim(dir, fd));
  }
  return Unavailable("every one of the " + std::to_string(limit) +
                     " directories of the data pool " + pool + " is held by a running worker");
}

}  // namespace das::worker
