// ShardWriter against a fake worker (a real das::http::Server on loopback) that answers only
// when the test releases it, and a ManualClock: every outcome here follows from the order of
// events the test sets up, never from how fast the machine is.
#include "control/shard_writer.h"
#include "rpc/worker_client.h"

#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <thread>

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

#include "http/server.h"
#include "rpc/routes.h"
#include "rpc/status_wire.h"

namespace das::control {
namespace {

namespace asio = boost::asio;
using internal::v1::SubBatchResult;
using namespace std::chrono_literals;

// Holds every write request until the test releases it, then answers every sub-batch OK with
// rows_written = the value of its first row, so that the test can tell which answer reached
// which caller.
class FakeWorker {
 public:
  explicit FakeWorker(asio::io_context& io) {
    auto server = http::Server::Create(io, http::ServerOptions{},
                                       [this](http::Request r) { return Handle(std::move(r)); });
    EXPECT_TRUE(server.ok());
    server_ = std::move(server).value();
    server_->Start();
  }
  ~FakeWorker() { Stop(); }
  // REQUIRES: the io_context runs (the server's connections close on it).
  void Stop() { server_->Stop(); }

  uint16_t port() const { return server_->port(); }

  // Blocks until `n` requests arrived (and are held).
  void WaitForRequests(size_t n) {
    std::unique_lock lock(mu_);
    arrived_.wait(lock, [&] { return requests_ >= n; });
  }
  size_t requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }
  // Lets every held request and every later one be answered.
  void ReleaseAll() {
    std::lock_guard lock(mu_);
    released_ = true;
    for (auto* timer : held_) asio::post(timer->get_executor(), [timer] { timer->cancel(); });
    held_.clear();
  }

 private:
  asio::awaitable<http::Response> Handle(http::Request request) {
    internal::v1::WriteRequest write;
    EXPECT_TRUE(write.ParseFromString(request.body));
    asio::steady_timer hold(co_await asio::this_coro::executor, std::chrono::hours(1));
    bool wait = false;
    {
      std::lock_guard lock(mu_);
      ++requests_;
      wait = !released_;
      if (wait) held_.push_back(&hold);
    }
    arrived_.notify_all();
    if (wait) {
      auto [ec] = co_await hold.async_wait(asio::as_tuple(asio::use_awaitable));
      (void)ec;
    }
    internal::v1::WriteResponse response;
    for (const auto& batch : write.batches()) {
      SubBatchResult* result = response.add_results();
      result->set_code(SubBatchResult::OK);
      result->set_rows_written(static_cast<uint64_t>(batch.rows(0).value()));
    }
    co_return rpc::ProtobufResponse(response);
  }

  std::unique_ptr<http::Server> server_;
  std::mutex mu_;
  std::condition_variable arrived_;
  size_t requests_ = 0;                    // GUARDED_BY(mu_)
  bool released_ = false;                  // GUARDED_BY(mu_)
  std::vector<asio::steady_timer*> held_;  // GUARDED_BY(mu_)
};

// What one caller of ShardWriter::Write got.
struct Written {
  StatusCode code = StatusCode::kOk;
  uint64_t rows = 0;
};

// Writes one row whose value is `i`; the fake worker answers rows_written = i.
asio::awaitable<Written> WriteOne(ShardWriter& writer, int i) {
  internal::v1::SubBatch part;
  internal::v1::RowWire* row = part.add_rows();
  row->set_partition_key("k" + std::to_string(i));
  row->set_value(i);
  asio::awaitable<Result<SubBatchResult>> write = writer.Write(std::move(part));
  Result<SubBatchResult> result = co_await std::move(write);
  if (!result.ok()) co_return Written{result.status().code(), 0};
  co_return Written{StatusCode::kOk, result->rows_written()};
}

// Writes `part` (one row whose value is its number), shared with the test, which checks it
// afterwards.
asio::awaitable<Written> WriteShared(ShardWriter& writer,
                                     std::shared_ptr<const internal::v1::SubBatch> part) {
  asio::awaitable<Result<SubBatchResult>> write = writer.Write(std::move(part));
  Result<SubBatchResult> result = co_await std::move(write);
  if (!result.ok()) co_return Written{result.status().code(), 0};
  co_return Written{StatusCode::kOk, result->rows_written()};
}

// A part made on an arena of its own, owned through the arena (as the control node's batches).
std::shared_ptr<const internal::v1::SubBatch> PartOnArena(int i) {
  auto arena = std::make_shared<google::protobuf::Arena>();
  auto* part = google::protobuf::Arena::CreateMessage<internal::v1::SubBatch>(arena.get());
  internal::v1::RowWire* row = part->add_rows();
  row->set_partition_key("k" + std::to_string(i));
  row->set_value(i);
  return std::shared_ptr<const internal::v1::SubBatch>(arena, part);
}

// An io_context on one thread, a fake worker, a ShardWriter (one request in flight) towards it
// with a manual clock, and its client. The writer's deadline is long in real time, so that the
// client never times out on its own: the manual clock alone decides what expires.
class ShardWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    client_ = rpc::WorkerClient::Create(
        io_.get_executor(), rpc::WorkerClientOptions{"127.0.0.1", worker_.port(), 4, nullptr});
    ShardWriterOptions options;
    options.max_inflight = 1;
    options.deadline = kDeadline;
    options.clock = &clock_;
    writer_ = std::make_unique<ShardWriter>(io_.get_executor(), *client_, options);
    runner_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    worker_.ReleaseAll();
    EXPECT_TRUE(writer_->Stop(10s));
    client_->Close();
    worker_.Stop();
    guard_.reset();
    io_.stop();
    runner_.join();
  }

  std::future<Written> Spawn(int i) {
    return asio::co_spawn(io_, WriteOne(*writer_, i), asio::use_future);
  }
  void WaitForQueueDepth(size_t n) {
    while (writer_->queue_depth() != n) std::this_thread::yield();
  }

  static constexpr std::chrono::milliseconds kDeadline{60'000};
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_{io_.get_executor()};
  ManualClock clock_;
  FakeWorker worker_{io_};
  std::unique_ptr<rpc::WorkerClient> client_;
  std::unique_ptr<ShardWriter> writer_;
  std::thread runner_;
};

TEST_F(ShardWriterTest, CoalescesConcurrentWritesAndAnswersEachCaller) {
  std::vector<std::future<Written>> answers;
  answers.push_back(Spawn(1));
  worker_.WaitForRequests(1);  // the first write is on the wire, held by the worker
  constexpr int kWrites = 200;
  for (int i = 2; i <= kWrites; ++i) answers.push_back(Spawn(i));
  WaitForQueueDepth(kWrites - 1);
  worker_.ReleaseAll();
  for (int i = 1; i <= kWrites; ++i) {
    Written w = answers[i - 1].get();
    EXPECT_EQ(w.code, StatusCode::kOk);
    EXPECT_EQ(w.rows, static_cast<uint64_t>(i));
  }
  // The first write left alone; everything queued behind it left together.
  EXPECT_EQ(worker_.requests(), 2u);
}

// Parts on arenas of their own and on the heap leave in one request, borrowed, not copied:
// each caller gets its own answer and keeps its part whole (nothing freed twice or taken).
TEST_F(ShardWriterTest, PartsOnArenasLeaveTogetherAndStayWithTheirOwners) {
  std::vector<std::future<Written>> answers;
  answers.push_back(Spawn(1));
  worker_.WaitForRequests(1);
  std::vector<std::shared_ptr<const internal::v1::SubBatch>> parts = {PartOnArena(2),
                                                                      PartOnArena(3)};
  for (const auto& part : parts) {
    answers.push_back(asio::co_spawn(io_, WriteShared(*writer_, part), asio::use_future));
  }
  answers.push_back(Spawn(4));
  WaitForQueueDepth(3);
  worker_.ReleaseAll();
  for (int i = 1; i <= 4; ++i) {
    Written w = answers[i - 1].get();
    EXPECT_EQ(w.code, StatusCode::kOk);
    EXPECT_EQ(w.rows, static_cast<uint64_t>(i));
  }
  EXPECT_EQ(worker_.requests(), 2u);
  for (size_t i = 0; i < parts.size(); ++i) {
    ASSERT_EQ(parts[i]->rows_size(), 1);
    EXPECT_EQ(parts[i]->rows(0).partition_key(), "k" + std::to_string(i + 2));
  }
}

// Regression: this raced a real 200 ms deadline against a 600 ms worker and saw two requests
// on a loaded machine. The queued write outlives its deadline while the first is in flight, by
// the manual clock: it is answered kDeadlineExceeded without being sent.
TEST_F(ShardWriterTest, QueuedWriteThatOutlivedItsDeadlineIsNotSent) {
  std::future<Written> first = Spawn(1);
  worker_.WaitForRequests(1);
  std::future<Written> second = Spawn(2);
  WaitForQueueDepth(1);
  clock_.Advance(kDeadline + 1ms);
  worker_.ReleaseAll();
  Written one = first.get();
  EXPECT_EQ(one.code, StatusCode::kOk);
  EXPECT_EQ(one.rows, 1u);
  EXPECT_EQ(second.get().code, StatusCode::kDeadlineExceeded);
  EXPECT_EQ(worker_.requests(), 1u);
}

// Just inside its deadline, the queued write is sent.
TEST_F(ShardWriterTest, QueuedWriteWithinItsDeadlineIsSent) {
  std::future<Written> first = Spawn(1);
  worker_.WaitForRequests(1);
  std::future<Written> second = Spawn(2);
  WaitForQueueDepth(1);
  clock_.Advance(kDeadline - 1ms);
  worker_.ReleaseAll();
  EXPECT_EQ(first.get().rows, 1u);
  EXPECT_EQ(second.get().rows, 2u);
  EXPECT_EQ(worker_.requests(), 2u);
}

TEST_F(ShardWriterTest, StopAnswersQueuedAndLaterWritesShuttingDown) {
  std::future<Written> first = Spawn(1);
  worker_.WaitForRequests(1);
  std::future<Written> queued = Spawn(2);
  WaitForQueueDepth(1);
  std::thread stopper([this] { EXPECT_TRUE(writer_->Stop(10s)); });
  EXPECT_EQ(queued.get().code, StatusCode::kShuttingDown);
  worker_.ReleaseAll();  // the request in flight still completes
  stopper.join();
  EXPECT_EQ(first.get().rows, 1u);
  EXPECT_EQ(Spawn(3).get().code, StatusCode::kShuttingDown);
  EXPECT_EQ(worker_.requests(), 1u);
}

TEST(ShardWriterUnreachableTest, UnreachableWorkerFailsEveryCallerWithUnavailable) {
  asio::io_context io;
  auto client = rpc::WorkerClient::Create(io.get_executor(),
                                          rpc::WorkerClientOptions{"127.0.0.1", 1, 4, nullptr});
  ShardWriter writer(io.get_executor(), *client, ShardWriterOptions{});
  auto future = asio::co_spawn(io, WriteOne(writer, 1), asio::use_future);
  io.run();
  EXPECT_EQ(future.get().code, StatusCode::kUnavailable);
}

}  // namespace
}  // namespace das::control
