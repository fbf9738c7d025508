// The --workers list: each worker with its id (the i-th listed worker has id i + 1, the `--id`
// the manual start gives it), the cluster's first members; and the slot of a key,
// slot = XXH3_64(partition_key) mod kSlots (the shards are contiguous ranges of slots:
// cluster/topology_plan.h).
// Thread-safety: immutable after Create(); safe to share between threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/hash.h"
#include "common/status.h"

namespace das::control {

using das::kSlots;

using WorkerId = uint32_t;

struct WorkerAddress {
  std::string host;
  uint16_t port = 0;
  std::string ToString() const { return host + ":" + std::to_string(port); }
};

// Parses "host:port,host:port". Fails with kInvalidArgument naming the bad entry.
Result<std::vector<WorkerAddress>> ParseWorkerList(std::string_view text);

struct WorkerInfo {
  WorkerId id = 0;
  WorkerAddress address;
};

class ClusterMap {
 public:
  // REQUIRES: at least one worker; fails with kInvalidArgument otherwise or on duplicates.
  // The i-th worker gets id i + 1.
  // `allow_empty`: a replicated cluster, whose workers may all join later.
  static Result<ClusterMap> Create(std::vector<WorkerAddress> workers, bool allow_empty = false);

  static uint32_t SlotOf(std::string_view partition_key);
  // Every worker, ordered by id.
  const std::vector<WorkerInfo>& workers() const { return workers_; }
  // nullptr when no worker has `id`.
  const WorkerInfo* Find(WorkerId id) const;

 private:
  explicit ClusterMap(std::vector<WorkerAddress> workers);

  std::vector<WorkerInfo> workers_;
};

}  // namespace das::control
