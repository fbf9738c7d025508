// DirLock: an exclusive flock on <dir>/LOCK, held while a store has the directory open.
// DuckDB's own file lock is an fcntl lock, which does not stop a second open of the same file
// within one process. Move-only; closing the descriptor drops the lock.
#pragma once

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <utility>

#include "common/status.h"

namespace das::storage {

class DirLock {
 public:
  static Result<DirLock> Acquire(const std::filesystem::path& dir) {
    const std::string path = (dir / "LOCK").string();
    DirLock lock(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
    if (lock.fd_ < 0) return Unavailable("cannot open " + path + ": " + std::strerror(errno));
    if (::flock(lock.fd_, LOCK_EX | LOCK_NB) != 0) {
      return Unavailable("cannot lock " + path +
                         " (is another store using it?): " + std::strerror(errno));
    }
    return lock;
  }
  DirLock(DirLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  DirLock& operator=(DirLock&&) = delete;
  ~DirLock() { Release(); }
  void Release() {
    if (fd_ >= 0) ::close(fd_);  // closing the descriptor drops the lock
    fd_ = -1;
  }

 private:
  explicit DirLock(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace das::storage
