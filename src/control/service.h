// The control node's public API (README, "API") as a request -> response function: one
// http::Router with the routes, the query parameters each takes, 404/405, tokens and the
// format parameter, over the pieces that answer them: InsertApi (POST /insert and
// /insert/batch: rows to their shards' leaders), QueryApi (POST /v1/query, GET /analytics),
// HealthApi (GET /health), the membership routes (a worker's join, a decommission), /metrics
// and the console. Replication (control/replication.h) runs the shards' raft groups' control:
// forming the cluster, the witness, the rebalancer and the leader balancer. Handle() is what
// the HTTP server calls; tests call it without a socket. Thread-safety: Handle() may run
// concurrently on any number of threads. Lifecycle: Stop() answers queued and later inserts
// kShuttingDown (503), waits (bounded) for the internal requests in flight and closes the
// connections to the workers.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "common/clock.h"
#include "common/status.h"
#include "control/auth.h"
#include "control/cluster_map.h"
#include "control/replication.h"
#include "http/message.h"

namespace das::metrics {
class Registry;
}

namespace das::control {

struct ControlOptions {
  std::vector<WorkerAddress> workers;
  std::chrono::milliseconds analytics_deadline{1500};
  std::chrono::milliseconds insert_deadline{2000};
  std::chrono::milliseconds health_deadline{1000};
  // The query API (control/query_api.h): each round's deadline per shard, and the most rows an
  // answer may have (--query-deadline-ms, --query-max-rows).
  std::chrono::milliseconds query_deadline{5000};
  uint32_t query_max_rows = 100'000;
  size_t connections_per_worker = 16;
  size_t max_inflight_per_worker = 1;
  const Clock* clock = &Clock::Real();  // not owned; outlives the service
  // The workers' clocks (control/cluster_clock.h): the bound past which an offset is reported
  // and outvoted (--max-clock-offset-ms), and how often each is probed (0: never, as in unit
  // tests that run the executor until it has no work; the binary probes every second).
  std::chrono::milliseconds max_clock_offset{500};
  std::chrono::milliseconds clock_probe_interval{0};
  // Replicated: /health says the control node's data directory is full below this many free
  // bytes (--disk-reserve-mb).
  uint64_t disk_reserve_bytes = 64 * 1024 * 1024;
  // Set: the public API requires a bearer token of it (control/auth.h); /health answers only
  // its status without one. Not owned; outlives the service.
  const TokenFile* tokens = nullptr;
  // The cluster secret (empty: none): every request to a worker is signed with it
  // (rpc/cluster_auth.h), and the witness's raft transport proves it (Create sets
  // replication.cluster_secret from it).
  std::string cluster_secret;
  // The shards and their raft groups (docs/architecture.md): replication.replication_factor
  // voters each (1: one voter, on one worker, without a witness).
  ReplicationOptions replication;
  // Set: requests, ingest and the witness's replicas are counted and served at GET /metrics.
  // Not owned; outlives the service.
  metrics::Registry* metrics = nullptr;
  // Called once, on one of the node's threads, when it first can serve (every shard had a
  // leader and nothing kept unreplicated is left to import; /health no longer "starting").
  std::function<void()> serving;
};

class ControlService {
 public:
  static Result<std::unique_ptr<ControlService>> Create(boost::asio::any_io_executor executor,
                                                        ControlOptions options);
  virtual ~ControlService() = default;
  ControlService(const ControlService&) = delete;
  ControlService& operator=(const ControlService&) = delete;

  virtual boost::asio::awaitable<http::Response> Handle(http::Request request) = 0;

  // Fails queued and later inserts with 503, waits up to `wait` for the inserts in flight, and
  // closes the connections to the workers. Returns whether nothing was left in flight.
  virtual bool Stop(std::chrono::milliseconds wait = std::chrono::seconds(5)) = 0;

 protected:
  ControlService() = default;
};

}  // namespace das::control
