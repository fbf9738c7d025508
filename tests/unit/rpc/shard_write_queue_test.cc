// ShardWriteQueue against a fake exchange that holds every merged request until the test
// releases it: which writes travel together, and what each caller gets, follow from the order
// of events the test sets up. The one timed behaviour (an exchange gives up its slot after
// release_after) is shown by an event that cannot happen without it, never by a duration.
#include "rpc/shard_write_queue.h"

#include <condition_variable>
#include <future>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include "rpc/status_wire.h"

namespace das::rpc {
namespace {

namespace asio = boost::asio;
using internal::v1::ShardWritesRequest;
using internal::v1::ShardWritesResponse;
using internal::v1::SubBatchResult;
using internal::v1::WriteResponse;
using namespace std::chrono_literals;

constexpr uint32_t kNotLedShard = 99;  // the fake worker answers NOT_LEADER, leader "7"

// The worker's side: every exchange is held until Release(i); then each write of shard s is
// answered with one OK result per sub-batch, rows_written = s (so that a caller can tell its
// own answer), or NOT_LEADER for kNotLedShard; a failing exchange answers UNAVAILABLE whole.
class FakeWorker {
 public:
  ShardExchange Exchange() {
    return [this](std::string body, std::chrono::milliseconds) {
      ShardWritesRequest request;
      EXPECT_TRUE(request.ParseFromString(body));
      return Handle(std::move(request));
    };
  }

  // Blocks until `n` exchanges arrived; false after a minute (a hung test fails, not hangs).
  bool WaitForExchanges(size_t n) {
    std::unique_lock lock(mu_);
    return arrived_.wait_for(lock, 60s, [&] { return requests_.size() >= n; });
  }
  ShardWritesRequest request(size_t i) {
    std::lock_guard lock(mu_);
    return requests_.at(i);
  }
  size_t exchanges() {
    std::lock_guard lock(mu_);
    return requests_.size();
  }
  // Answers every exchange held now or later (a failed test must still end).
  void ReleaseAll() {
    std::lock_guard lock(mu_);
    all_released_ = true;
    fail_.resize(std::max(fail_.size(), held_.size()));
    for (asio::steady_timer* timer : held_) {
      if (timer != nullptr) asio::post(timer->get_executor(), [timer] { timer->cancel(); });
    }
  }
  void Release(size_t i, bool fail = false) {
    std::lock_guard lock(mu_);
    fail_.resize(std::max(fail_.size(), i + 1));
    fail_[i] = fail;
    released_.resize(std::max(released_.size(), i + 1));
    released_[i] = true;
    if (i < held_.size() && held_[i] != nullptr) {
      asio::steady_timer* timer = held_[i];
      asio::post(timer->get_executor(), [timer] { timer->cancel(); });
    }
  }

 private:
  asio::awaitable<Result<ShardWritesResponse>> Handle(ShardWritesRequest request) {
    asio::steady_timer hold(co_await asio::this_coro::executor, std::chrono::hours(1));
    size_t index = 0;
    bool wait = false;
    {
      std::lock_guard lock(mu_);
      index = requests_.size();
      requests_.push_back(request);
      held_.resize(index + 1);
      wait = !all_released_ && (index >= released_.size() || !released_[index]);
      fail_.resize(std::max(fail_.size(), index + 1));
      if (wait) held_[index] = &hold;
    }
    arrived_.notify_all();
    if (wait) {
      auto [ec] = co_await hold.async_wait(asio::as_tuple(asio::use_awaitable));
      (void)ec;
    }
    {
      std::lock_guard lock(mu_);
      held_[index] = nullptr;
      if (fail_[index])
        co_return Unavailable("the fake worker failed exchange " + std::to_string(index));
    }
    ShardWritesResponse response;
    for (const internal::v1::WriteRequest& write : request.writes()) {
      internal::v1::ShardWriteOutcome* outcome = response.add_outcomes();
      if (write.shard() == kNotLedShard) {
        *outcome->mutable_error() = ToWire(NotLeader("not led here", "7"));
        continue;
      }
      for (int b = 0; b < write.batches_size(); ++b) {
        SubBatchResult* result = outcome->mutable_response()->add_results();
        result->set_code(SubBatchResult::OK);
        result->set_rows_written(write.shard());
      }
    }
    co_return response;
  }

  std::mutex mu_;
  std::condition_variable arrived_;
  std::vector<ShardWritesRequest> requests_;  // GUARDED_BY(mu_)
  bool all_released_ = false;                 // GUARDED_BY(mu_)
  std::vector<bool> released_;                // GUARDED_BY(mu_)
  std::vector<bool> fail_;                    // GUARDED_BY(mu_)
  std::vector<asio::steady_timer*> held_;     // GUARDED_BY(mu_)
};

class ShardWriteQueueTest : public testing::Test {
 protected:
  // A caller's outcome (optional: a future's value must be default-constructible).
  using Pending = std::future<std::optional<Result<WriteResponse>>>;

  ShardWriteQueueTest() : work_(io_.get_executor()), thread_([this] { io_.run(); }) {}
  ~ShardWriteQueueTest() override {
    worker_.ReleaseAll();
    queue_.reset();
    work_.reset();
    thread_.join();
  }

  void Make(std::chrono::milliseconds release_after) {
    queue_ = MakeShardWriteQueue(io_.get_executor(), worker_.Exchange(),
                                 ShardWriteQueueOptions{"fake:1", 1, release_after, &clock_});
  }

  // A write of one sub-batch (one row) to `shard`, with a deadline `timeout` from now.
  Pending Write(uint32_t shard, std::chrono::milliseconds timeout = 60s) {
    internal::v1::WriteRequest request;
    request.set_shard(shard);
    request.set_request_id(1000 + shard);
    internal::v1::RowWire* row = request.add_batches()->add_rows();
    row->set_partition_key("k" + std::to_string(shard));
    row->set_value(1.0);
    return asio::co_spawn(
        io_,
        [queue = queue_, request = std::move(request),
         timeout]() -> asio::awaitable<std::optional<Result<WriteResponse>>> {
          asio::awaitable<Result<WriteResponse>> write = queue->Write(request, timeout);
          co_return co_await std::move(write);
        },
        asio::use_future);
  }

  // A write to shard 1 whose exchange the fake worker holds: later writes queue behind it.
  Pending HoldFirst() {
    Pending first = Write(1);
    EXPECT_TRUE(worker_.WaitForExchanges(1));
    return first;
  }

  // Polls until `n` writes wait in the queue (a write's coroutine runs on the io thread).
  bool WaitQueued(size_t n) {
    for (int i = 0; i < 60000 && queue_->queued() < n; ++i) std::this_thread::sleep_for(1ms);
    return queue_->queued() >= n;
  }

  static Result<WriteResponse> Get(Pending& f) { return *f.get(); }

  static uint64_t RowsOf(Pending& f) {
    Result<WriteResponse> r = Get(f);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok() || r->results_size() != 1) return 0;
    return r->results(0).rows_written();
  }

  ManualClock clock_;  // the writes' deadlines
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::thread thread_;
  FakeWorker worker_;
  std::shared_ptr<ShardWriteQueue> queue_;
};

TEST_F(ShardWriteQueueTest, WritesQueuedDuringAnExchangeLeaveTogetherEachWithItsOwnOutcome) {
  Make(std::chrono::hours(1));
  auto first = HoldFirst();
  auto second = Write(2);
  auto third = Write(3);
  auto redirected = Write(kNotLedShard);
  ASSERT_TRUE(WaitQueued(3));
  // The three wait behind the first exchange; they leave together once it is answered.
  worker_.Release(0);
  EXPECT_EQ(RowsOf(first), 1u);
  ASSERT_TRUE(worker_.WaitForExchanges(2));
  worker_.Release(1);
  EXPECT_EQ(RowsOf(second), 2u);
  EXPECT_EQ(RowsOf(third), 3u);
  Result<WriteResponse> not_led = Get(redirected);
  ASSERT_FALSE(not_led.ok());
  EXPECT_EQ(not_led.status().code(), StatusCode::kNotLeader);
  EXPECT_EQ(not_led.status().detail(), "7");
  EXPECT_EQ(worker_.exchanges(), 2u);
  const ShardWritesRequest merged = worker_.request(1);
  ASSERT_EQ(merged.writes_size(), 3);
  EXPECT_EQ(merged.writes(0).shard(), 2u);
  EXPECT_EQ(merged.writes(1).shard(), 3u);
  EXPECT_EQ(merged.writes(2).shard(), kNotLedShard);
  EXPECT_EQ(merged.writes(0).request_id(), 1002u);
  EXPECT_EQ(merged.writes(0).batches(0).rows(0).partition_key(), "k2");
  // 90 % of the first deadline (60 s): the worker answers before the exchange gives up.
  EXPECT_EQ(merged.timeout_ms(), 54000u);
}

TEST_F(ShardWriteQueueTest, AFailedExchangeFailsEachOfItsWritesAndTheQueueGoesOn) {
  Make(std::chrono::hours(1));
  auto first = HoldFirst();
  auto second = Write(2);
  auto third = Write(3);
  ASSERT_TRUE(WaitQueued(2));
  worker_.Release(0);
  EXPECT_EQ(RowsOf(first), 1u);
  ASSERT_TRUE(worker_.WaitForExchanges(2));
  worker_.Release(1, /*fail=*/true);
  for (auto* f : {&second, &third}) {
    Result<WriteResponse> r = Get(*f);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  }
  worker_.Release(2);
  auto after = Write(4);
  EXPECT_EQ(RowsOf(after), 4u);
}

TEST_F(ShardWriteQueueTest, AWriteWhoseDeadlinePassedInTheQueueIsAnsweredUnsent) {
  Make(std::chrono::hours(1));
  auto first = HoldFirst();
  auto late = Write(2, 1ms);
  ASSERT_TRUE(WaitQueued(1));
  clock_.Advance(2ms);
  worker_.Release(0);
  EXPECT_EQ(RowsOf(first), 1u);
  Result<WriteResponse> r = Get(late);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(worker_.exchanges(), 1u);  // nothing was left to send
}

// A shard that cannot commit holds its exchange; after release_after the writes queued behind
// it leave without it (with release_after an hour, the second exchange could only start once
// the first was answered, which here it never is before the second completes).
TEST_F(ShardWriteQueueTest, AnExchangeThatOutrunsReleaseAfterGivesUpItsSlot) {
  Make(20ms);
  auto stuck = HoldFirst();
  auto behind = Write(2);
  ASSERT_TRUE(worker_.WaitForExchanges(2));
  worker_.Release(1);
  EXPECT_EQ(RowsOf(behind), 2u);
  EXPECT_EQ(stuck.wait_for(0s), std::future_status::timeout);
  // A later write goes at once too (the stuck exchange holds no slot any more), and the stuck
  // one still gets its own answer when it comes.
  worker_.Release(2);
  auto later = Write(3);
  EXPECT_EQ(RowsOf(later), 3u);
  worker_.Release(0);
  EXPECT_EQ(RowsOf(stuck), 1u);
}

}  // namespace
}  // namespace das::rpc
