// Replication: the control node's side of replicated shards (docs/architecture.md;
// docs/operations.md, "Membership"), what the service sees of it.
//
// It plans the topology from the worker list (or, with an empty --workers, from the first
// workers that join) and the flags (cluster/topology_plan.h), learns each worker's raft port
// from its health (or its join), keeps the topology in <data-dir>/cluster.pb (a later start
// with other --shards or --replication-factor is refused), opens the witness when the cluster
// needs one, and sends each new epoch of the topology to every worker until each adopted it.
//
// Membership: workers join (Join) and are decommissioned (Decommission); the rebalancer plans
// one replica move at a time (meta/plan.h) and carries it out in stages, each kept in
// cluster.pb so that a restarted control node finishes it: the new replica announced as
// joining, added as a spare, made a standby (libraft brings it up to date: the log, or a
// snapshot whose restore copies the shard's data from a data replica out of band), waited for
// until its store caught up, made a voter; leadership moved off the old replica, which is then
// removed. Where a shard group's configuration differs from the map (a change committed just
// before a crash), the group's configuration wins.
//
// Every second its balancer moves leadership: away from the witness at once, and to a shard's
// preferred worker (its first data voter) when that worker is live and caught up.
//
// It gives the service a ShardLeader per shard (the write and read path), the slot -> shard
// map, the workers a read reached, and the shards' part of /health.
//
// Built from pieces, each a file of its own (src/control/README.md): ClusterRecord (the
// saved state and every change to it, no socket), LoadClusterState, WitnessKeeper,
// TopologyPusher, MoveExecutor and LeaderBalancer; replication.cc wires them and runs the
// loop that drives them.
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
#include "control/cluster_map.h"
#include "control/shard_leader.h"
#include "control/worker_directory.h"
#include "das/v1/das.pb.h"
#include "das/v1/internal.pb.h"
#include "rpc/worker_client.h"

namespace das::control {

struct ReplicationOptions {
  // Votes per shard (1: one voter, no witness, no membership). The flag's default is 3.
  uint32_t replication_factor = 1;
  uint32_t shards = 16;
  std::string data_dir = "./data/control";
  std::string raft_host = "127.0.0.1";  // the witness's raft transport listens here
  uint16_t raft_port = 9080;
  std::string advertise_host;  // how peers reach it (default: raft_host)
  unsigned election_timeout_ms = 500;
  uint64_t log_budget_bytes = 128ull << 20;  // the witness's --raft-log-mb
  std::chrono::milliseconds health_deadline{1000};
  // The witness's raft transport proves it (empty: none); ControlService sets it from
  // ControlOptions::cluster_secret.
  std::string cluster_secret;
  // A worker that has not answered for this long is dead: its replicas are recreated elsewhere
  // when there is room (--dead-worker-after-s).
  std::chrono::seconds dead_worker_after{300};
};

class Replication {
 public:
  // kInvalidArgument for a factor the workers cannot honour, or a data dir that keeps another
  // cluster's topology. `workers` (the static --workers list) may be empty: the cluster forms
  // once enough workers joined. `clients` makes the client of each member.
  static Result<std::unique_ptr<Replication>> Create(boost::asio::any_io_executor executor,
                                                     ReplicationOptions options,
                                                     const std::vector<WorkerInfo>& workers,
                                                     WorkerDirectory::Factory clients);
  virtual ~Replication() = default;
  Replication(const Replication&) = delete;
  Replication& operator=(const Replication&) = delete;

  virtual void Start() = 0;
  virtual void Stop() = 0;

  // Whether every shard has been led by a data replica at least once since the start (the
  // cluster can take writes and serve reads); stays true afterwards.
  virtual bool ready() const = 0;
  // The workers that are members now (a decommissioned worker leaves once drained).
  virtual const WorkerDirectory& workers() const = 0;
  virtual uint32_t total_nodes() const = 0;
  // POST /internal/v1/join (docs/operations.md, "Membership"): kInvalidArgument for a bad address,
  // kNotFound for an id that left the cluster (decommissioned, or replaced after it lost its data).
  virtual Result<internal::v1::JoinResponse> Join(const internal::v1::JoinRequest& request) = 0;
  // POST /admin/workers/<id>/decommission: everything moves off the worker, then it leaves.
  // kNotFound for no such member; kInvalidArgument when the others could not hold its
  // replicas.
  virtual Status Decommission(uint64_t worker_id) = 0;
  // "active", "draining" or "dead", for /health.
  virtual std::string WorkerState(uint64_t worker_id) = 0;
  virtual uint32_t shards() const = 0;
  virtual uint32_t ShardOf(std::string_view partition_key) const = 0;
  virtual ShardLeader& LeaderOf(uint32_t shard) = 0;

  // The slots of `shard`: [first, end).
  virtual std::pair<uint32_t, uint32_t> SlotsOf(uint32_t shard) const = 0;
  // responding_nodes of a read that `answered` (worker ids) answered and whose tries of
  // `failed` did not: those, and the workers not needed whose latest health check answered.
  virtual uint32_t RespondingWorkers(const std::set<uint64_t>& answered,
                                     const std::set<uint64_t>& failed) = 0;
  // What a gather of health outside the tick saw (the workers' answers by worker id, an error:
  // not reachable; the witness's replicas): the workers that answered are alive (for
  // responding_nodes), and every shard with a leader makes the node ready, as at a tick, so
  // that neither lags behind what /health just said. Nothing else changes.
  virtual void Observe(
      const std::map<uint64_t, Result<internal::v1::WorkerHealthResponse>>& workers,
      const std::vector<internal::v1::ReplicaHealth>& witness) = 0;
  // Adds the shards (cluster::DescribeShard) and the rebalancer's progress to `response` from
  // the same answers; returns whether every shard is healthy. Reads only.
  virtual bool DescribeShards(
      const std::map<uint64_t, Result<internal::v1::WorkerHealthResponse>>& workers,
      const std::vector<internal::v1::ReplicaHealth>& witness,
      das::v1::HealthResponse& response) const = 0;
  // The witness's replicas (none when there is no witness), read without blocking the thread.
  virtual boost::asio::awaitable<std::vector<internal::v1::ReplicaHealth>> WitnessHealth() = 0;

 protected:
  Replication() = default;
};

}  // namespace das::control
