// HealthApi: GET /health (README, "API"; docs/operations.md) as a request -> response
// function. It asks every member worker for its health (at once, under one deadline), reads
// the witness's replicas, and answers with each worker (reachable, rows, disk, clock offset),
// each shard (Replication::DescribeShards: leader, replicas, caught up), the control node's
// own disk, and a status: "ok", "degraded" (something is down, behind, full or past the clock
// bound), or "starting" (503) until every shard first had a leader and nothing kept
// unreplicated is left to import. What the check saw is told to the replication (Observe).
// Thread-safety: Health may run concurrently. What it is given (not owned) outlives it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "control/cluster_clock.h"
#include "control/replication.h"
#include "http/message.h"

namespace das::control {

struct HealthApiOptions {
  std::chrono::milliseconds deadline{1000};  // for each worker's answer
  std::string data_dir;                      // the control node's own (the witness's logs)
  uint64_t disk_reserve_bytes = 64 * 1024 * 1024;
  // Why the node cannot serve yet besides a shard without a leader (the legacy import);
  // empty: nothing.
  std::function<std::optional<std::string>()> held;
};

class HealthApi {
 public:
  HealthApi(boost::asio::any_io_executor executor, HealthApiOptions options,
            Replication& replication, const ClusterClock& clock);

  // `status_only`: the body says the status and nothing else (a caller without a valid token
  // when tokens are required).
  boost::asio::awaitable<http::Response> Health(http::Request request, bool status_only);

 private:
  struct MemberHealths;
  boost::asio::awaitable<MemberHealths> AskMembers();
  boost::asio::awaitable<Result<internal::v1::WorkerHealthResponse>> MemberHealth(
      std::shared_ptr<rpc::WorkerClient> client, uint64_t id);
  bool DescribeWorkers(const MemberHealths& members, das::v1::HealthResponse& response);
  bool DescribeClock(uint64_t worker, das::v1::WorkerStatus& status) const;
  bool DescribeOwnDisk(das::v1::HealthResponse& response);

  boost::asio::any_io_executor executor_;
  const HealthApiOptions options_;
  Replication& replication_;
  const ClusterClock& clock_;
  std::atomic<bool> own_disk_full_{false};  // as /health last saw it (DescribeOwnDisk)
};

}  // namespace das::control
