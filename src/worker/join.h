// Joining a running cluster (docs/operations.md, "Membership"): a worker started with --join
// registers with the control node before it opens anything, and learns its node id (a new one the
// first time, the id its data directory keeps afterwards). Thread-safety: a blocking function for
// the worker's main thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"
#include "rpc/cluster_auth.h"

namespace das::worker {

struct JoinOptions {
  std::string control;       // host:port of the control node's API
  uint64_t node_id = 0;      // the id kept or asked for (0: a new worker)
  std::string http_address;  // host:port others reach this worker's internal API at
  uint16_t raft_port = 0;    // its raft port, as peers dial it
  std::shared_ptr<const rpc::ClusterKey> cluster_key;  // signs the join (null: none)
  std::chrono::milliseconds retry_every{1000};
  int attempts = 0;  // 0: until it succeeds or is refused
};

// The node id the control node gives. It is asked again until it answers (a control node that
// starts later is waited for); kInvalidArgument when it refuses the join (an address it cannot
// use), kNotFound when the id asked for left the cluster, naming why.
Result<uint64_t> JoinCluster(const JoinOptions& options);

}  // namespace das::worker
