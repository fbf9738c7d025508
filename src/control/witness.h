// Witness: the control node's voter in every shard of a two-worker cluster (docs/architecture.md):
// it keeps each shard's raft log (in <data-dir>/witness/<shard>) but no DuckDB data, applies
// nothing, and never serves a read. It may win an election (its log can be the newest); then it
// hands leadership on by itself, at once: a thread of its own checks its replicas every few tens of
// milliseconds and transfers each shard it leads to a data replica, by name (the next one in the
// shard's voter list after each failed try; raft_transfer catches the target up first).
// Thread-safety: every method from any thread but the raft loop's. Lifecycle: Open, Close
// (the destructor closes).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "das/v1/internal.pb.h"

namespace das::control {

struct WitnessOptions {
  std::string data_dir;        // the control node's --data-dir
  std::string listen_address;  // host:port its raft transport listens on
  std::string cluster_secret;  // its raft handshakes prove it (empty: none)
  unsigned election_timeout_ms = 500;
  unsigned heartbeat_timeout_ms = 50;
  unsigned snapshot_threshold = 1024;
  // Kept long, so that a data replica the witness has to bring up to date finds the entries,
  // as far as `log_budget_bytes` (the control node's --raft-log-mb) holds them.
  unsigned snapshot_trailing = 65536;
  uint64_t log_budget_bytes = 128ull << 20;
  // How often the witness checks whether it leads a shard (and hands it on).
  std::chrono::milliseconds handoff_interval{50};
};

class Witness {
 public:
  // Opens the witness's replica of every shard whose voters include it.
  static Result<std::unique_ptr<Witness>> Open(WitnessOptions options,
                                               const internal::v1::Topology& topology);
  virtual ~Witness() = default;
  Witness(const Witness&) = delete;
  Witness& operator=(const Witness&) = delete;

  // A newer topology (docs/operations.md, "Membership"): opens the shards that now name the witness
  // (joining, unless it founded them), closes those that no longer do and deletes their logs.
  virtual Status Adopt(const internal::v1::Topology& topology) = 0;
  // One entry per shard it votes in (stored_index = applied_index: there is no store). Never
  // waits for the raft loop: `done` runs on it (on the caller's thread with no shard).
  using HealthCallback = std::function<void(std::vector<internal::v1::ReplicaHealth>)>;
  virtual void Health(HealthCallback done) = 0;
  // Hands leadership of `shard` to node `to`; `done` on the raft loop thread.
  virtual void Transfer(uint32_t shard, uint64_t to, std::function<void(Status)> done) = 0;
  virtual void Close() = 0;

 protected:
  Witness() = default;
};

}  // namespace das::control
