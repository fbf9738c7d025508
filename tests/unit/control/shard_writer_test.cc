// ShardWriter against a fake worker (a real das::http::Server on loopback): concurrent writes
// are coalesced into few internal requests and each caller gets its own sub-batch's outcome.
#include "control/shard_writer.h"

#include <atomic>
#include <thread>

#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include "http/server.h"

namespace das::control {
namespace {

namespace asio = boost::asio;
using internal::v1::SubBatchResult;

// Answers every sub-batch OK with rows_written = the value of its first row, after a delay,
// so that the test can tell which answer reached which caller.
class FakeWorker {
 public:
  explicit FakeWorker(asio::io_context& io,
                      std::chrono::milliseconds delay = std::chrono::milliseconds(30))
      : delay_(delay) {
    http::ServerOptions options;
    options.port = 0;
    auto server =
        http::Server::Create(io, options, [this](http::Request r) { return Handle(std::move(r)); });
    EXPECT_TRUE(server.ok());
    server_ = std::move(server).value();
    server_->Start();
  }
  ~FakeWorker() { server_->Stop(); }

  uint16_t port() const { return server_->port(); }
  int requests() const { return requests_.load(); }

 private:
  asio::awaitable<http::Response> Handle(http::Request request) {
    internal::v1::WriteRequest write;
    EXPECT_TRUE(write.ParseFromString(request.body));
    ++requests_;
    asio::steady_timer timer(co_await asio::this_coro::executor, delay_);
    co_await timer.async_wait(asio::use_awaitable);
    internal::v1::WriteResponse response;
    for (const auto& batch : write.batches()) {
      SubBatchResult* result = response.add_results();
      result->set_code(SubBatchResult::OK);
      result->set_rows_written(static_cast<uint64_t>(batch.rows(0).value()));
    }
    http::Response answer;
    answer.content_type = "application/x-protobuf";
    response.SerializeToString(&answer.body);
    co_return answer;
  }

  const std::chrono::milliseconds delay_;
  std::unique_ptr<http::Server> server_;
  std::atomic<int> requests_{0};
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

// A ShardWriter (one request in flight) and its client, towards `port`.
struct Rig {
  Rig(asio::io_context& io, uint16_t port, std::chrono::milliseconds deadline) {
    http::ClientOptions client_options;
    client_options.host = "127.0.0.1";
    client_options.port = port;
    client = http::Client::Create(io.get_executor(), client_options);
    ShardWriterOptions options;
    options.max_inflight = 1;
    options.deadline = deadline;
    writer = std::make_unique<ShardWriter>(io.get_executor(), *client, options);
  }
  std::unique_ptr<http::Client> client;
  std::unique_ptr<ShardWriter> writer;
};

TEST(ShardWriterTest, CoalescesConcurrentWritesAndAnswersEachCaller) {
  asio::io_context io;
  FakeWorker worker(io);
  Rig rig(io, worker.port(), std::chrono::milliseconds(2000));
  constexpr int kWrites = 200;
  std::vector<std::future<Written>> answers;
  for (int i = 1; i <= kWrites; ++i) {
    answers.push_back(asio::co_spawn(io, WriteOne(*rig.writer, i), asio::use_future));
  }
  std::thread runner([&io] { io.run(); });
  for (int i = 1; i <= kWrites; ++i) {
    EXPECT_EQ(answers[i - 1].get().rows, static_cast<uint64_t>(i));
  }
  // The first write leaves alone; everything queued behind it leaves together.
  EXPECT_LE(worker.requests(), 3);
  EXPECT_GE(worker.requests(), 2);
  rig.client->Close();
  io.stop();
  runner.join();
}

// A slow worker: the first insert times out, and the one queued behind it, whose deadline
// passed while it waited, is answered without being sent.
TEST(ShardWriterTest, QueuedWriteThatOutlivedItsDeadlineIsNotSent) {
  asio::io_context io;
  FakeWorker worker(io, std::chrono::milliseconds(600));
  Rig rig(io, worker.port(), std::chrono::milliseconds(200));
  auto first = asio::co_spawn(io, WriteOne(*rig.writer, 1), asio::use_future);
  auto second = asio::co_spawn(io, WriteOne(*rig.writer, 2), asio::use_future);
  std::thread runner([&io] { io.run(); });
  EXPECT_EQ(first.get().code, StatusCode::kDeadlineExceeded);
  EXPECT_EQ(second.get().code, StatusCode::kDeadlineExceeded);
  EXPECT_EQ(worker.requests(), 1);
  rig.client->Close();
  io.stop();
  runner.join();
}

TEST(ShardWriterTest, UnreachableWorkerFailsEveryCallerWithUnavailable) {
  asio::io_context io;
  Rig rig(io, /*port=*/1, std::chrono::milliseconds(2000));  // nobody listens on port 1
  auto future = asio::co_spawn(io, WriteOne(*rig.writer, 1), asio::use_future);
  io.run();
  EXPECT_EQ(future.get().code, StatusCode::kUnavailable);
}

}  // namespace
}  // namespace das::control
