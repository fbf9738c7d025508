// GatherAll: run several awaitables concurrently and wait for all of them (scatter-gather).
//
// Each task runs as its own coroutine on `executor`; the results come back in the order of
// the tasks. A task that throws (a bug: our tasks return errors as values) yields kInternal.
#pragma once

#include <atomic>
#include <exception>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/append.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "common/status.h"

namespace das::control {

namespace detail {

template <typename T>
struct GatherState {
  using Handler = boost::asio::any_completion_handler<void(std::vector<Result<T>>)>;
  GatherState(size_t n, Handler h, boost::asio::any_io_executor ex)
      : slots(n), remaining(n), handler(std::move(h)), handler_executor(std::move(ex)) {}

  // Called once per task, from any thread; the last one completes the gather.
  void Done() {
    if (remaining.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    std::vector<Result<T>> results;
    results.reserve(slots.size());
    for (auto& slot : slots) {
      results.push_back(slot ? std::move(*slot) : Result<T>(Internal("task threw")));
    }
    boost::asio::post(handler_executor,
                      boost::asio::append(std::move(handler), std::move(results)));
  }

  std::vector<std::optional<Result<T>>> slots;  // each written by its own task only
  std::atomic<size_t> remaining;
  Handler handler;
  boost::asio::any_io_executor handler_executor;  // where the awaiting coroutine resumes
};

template <typename T>
boost::asio::awaitable<void> RunInto(boost::asio::awaitable<Result<T>> task,
                                     std::optional<Result<T>>& slot) {
  slot.emplace(co_await std::move(task));
}

}  // namespace detail

template <typename T>
boost::asio::awaitable<std::vector<Result<T>>> GatherAll(
    boost::asio::any_io_executor executor, std::vector<boost::asio::awaitable<Result<T>>> tasks) {
  if (tasks.empty()) co_return std::vector<Result<T>>{};
  // Named, not a temporary inside co_await: g++ 12 destroys such temporaries twice, and this
  // one holds an executor (its reference count went below zero: a use after free that showed as
  // heap corruption in the control node, found by AddressSanitizer).
  auto initiation = [executor, &tasks](auto handler) {
    // This function object, its captures with it, lives in the coroutine's frame: once the
    // first task is spawned, the last one may finish (on another thread, before this loop
    // ends), and the awaiting coroutine then resumes and destroys that frame. So everything
    // the loop needs is copied or moved out of it first, and only those copies are used:
    // nothing here touches the captures once a task may have finished.
    const boost::asio::any_io_executor spawn_on = executor;
    std::vector<boost::asio::awaitable<Result<T>>> local = std::move(tasks);
    const size_t n = local.size();
    // Shared by the tasks' completions; the last one to finish hands the results over.
    boost::asio::any_io_executor resume_on =
        boost::asio::get_associated_executor(handler, spawn_on);
    auto state =
        std::make_shared<detail::GatherState<T>>(n, std::move(handler), std::move(resume_on));
    for (size_t i = 0; i < n; ++i) {
      boost::asio::co_spawn(spawn_on, detail::RunInto(std::move(local[i]), state->slots[i]),
                            [state](std::exception_ptr) { state->Done(); });
    }
  };
  boost::asio::awaitable<std::vector<Result<T>>> gathered =
      boost::asio::async_initiate<const boost::asio::use_awaitable_t<>&,
                                  void(std::vector<Result<T>>)>(std::move(initiation),
                                                                boost::asio::use_awaitable);
  co_return co_await std::move(gathered);
}

}  // namespace das::control
