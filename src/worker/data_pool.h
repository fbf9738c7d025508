// A pool of data directories shared by the workers of one scaled service (docker-compose
// `--scale worker=N`, whose containers have no name or volume of their own): each worker claims
// the first `<pool>/worker-<n>` (n = 1, 2, ...) that no running worker holds, and so a container
// is whichever worker's data it claimed (its node id is kept there). The claim is an exclusive
// lock on `<pool>/worker-<n>.lock` held for the life of the process: released when it exits or
// is killed, never by a timeout.
// Thread-safety: a claim is one object of the worker's main thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"

namespace das::worker {

class PoolClaim {
 public:
  ~PoolClaim();
  PoolClaim(const PoolClaim&) = delete;
  PoolClaim& operator=(const PoolClaim&) = delete;

  // The data directory claimed (created when it was new).
  const std::string& data_dir() const { return data_dir_; }

  // Moves the claimed directory's contents aside, to `<data_dir>.left-<old_id>` (nothing is
  // deleted: an operator removes it), and leaves the claimed directory empty for a new worker.
  // For a worker the cluster says has left (its replicas were recreated elsewhere).
  Status SetAside(uint64_t old_id);

 private:
  friend Result<std::unique_ptr<PoolClaim>> ClaimFromPool(const std::string& pool, int limit);
  PoolClaim(std::string data_dir, int fd) : data_dir_(std::move(data_dir)), fd_(fd) {}
  const std::string data_dir_;
  const int fd_;  // the locked file; closing it releases the claim
};

// The first free directory of `pool` (created if missing), among worker-1 .. worker-<limit>;
// kUnavailable when all `limit` are held or the pool cannot be written.
Result<std::unique_ptr<PoolClaim>> ClaimFromPool(const std::string& pool, int limit = 1000);

}  // namespace das::worker
