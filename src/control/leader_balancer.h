// LeaderBalancer: once a tick, moves each shard's leadership where cluster::LeaderTarget says it
// belongs (off the witness; back to the preferred worker once it is caught up; off a leader
// whose store is behind), at most every 5 s per shard, all shards' transfers at once. It also
// tells each shard's ShardLeader the leader this tick saw.
// Thread-safety: from the replication loop's coroutines only, one call at a time.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "cluster/shard_view.h"
#include "control/shard_leader.h"
#include "control/worker_directory.h"

namespace das::control {

class LeaderBalancer {
 public:
  // `leaders` (one per shard), `directory` and `stopping` are shared and outlive this.
  LeaderBalancer(boost::asio::any_io_executor executor,
                 const std::vector<std::unique_ptr<ShardLeader>>& leaders,
                 const WorkerDirectory& directory, const std::atomic<bool>& stopping)
      : executor_(std::move(executor)),
        leaders_(leaders),
        directory_(directory),
        stopping_(stopping),
        last_transfer_(leaders.size()) {}

  // One round over `views` (this tick's, one per shard); `moving`: the shard a replica move is
  // changing, whose leadership the move hands over itself.
  boost::asio::awaitable<void> Balance(const std::vector<cluster::ShardView>& views,
                                       std::optional<uint32_t> moving);
  // `shard` has a new preferred leader: no wait before its next transfer.
  void HandBackNow(uint32_t shard) { last_transfer_.at(shard) = {}; }

 private:
  boost::asio::any_io_executor executor_;
  const std::vector<std::unique_ptr<ShardLeader>>& leaders_;
  const WorkerDirectory& directory_;
  const std::atomic<bool>& stopping_;
  std::vector<std::chrono::steady_clock::time_point> last_transfer_;
};

}  // namespace das::control
