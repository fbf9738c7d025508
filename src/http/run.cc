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

void RunUntilSignal(boost::asio::io_context& io, unsigned threads,
                    const std::function<void()>& on_signal) {
  // Keeps run() from returning while the services stop and their work drains.
  auto work = boost::asio::make_work_guard(io);
  std::promise<int> signalled;
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& error, int signal) {
    signalled.set_value(error ? 0 : signal);
  });
  std::vector<std::thread> pool;
  for (unsigned i = 0; i < std::max(threads, 1u); ++i) pool.emplace_back([&io] { io.run(); });
  const int signal = signalled.get_future().get();
  spdlog::info("signal {}: stopping", signal);
  on_signal();
  work.reset();
  io.stop();
  for (std::thread& t : pool) t.join();
}

}  // namespace das::http
