// TopologyPusher: sends the cluster map's current epoch to the workers that do not hold it yet
// (ClusterRecord::NeedsTopology), and keeps each epoch a worker adopted.
// Thread-safety: from the replication loop's coroutines; the record and the directory are
// shared, not owned, and outlive this.
#pragma once

#include <cstdint>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "cluster/shard_view.h"
#include "control/cluster_record.h"
#include "control/worker_directory.h"

namespace das::control {

class TopologyPusher {
 public:
  TopologyPusher(boost::asio::any_io_executor executor, ClusterRecord& record,
                 const WorkerDirectory& directory)
      : executor_(std::move(executor)), record_(record), directory_(directory) {}

  // Every worker of `health` (this tick's answers) that needs the topology gets it, at once.
  boost::asio::awaitable<void> PushAll(const cluster::HealthMap& health);
  // Worker `id` gets the current topology; kNotFound when it is no member.
  boost::asio::awaitable<Result<internal::v1::TopologyResponse>> PushTo(uint64_t id);

 private:
  boost::asio::any_io_executor executor_;
  ClusterRecord& record_;
  const WorkerDirectory& directory_;
};

}  // namespace das::control
