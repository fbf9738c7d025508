// WorkerNode: a worker's parts wired together: its one store (storage::NodeStore, with an
// older build's unreplicated store in it only until imported), the replica host with the copy
// fetcher, the internal API (WorkerService) and its HTTP server. The binary's main() reads flags,
// joins the cluster and runs one; a test runs one in process. Thread-safety: one thread drives a
// node: Open, then Start or RunUntilSignal, then Stop (or the destructor). Lifecycle: Open()
// listens and opens the replicas a data directory keeps behind the server (a replica that cannot be
// opened ends the process, as at any start); the destructor stops.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"
#include "storage/node_store.h"

namespace das::worker {

struct WorkerNodeOptions {
  uint32_t id = 0;
  std::string host = "127.0.0.1";
  uint16_t port = 0;                 // 0: a free port (WorkerNode::port says which)
  uint16_t raft_port = 0;            // the raft transport's (0: a free one)
  uint16_t raft_advertise_port = 0;  // what the control node is told (0: raft_port)
  std::string cluster_secret;        // empty: none
  bool metrics = true;               // GET /metrics
  unsigned threads = 1;              // serving HTTP
  size_t body_limit = 64 * 1024 * 1024;
  uint64_t copy_bytes_per_s = 64 * 1024 * 1024;
  // The worker's database (its data_dir is the worker's); 0 disk_reserve_bytes: the default
  // share of the disk.
  storage::NodeStoreOptions store;
  std::chrono::seconds idempotency_retention{24 * 3600};
  unsigned election_timeout_ms = 500;
  unsigned snapshot_threshold = 1024;
  unsigned snapshot_trailing = 8192;
  uint64_t raft_log_bytes = 256ull << 20;
};

class WorkerNode {
 public:
  // Opens the store and the replica host and listens (nothing served until Start or
  // RunUntilSignal). kUnavailable when the store or the port cannot be opened.
  static Result<std::unique_ptr<WorkerNode>> Open(WorkerNodeOptions options);
  ~WorkerNode();
  WorkerNode(const WorkerNode&) = delete;
  WorkerNode& operator=(const WorkerNode&) = delete;

  uint16_t port() const;
  // Serves on options.threads threads until SIGINT or SIGTERM, then stops (SIGHUP is ignored).
  void RunUntilSignal();
  // Serves on options.threads threads of their own; Stop() ends it.
  void Start();
  // Stops serving (open connections are given 5 s), then closes the replicas and the store.
  // Safe to call more than once.
  void Stop();

  struct Parts;  // defined in node.cc

 private:
  explicit WorkerNode(std::unique_ptr<Parts> parts);
  std::unique_ptr<Parts> parts_;
};

}  // namespace das::worker
