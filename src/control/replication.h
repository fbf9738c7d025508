// Replication: the control node's side of replicated shards (DESIGN.md section 6).
//
// It plans the topology from the worker list and the flags (control/topology_plan.h), learns
// each worker's raft port from its health, keeps the topology in <data-dir>/cluster.pb (a
// later start with other --shards, --replication-factor or workers is refused), opens the
// witness when the cluster needs one, and sends the topology to every worker until each
// adopted it. Then, every second, its balancer moves leadership: away from the witness at
// once, and back to a shard's preferred worker when that worker is live and caught up, so
// leaders spread evenly.
//
// It gives the service a ShardLeader per shard (the write and read path), the slot -> shard
// map, the reads of every shard for /analytics, and the shards' part of /health.
// Thread-safety: every method may be called from any thread. Lifecycle: Create, Start, Stop
// (waits for the background loop).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "common/status.h"
#include "control/aggregate.h"
#include "control/cluster_map.h"
#include "control/shard_leader.h"
#include "das/v1/das.pb.h"
#include "das/v1/internal.pb.h"
#include "rpc/worker_client.h"

namespace das::control {

struct ReplicationOptions {
  // 1: unreplicated (no shards; the service does not use this object). The flag's default is 3.
  uint32_t replication_factor = 1;
  uint32_t shards = 16;
  std::string data_dir = "./data/control";
  std::string raft_host = "127.0.0.1";  // the witness's raft transport listens here
  uint16_t raft_port = 9080;
  std::string advertise_host;  // how peers reach it (default: raft_host)
  unsigned election_timeout_ms = 500;
  std::chrono::milliseconds health_deadline{1000};
  // The witness's raft transport proves it (empty: none); ControlService sets it from
  // ControlOptions::cluster_secret.
  std::string cluster_secret;
};

// Every shard's read for /analytics.
struct ShardedAggregate {
  std::vector<PartialAggregate> partials;  // one per shard that answered
  uint32_t shards_missing = 0;
  uint32_t responding_workers = 0;  // answered a read, or were not needed
};

class Replication {
 public:
  // kInvalidArgument for a factor the workers cannot honour, or a data dir that keeps another
  // cluster's topology. `clients` (by worker id, not owned) outlive the object.
  static Result<std::unique_ptr<Replication>> Create(
      boost::asio::any_io_executor executor, ReplicationOptions options,
      const std::vector<WorkerInfo>& workers, std::map<uint64_t, rpc::WorkerClient*> clients);
  virtual ~Replication() = default;
  Replication(const Replication&) = delete;
  Replication& operator=(const Replication&) = delete;

  virtual void Start() = 0;
  virtual void Stop() = 0;

  // Whether every shard has been led by a data replica at least once since the start (the
  // cluster can take writes and serve reads); stays true afterwards.
  virtual bool ready() const = 0;
  virtual uint32_t shards() const = 0;
  virtual uint32_t ShardOf(std::string_view partition_key) const = 0;
  virtual ShardLeader& LeaderOf(uint32_t shard) = 0;

  virtual boost::asio::awaitable<ShardedAggregate> ReadAll(std::chrono::milliseconds timeout) = 0;
  // The slots of `shard`: [first, end).
  virtual std::pair<uint32_t, uint32_t> SlotsOf(uint32_t shard) const = 0;
  // responding_nodes of a read that `answered` (worker ids) answered and whose tries of
  // `failed` did not: those, and the workers not needed whose latest health check answered.
  virtual uint32_t RespondingWorkers(const std::set<uint64_t>& answered,
                                     const std::set<uint64_t>& failed) = 0;
  // Adds the shards to `response` from the workers' health (by worker id; an error: not
  // reachable) and the witness's; returns whether every shard is healthy.
  virtual bool DescribeShards(
      const std::map<uint64_t, Result<internal::v1::WorkerHealthResponse>>& workers,
      das::v1::HealthResponse& response) = 0;
  // The witness's replicas (none when there is no witness).
  virtual std::vector<internal::v1::ReplicaHealth> WitnessHealth() = 0;

 protected:
  Replication() = default;
};

}  // namespace das::control
