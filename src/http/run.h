// Runs a binary's io_context until SIGINT or SIGTERM.
#pragma once

#include <functional>

namespace boost::asio {
class io_context;
}

namespace das::http {

// Runs `io` on `threads` threads until SIGINT or SIGTERM. Then calls `on_signal` on the calling
// thread while `io` still runs, so that it may stop services and wait for them (their
// Stop()s need the io_context to make progress), and finally stops `io` and joins the threads.
void RunUntilSignal(boost::asio::io_context& io, unsigned threads,
                    const std::function<void()>& on_signal);

}  // namespace das::http
