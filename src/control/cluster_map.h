// The cluster map: which worker owns which slot of the key space.
//
// slot = XXH3_64(partition_key) mod kSlots; each slot belongs to one worker. With a static
// worker list, slot i belongs to worker i mod N. The map is its own object because it becomes
// replicated, rebalanced metadata later; callers only ask "which worker owns this key".
// Thread-safety: immutable after Create(); safe to share between threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace das::control {

inline constexpr uint32_t kSlots = 4096;

struct WorkerAddress {
  std::string host;
  uint16_t port = 0;
  std::string ToString() const { return host + ":" + std::to_string(port); }
};

// Parses "host:port,host:port". Fails with kInvalidArgument naming the bad entry.
Result<std::vector<WorkerAddress>> ParseWorkerList(std::string_view text);

class ClusterMap {
 public:
  // REQUIRES: at least one worker; fails with kInvalidArgument otherwise or on duplicates.
  static Result<ClusterMap> Create(std::vector<WorkerAddress> workers);

  static uint32_t SlotOf(std::string_view partition_key);
  // The index (into workers()) of the worker that owns `partition_key`.
  size_t WorkerFor(std::string_view partition_key) const {
    return slot_owner_[SlotOf(partition_key)];
  }
  const std::vector<WorkerAddress>& workers() const { return workers_; }

 private:
  explicit ClusterMap(std::vector<WorkerAddress> workers);

  std::vector<WorkerAddress> workers_;
  std::vector<uint32_t> slot_owner_;  // kSlots entries
};

}  // namespace das::control
