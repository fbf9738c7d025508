#include "rpc/shard_write_queue.h"

#include <algorithm>
#include <mutex>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>
#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/append.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "common/mutex.h"
#include "rpc/status_wire.h"

namespace das::rpc {
namespace {

namespace asio = boost::asio;
using Ms = std::chrono::milliseconds;
using internal::v1::WriteResponse;

class Queue final : public ShardWriteQueue, public std::enable_shared_from_this<Queue> {
 public:
  Queue(asio::any_io_executor executor, ShardExchange exchange, ShardWriteQueueOptions options)
      : executor_(std::move(executor)),
        exchange_(std::move(exchange)),
        options_(std::move(options)) {
    options_.max_inflight = std::max<size_t>(1, options_.max_inflight);
  }

  asio::awaitable<Result<WriteResponse>> Write(const internal::v1::WriteRequest& request,
                                               Ms timeout) override {
    return asio::async_initiate<const asio::use_awaitable_t<>&, void(Result<WriteResponse>)>(
        [self = shared_from_this(), &request, timeout](auto handler) {
          asio::any_io_executor resume_on = asio::get_associated_executor(handler, self->executor_);
          self->Enqueue(Pending{request.SerializeAsString(), request.shard(), std::move(handler),
                                std::move(resume_on), self->options_.clock->Now() + timeout});
        },
        asio::use_awaitable);
  }

  size_t queued() const override {
    MutexLock lock(mu_);
    return queued_.size();
  }

 private:
  using Handler = asio::any_completion_handler<void(Result<WriteResponse>)>;
  struct Pending {
    std::string encoded;  // the WriteRequest, encoded once (a retry encodes it again)
    uint32_t shard;
    Handler handler;
    asio::any_io_executor resume_on;  // the waiting coroutine's executor
    Clock::Monotonic deadline;
  };
  // One exchange's claim on a slot of max_inflight; both fields GUARDED_BY(mu_).
  struct Slot {
    bool counted = true;  // false once released (the exchange outran release_after)
    bool done = false;
  };

  static void Complete(Pending& pending, Result<WriteResponse> result) {
    asio::post(pending.resume_on, asio::append(std::move(pending.handler), std::move(result)));
  }

  void Enqueue(Pending pending) {
    std::vector<Pending> group;
    {
      MutexLock lock(mu_);
      queued_.push_back(std::move(pending));
      if (counted_ >= options_.max_inflight) return;  // a running drain takes it
      ++counted_;
      group.swap(queued_);
    }
    asio::co_spawn(executor_, Drain(shared_from_this(), std::move(group)), asio::detached);
  }

  // The exchange holding `slot` ran for release_after: its slot goes to the writes queued
  // behind it.
  void Release(Slot& slot) {
    std::vector<Pending> group;
    {
      MutexLock lock(mu_);
      if (slot.done || !slot.counted) return;
      slot.counted = false;
      --counted_;
      if (queued_.empty()) return;
      ++counted_;
      group.swap(queued_);
    }
    asio::co_spawn(executor_, Drain(shared_from_this(), std::move(group)), asio::detached);
  }

  static asio::awaitable<void> Drain(std::shared_ptr<Queue> self, std::vector<Pending> group) {
    for (;;) {
      auto slot = std::make_shared<Slot>();
      asio::steady_timer release(self->executor_, self->options_.release_after);
      release.async_wait([self, slot](boost::system::error_code ec) {
        if (!ec) self->Release(*slot);
      });
      try {
        asio::awaitable<void> sent = self->Exchange(group);
        co_await std::move(sent);
      } catch (const std::exception& e) {
        // A bug, but no caller may wait forever because of one.
        spdlog::error("shard writes to {} failed: {}", self->options_.peer, e.what());
        for (Pending& p : group) {
          if (p.handler) Complete(p, Internal(std::string("shard writes failed: ") + e.what()));
        }
      }
      release.cancel();
      group.clear();
      MutexLock lock(self->mu_);
      slot->done = true;
      if (!slot->counted) {  // released: this drain goes on only if a slot is free
        if (self->queued_.empty() || self->counted_ >= self->options_.max_inflight) co_return;
        ++self->counted_;
      } else if (self->queued_.empty()) {
        --self->counted_;
        co_return;
      }
      group.swap(self->queued_);
    }
  }

  // Sends the group's writes still within their deadlines and completes every handler.
  asio::awaitable<void> Exchange(std::vector<Pending>& group) {
    const Clock::Monotonic now = options_.clock->Now();
    std::vector<Pending*> live;
    Clock::Monotonic first_deadline = Clock::Monotonic::max();
    for (Pending& p : group) {
      if (p.deadline <= now) {
        Complete(p, DeadlineExceeded(options_.peer + " took no write of shard " +
                                     std::to_string(p.shard) + " in time"));
        continue;
      }
      first_deadline = std::min(first_deadline, p.deadline);
      live.push_back(&p);
    }
    if (live.empty()) co_return;
    // The worker answers a little before this exchange gives up, so that a slow shard costs
    // only its own write (DEADLINE_EXCEEDED), not its companions'.
    const Ms timeout = std::max(Ms(1), std::chrono::ceil<Ms>(first_deadline - now));
    const auto worker_timeout =
        static_cast<uint32_t>(std::max<int64_t>(1, timeout.count() * 9 / 10));
    asio::awaitable<Result<internal::v1::ShardWritesResponse>> call =
        exchange_(Encode(live, worker_timeout), timeout);
    Result<internal::v1::ShardWritesResponse> answer = co_await std::move(call);
    if (answer.ok() && answer->outcomes_size() != static_cast<int>(live.size())) {
      answer = Internal(options_.peer + " answered " + std::to_string(answer->outcomes_size()) +
                        " outcomes for " + std::to_string(live.size()) + " shard writes");
    }
    if (!answer.ok()) {
      for (Pending* p : live) Complete(*p, answer.status());
      co_return;
    }
    for (size_t i = 0; i < live.size(); ++i) {
      internal::v1::ShardWriteOutcome& outcome = *answer->mutable_outcomes(static_cast<int>(i));
      if (outcome.has_error()) {
        Complete(*live[i], FromWire(outcome.error()));
      } else {
        Complete(*live[i], std::move(*outcome.mutable_response()));
      }
    }
  }

  // The ShardWritesRequest of `live`, from their encodings as they are (see
  // ShardWritesRequestEncoded): no write is encoded again.
  static std::string Encode(const std::vector<Pending*>& live, uint32_t timeout_ms) {
    internal::v1::ShardWritesRequestEncoded body;
    body.mutable_writes()->Reserve(static_cast<int>(live.size()));
    for (Pending* p : live) body.add_writes(std::move(p->encoded));
    body.set_timeout_ms(timeout_ms);
    return body.SerializeAsString();
  }

  const asio::any_io_executor executor_;
  const ShardExchange exchange_;
  ShardWriteQueueOptions options_;  // fixed after construction
  mutable Mutex mu_;
  std::vector<Pending> queued_ GUARDED_BY(mu_);
  size_t counted_ GUARDED_BY(mu_) = 0;  // exchanges holding a slot
};

}  // namespace

std::shared_ptr<ShardWriteQueue> MakeShardWriteQueue(asio::any_io_executor executor,
                                                     ShardExchange exchange,
                                                     ShardWriteQueueOptions options) {
  return std::make_shared<Queue>(std::move(executor), std::move(exchange), std::move(options));
}

}  // namespace das::rpc
