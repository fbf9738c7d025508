#include "http/run.h"

#include <algorithm>
#include <csignal>
#include <future>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

namespace das::http {

struct IoThreads::Work {
  explicit Work(boost::asio::io_context& io) : guard(boost::asio::make_work_guard(io)) {}
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard;
};

IoThreads::IoThreads(boost::asio::io_context& io) : io_(io) {}

IoThreads::~IoThreads() { Stop(); }

void IoThreads::Start(unsigned threads) {
  work_ = std::make_unique<Work>(io_);
  for (unsigned i = 0; i < std::max(threads, 1u); ++i) threads_.emplace_back([this] { io_.run(); });
}

void IoThreads::Stop() {
  if (!started()) return;
  work_.reset();
  io_.stop();
  for (std::thread& t : threads_) t.join();
  threads_.clear();
}

void RunUntilSignal(boost::asio::io_context& io, unsigned threads,
                    const std::function<void()>& on_signal) {
  std::promise<int> signalled;
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& error, int signal) {
    signalled.set_value(error ? 0 : signal);
  });
  // Its work guard keeps run() from returning while the services stop and their work drains.
  IoThreads pool(io);
  pool.Start(threads);
  const int signal = signalled.get_future().get();
  spdlog::info("signal {}: stopping", signal);
  on_signal();
  pool.Stop();
}

}  // namespace das::http
