// ShardWriteQueue: the replicated shard writes bound for one worker, merged.
//
// A write queued while `max_inflight` exchanges run leaves with every other write queued by
// then, in one ShardWritesRequest (POST /internal/v1/shard/writes): under load one round trip
// carries a write of every shard the worker leads. Each caller is completed with its own
// write's outcome (the shard's answer, NOT_LEADER with its hint, ...); a failed exchange fails
// each of its writes.
// An exchange waits for its slowest shard, so one that runs longer than `release_after` gives
// up its slot: the writes queued behind it leave in an exchange of their own. A shard that
// cannot commit (no quorum, a stalled follower) then costs the other shards at most that.
// A write whose deadline passed while it was queued is answered DEADLINE_EXCEEDED unsent.
// Thread-safety: Write() may be called from any thread; completions resume on the caller's
// executor. The queue lives as long as a write or an exchange needs it.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "common/clock.h"
#include "common/status.h"
#include "das/v1/internal.pb.h"

namespace das::rpc {

// One exchange with the worker: the merged request (an encoded ShardWritesRequest), answered
// within `timeout`.
using ShardExchange =
    std::function<boost::asio::awaitable<Result<internal::v1::ShardWritesResponse>>(
        std::string body, std::chrono::milliseconds timeout)>;

struct ShardWriteQueueOptions {
  std::string peer;  // "host:port", for messages
  size_t max_inflight = 1;
  std::chrono::milliseconds release_after{50};
  const Clock* clock = &Clock::Real();  // the writes' deadlines; not owned, outlives the queue
};

class ShardWriteQueue {
 public:
  virtual ~ShardWriteQueue() = default;

  // `request` names its shard and request id; it is encoded before the first suspension.
  virtual boost::asio::awaitable<Result<internal::v1::WriteResponse>> Write(
      const internal::v1::WriteRequest& request, std::chrono::milliseconds timeout) = 0;

  // Writes waiting for an exchange.
  virtual size_t queued() const = 0;
};

std::shared_ptr<ShardWriteQueue> MakeShardWriteQueue(boost::asio::any_io_executor executor,
                                                     ShardExchange exchange,
                                                     ShardWriteQueueOptions options);

}  // namespace das::rpc
