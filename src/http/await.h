// AwaitCallback: awaits an operation that reports through a callback on another thread (a
// store's, the raft loop's), resuming the coroutine on its own executor.
#pragma once

#include <memory>
#include <utility>

#include <boost/asio/append.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace das::http {

// `start(done)` begins the operation; `done(T)` (a copyable function object) may be called once,
// from any thread, also before `start` returns.
template <typename T, typename Start>
boost::asio::awaitable<T> AwaitCallback(Start start) {
  namespace asio = boost::asio;
  return asio::async_initiate<const asio::use_awaitable_t<>&, void(T)>(
      [start = std::move(start)](auto handler) mutable {
        // This function object lives in the awaiting coroutine's frame, which the callback may
        // destroy (it resumes the coroutine, on another thread) before `start` returns: `start`
        // runs from this call's stack instead (see control/gather.h).
        Start run = std::move(start);
        // Callbacks are often copyable std::functions; the handler is move-only, so it is shared.
        auto shared = std::make_shared<decltype(handler)>(std::move(handler));
        run([shared](T result) {
          auto executor = asio::get_associated_executor(*shared);
          asio::post(executor, asio::append(std::move(*shared), std::move(result)));
        });
      },
      asio::use_awaitable);
}

}  // namespace das::http
