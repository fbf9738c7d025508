// WriteTarget: where a ShardWriter sends its coalesced internal write requests: a shard's
// current leader (control's ShardLeader, which follows NOT_LEADER hints and retries), or one
// worker (rpc::WorkerClient: the shard's replica there, whatever its role; tests).
// Thread-safety: implementations allow concurrent calls from any thread.
#pragma once

#include <chrono>
#include <string>

#include <boost/asio/awaitable.hpp>

#include "common/status.h"
#include "das/v1/internal.pb.h"

namespace das::rpc {

class WriteTarget {
 public:
  virtual ~WriteTarget() = default;
  // For log lines and error messages: "127.0.0.1:8081", "shard 3".
  virtual const std::string& peer() const = 0;
  virtual boost::asio::awaitable<Result<internal::v1::WriteResponse>> Write(
      const internal::v1::WriteRequest& request, std::chrono::milliseconds timeout) = 0;
};

}  // namespace das::rpc
