// ShardWriter: the insert path to one worker, with request coalescing.
//
// Concurrent writers bound for the same worker queue their sub-batches here. Up to
// max_inflight internal requests run at once over the client's kept-alive connections; while
// they run, newly queued sub-batches accumulate and leave together in the next request, so
// under load many client inserts share one internal round trip (and one group commit on the
// worker). Each caller is completed with its own sub-batch's outcome.
// Thread-safety: Write() may be called from any thread; the queue is guarded by a mutex that
// is never held across I/O. Lifetime: must outlive the coroutines it starts (it is owned by
// the control service, destroyed after the io_context stopped running).
#pragma once

#include <chrono>
#include <cstddef>
#include <mutex>
#include <vector>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "common/status.h"
#include "das/v1/internal.pb.h"
#include "http/client.h"

namespace das::control {

struct ShardWriterOptions {
  size_t max_inflight = 1;
  // A coalesced request stops growing past this many encoded bytes (a single sub-batch may be
  // larger: it is never split).
  size_t max_request_bytes = 4 * 1024 * 1024;
  std::chrono::milliseconds deadline{2000};
};

class ShardWriter {
 public:
  // `client` must outlive the writer.
  ShardWriter(boost::asio::any_io_executor executor, http::Client& client,
              ShardWriterOptions options);
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;

  // Queues `part` and completes with the worker's outcome for it, or kUnavailable /
  // kDeadlineExceeded (the part may or may not be stored: only an idempotency key makes a
  // retry safe).
  boost::asio::awaitable<Result<internal::v1::SubBatchResult>> Write(internal::v1::SubBatch part);

 private:
  using Handler = boost::asio::any_completion_handler<void(Result<internal::v1::SubBatchResult>)>;
  struct Pending {
    internal::v1::SubBatch part;
    Handler handler;
    boost::asio::any_io_executor resume_on;          // the waiting coroutine's executor
    std::chrono::steady_clock::time_point deadline;  // queued at most until then
  };

  void Enqueue(Pending pending);
  static void Complete(Pending& pending, Result<internal::v1::SubBatchResult> result);
  std::vector<Pending> TakeQueuedLocked();
  boost::asio::awaitable<void> Drain(std::vector<Pending> first);
  // Sends the group's live sub-batches and completes every handler of `group`, whatever happens.
  boost::asio::awaitable<void> SendOne(std::vector<Pending> group);
  boost::asio::awaitable<void> Exchange(std::vector<Pending>& group);

  boost::asio::any_io_executor executor_;
  http::Client& client_;
  const ShardWriterOptions options_;

  std::mutex mu_;
  std::vector<Pending> queued_;  // GUARDED_BY(mu_)
  size_t inflight_ = 0;          // GUARDED_BY(mu_)
};

}  // namespace das::control
