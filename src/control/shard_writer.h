// ShardWriter: the insert path to one worker, with request coalescing.
//
// Concurrent writers bound for the same worker queue their sub-batches here. Up to
// max_inflight internal requests run at once over the worker client's kept-alive connections;
// while they run, newly queued sub-batches accumulate and leave together in the next request,
// so under load many client inserts share one internal round trip (and one group commit on the
// worker). Each caller is completed with its own sub-batch's outcome.
// A queued sub-batch waits at most `deadline` (read from the injected clock) before it is
// answered kDeadlineExceeded without being sent.
// Thread-safety: Write() may be called from any thread; the queue is guarded by a mutex that
// is never held across I/O. Lifecycle: Stop() refuses new writes, fails the queued ones with
// kShuttingDown and waits (bounded) for the requests in flight; the destructor requires that
// no drain runs any more (Stop() returned true, or the io_context stopped running).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "common/clock.h"
#include "common/mutex.h"
#include "common/status.h"
#include "das/v1/internal.pb.h"
#include "rpc/write_target.h"

namespace das::control {

class ClusterClock;

struct ShardWriterOptions {
  size_t max_inflight = 1;
  // A coalesced request stops growing past this many encoded bytes (a single sub-batch may be
  // larger: it is never split).
  size_t max_request_bytes = 4 * 1024 * 1024;
  std::chrono::milliseconds deadline{2000};
  const Clock* clock = &Clock::Real();  // not owned; outlives the writer
  // A replicated shard: every request names it and gets a fresh request id (the state machine
  // answers a retried id with its first outcome, so retries of a request are safe).
  std::optional<uint32_t> shard;
  // Not owned; outlives the writer. Every request carries its time as the rows' ingest time
  // (null: none, the worker's clock stamps them).
  const ClusterClock* cluster_clock = nullptr;
};

class ShardWriter {
 public:
  // `client` must outlive the writer.
  ShardWriter(boost::asio::any_io_executor executor, rpc::WriteTarget& client,
              ShardWriterOptions options);
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;

  // Queues `part` and completes with the worker's outcome for it, or kUnavailable /
  // kDeadlineExceeded (the part may or may not be stored: only an idempotency key makes a
  // retry safe), or kShuttingDown once Stop() was called. The part is read, never copied or
  // changed, until the outcome; the pointer may share ownership of an arena that holds it.
  boost::asio::awaitable<Result<internal::v1::SubBatchResult>> Write(
      std::shared_ptr<const internal::v1::SubBatch> part);
  boost::asio::awaitable<Result<internal::v1::SubBatchResult>> Write(internal::v1::SubBatch part);

  // Sub-batches queued and not yet sent.
  size_t queue_depth() const;

  // Refuses later writes, answers the queued ones kShuttingDown, and waits until no request is
  // in flight, at most `wait`. Returns whether none is. Safe to call more than once.
  bool Stop(std::chrono::milliseconds wait);

 private:
  using Handler = boost::asio::any_completion_handler<void(Result<internal::v1::SubBatchResult>)>;
  struct Pending {
    std::shared_ptr<const internal::v1::SubBatch> part;
    size_t bytes = 0;  // part's encoded size
    Handler handler;
    boost::asio::any_io_executor resume_on;  // the waiting coroutine's executor
    Clock::Monotonic deadline;               // queued at most until then
  };

  void Enqueue(Pending pending);
  static void Complete(Pending& pending, Result<internal::v1::SubBatchResult> result);
  std::vector<Pending> TakeQueuedLocked() REQUIRES(mu_);
  boost::asio::awaitable<void> Drain(std::vector<Pending> first);
  // Sends the group's live sub-batches and completes every handler of `group`, whatever happens.
  boost::asio::awaitable<void> SendOne(std::vector<Pending> group);
  boost::asio::awaitable<void> Exchange(std::vector<Pending>& group);
  Status Stopping() const;

  boost::asio::any_io_executor executor_;
  rpc::WriteTarget& client_;
  const ShardWriterOptions options_;

  mutable Mutex mu_;
  std::condition_variable idle_;  // signalled when inflight_ drops to 0
  std::vector<Pending> queued_ GUARDED_BY(mu_);
  size_t inflight_ GUARDED_BY(mu_) = 0;  // drains running
  bool stopped_ GUARDED_BY(mu_) = false;
};

}  // namespace das::control
