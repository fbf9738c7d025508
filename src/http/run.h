// Runs a binary's io_context until SIGINT or SIGTERM.
#pragma once

#include <functional>

namespace boost::asio {
class io_context;
}

namespace das::http {

// Runs `io` on `threads` threads (the calling one included) until SIGINT or SIGTERM; then calls
// `on_signal` (stop servers, close clients) on one of them, stops `io` and joins the threads.
void RunUntilSignal(boost::asio::io_context& io, unsigned threads,
                    const std::function<void()>& on_signal);

}  // namespace das::http
