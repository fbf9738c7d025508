// Runs a binary's io_context until SIGINT or SIGTERM, or a node's on threads of its own.
#pragma once

#include <functional>
#include <memory>
#include <thread>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace das::http {

// Runs an io_context on threads of its own until Stop() (a node a test runs in process).
// Thread-safety: one thread starts and stops it.
class IoThreads {
 public:
  explicit IoThreads(boost::asio::io_context& io);
  ~IoThreads();  // Stop()
  IoThreads(const IoThreads&) = delete;
  IoThreads& operator=(const IoThreads&) = delete;

  void Start(unsigned threads);
  bool started() const { return !threads_.empty(); }
  // Stops the io_context (what it still has queued is not run) and joins the threads.
  void Stop();

 private:
  struct Work;  // keeps run() from returning while idle
  boost::asio::io_context& io_;
  std::unique_ptr<Work> work_;
  std::vector<std::thread> threads_;
};

// Runs `io` on `threads` threads until SIGINT or SIGTERM. Then calls `on_signal` on the calling
// thread while `io` still runs, so that it may stop services and wait for them (their
// Stop()s need the io_context to make progress), and finally stops `io` and joins the threads.
void RunUntilSignal(boost::asio::io_context& io, unsigned threads,
                    const std::function<void()>& on_signal);

}  // namespace das::http
