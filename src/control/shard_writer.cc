#include "control/shard_writer.h"

#include <atomic>
#include <chrono>
#include <random>

#include <spdlog/spdlog.h>
#include <boost/asio/append.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "control/cluster_clock.h"
#include "rpc/borrowed.h"

namespace das::control {

namespace asio = boost::asio;
using internal::v1::SubBatch;
using internal::v1::SubBatchResult;

namespace {

// Request ids: a random 64-bit start per process, then counted up, so ids of two control-node
// runs (a restart) practically never meet inside a shard's request window.
uint64_t NewRequestId() {
  static std::atomic<uint64_t> next{[] {
    std::random_device device;
    return (static_cast<uint64_t>(device()) << 32) ^ device() ^
           static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
  }()};
  uint64_t id = next.fetch_add(1, std::memory_order_relaxed);
  return id != 0 ? id : next.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace

void ShardWriter::Complete(Pending& pending, Result<SubBatchResult> result) {
  // Resume the waiting coroutine on its own executor, never inline in the drain loop.
  asio::post(pending.resume_on, asio::append(std::move(pending.handler), std::move(result)));
}

ShardWriter::ShardWriter(asio::any_io_executor executor, rpc::WriteTarget& client,
                         ShardWriterOptions options)
    : executor_(std::move(executor)), client_(client), options_(options) {}

asio::awaitable<Result<SubBatchResult>> ShardWriter::Write(std::shared_ptr<const SubBatch> part) {
  const size_t bytes = part->ByteSizeLong();  // here, not under the queue's lock
  return asio::async_initiate<const asio::use_awaitable_t<>&, void(Result<SubBatchResult>)>(
      [this, bytes](auto handler, std::shared_ptr<const SubBatch> part) {
        asio::any_io_executor resume_on = asio::get_associated_executor(handler, executor_);
        Enqueue(Pending{std::move(part), bytes, std::move(handler), std::move(resume_on),
                        options_.clock->Now() + options_.deadline});
      },
      asio::use_awaitable, std::move(part));
}

asio::awaitable<Result<SubBatchResult>> ShardWriter::Write(SubBatch part) {
  return Write(std::make_shared<const SubBatch>(std::move(part)));
}

size_t ShardWriter::queue_depth() const {
  MutexLock lock(mu_);
  return queued_.size();
}

Status ShardWriter::Stopping() const {
  return ShuttingDown("the control node is stopping; worker " + client_.peer() +
                      " takes no more inserts from it");
}

void ShardWriter::Enqueue(Pending pending) {
  std::vector<Pending> group;
  {
    MutexLock lock(mu_);
    if (stopped_) {
      Complete(pending, Stopping());
      return;
    }
    queued_.push_back(std::move(pending));
    if (inflight_ >= options_.max_inflight) return;  // a running Drain will pick it up
    ++inflight_;
    group = TakeQueuedLocked();
  }
  asio::co_spawn(executor_, Drain(std::move(group)), asio::detached);
}

std::vector<ShardWriter::Pending> ShardWriter::TakeQueuedLocked() {
  std::vector<Pending> group;
  size_t bytes = 0;
  size_t n = 0;
  while (n < queued_.size() && (n == 0 || bytes < options_.max_request_bytes)) {
    bytes += queued_[n].bytes;
    ++n;
  }
  if (n == queued_.size()) {
    group.swap(queued_);
  } else {
    group.assign(std::make_move_iterator(queued_.begin()),
                 std::make_move_iterator(queued_.begin() + n));
    queued_.erase(queued_.begin(), queued_.begin() + n);
  }
  return group;
}

asio::awaitable<void> ShardWriter::Drain(std::vector<Pending> group) {
  for (;;) {
    asio::awaitable<void> send = SendOne(std::move(group));
    co_await std::move(send);
    MutexLock lock(mu_);
    if (queued_.empty() || stopped_) {
      if (--inflight_ == 0) idle_.notify_all();
      co_return;
    }
    group = TakeQueuedLocked();
  }
}

asio::awaitable<void> ShardWriter::SendOne(std::vector<Pending> group) {
  // A sub-batch that already waited its whole deadline in the queue is not sent: its caller
  // gets its answer now, so an insert waits at most about two deadlines in all.
  const Clock::Monotonic now = options_.clock->Now();
  std::vector<Pending> live;
  live.reserve(group.size());
  for (Pending& p : group) {
    if (now < p.deadline) {
      live.push_back(std::move(p));
    } else {
      Complete(p, DeadlineExceeded("worker " + client_.peer() + " took no insert within " +
                                   std::to_string(options_.deadline.count()) + " ms"));
    }
  }
  if (live.empty()) co_return;
  try {
    asio::awaitable<void> exchange = Exchange(live);
    co_await std::move(exchange);
  } catch (const std::exception& e) {
    // Exceptions are bugs here, but no caller may wait forever because of one.
    spdlog::error("insert to worker {} failed: {}", client_.peer(), e.what());
    for (Pending& p : live) {
      if (p.handler) Complete(p, Internal(std::string("insert failed: ") + e.what()));
    }
  }
}

asio::awaitable<void> ShardWriter::Exchange(std::vector<Pending>& group) {
  // The callers' sub-batches are borrowed, not copied: each stays its caller's (an arena's
  // rows, for a client batch) and is handed back before `request` goes.
  internal::v1::WriteRequest request;
  rpc::Borrowed<SubBatch> borrowed(*request.mutable_batches());
  request.mutable_batches()->Reserve(static_cast<int>(group.size()));
  for (const Pending& p : group) borrowed.Add(*p.part);
  if (options_.shard) {
    request.set_shard(*options_.shard);
    request.set_request_id(NewRequestId());
  }
  if (options_.cluster_clock != nullptr)
    request.set_ingest_time_us(options_.cluster_clock->NowUs());

  asio::awaitable<Result<internal::v1::WriteResponse>> send =
      client_.Write(request, options_.deadline);
  Result<internal::v1::WriteResponse> answer = co_await std::move(send);
  Status failure;
  if (!answer.ok()) {
    failure = answer.status();
  } else if (answer->results_size() != static_cast<int>(group.size())) {
    failure = Internal("worker " + client_.peer() + " answered " +
                       std::to_string(answer->results_size()) + " results for " +
                       std::to_string(group.size()) + " sub-batches");
  }
  if (!failure.ok()) {
    // Logged once, here, where it is handled; callers turn it into their answer.
    spdlog::warn("insert of {} sub-batches to worker {} failed: {}", group.size(), client_.peer(),
                 failure.ToString());
    for (Pending& p : group) Complete(p, failure);
    co_return;
  }
  for (size_t i = 0; i < group.size(); ++i) {
    Complete(group[i], std::move(*answer->mutable_results(static_cast<int>(i))));
  }
}

bool ShardWriter::Stop(std::chrono::milliseconds wait) {
  std::vector<Pending> refused;
  UniqueLock lock(mu_);
  stopped_ = true;
  refused.swap(queued_);
  for (Pending& p : refused) Complete(p, Stopping());
  return idle_.wait_for(lock.native(), wait, [this]() REQUIRES(mu_) { return inflight_ == 0; });
}

}  // namespace das::control
