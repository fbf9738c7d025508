#include "raft/loop.h"

#include <uv.h>

#include <csignal>

#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <thread>
#include <utility>

#include "common/mutex.h"
#include "raft/internal/raft_c.h"

namespace das::raft {

struct Loop::State {
  std::string name;
  uv_loop_t loop{};
  uv_async_t wakeup{};
  std::thread thread;
  std::thread::id thread_id;
  das_raft_log_budget log_budget{};  // loop thread only
  das_raft_log* node_log = nullptr;  // set once, on the loop thread, before any group

  Mutex mu;
  std::deque<std::function<void()>> queue GUARDED_BY(mu);
  bool stopping GUARDED_BY(mu) = false;
  bool stopped GUARDED_BY(mu) = false;  // Stop() returned
};

namespace {

// Runs everything posted so far; on stop, closes the wakeup handle so that uv_run returns once
// the groups' handles are closed too.
void OnWakeup(uv_async_t* handle) {
  auto* state = static_cast<Loop::State*>(handle->data);
  std::deque<std::function<void()>> work;
  bool stopping = false;
  {
    MutexLock lock(state->mu);
    work.swap(state->queue);
    stopping = state->stopping;
  }
  for (auto& fn : work) fn();
  if (!stopping) return;
  // Every group is closed: the node log writes what waits and closes its handles.
  if (state->node_log != nullptr) das_raft_log_close(state->node_log, nullptr, nullptr);
  state->node_log = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(handle), nullptr);
}

}  // namespace

Loop::Loop(std::unique_ptr<State> state) : state_(std::move(state)) {}

Loop::~Loop() { Stop(); }

Result<std::unique_ptr<Loop>> Loop::Start(std::string name) {
  // libuv writes to sockets with write(2): a peer that closed its end would kill the process
  // with SIGPIPE instead of failing the write with EPIPE. Process-wide, as servers do.
  std::signal(SIGPIPE, SIG_IGN);
  auto state = std::make_unique<State>();
  state->name = std::move(name);
  if (int rv = uv_loop_init(&state->loop); rv != 0) {
    return Internal("uv_loop_init: " + std::string(uv_strerror(rv)));
  }
  if (int rv = uv_async_init(&state->loop, &state->wakeup, &OnWakeup); rv != 0) {
    uv_loop_close(&state->loop);
    return Internal("uv_async_init: " + std::string(uv_strerror(rv)));
  }
  state->wakeup.data = state.get();
  std::promise<std::thread::id> started;
  std::future<std::thread::id> id = started.get_future();
  State* raw = state.get();
  state->thread = std::thread([raw, &started] {
    started.set_value(std::this_thread::get_id());
    uv_run(&raw->loop, UV_RUN_DEFAULT);
  });
  state->thread_id = id.get();
  return std::unique_ptr<Loop>(new Loop(std::move(state)));
}

bool Loop::Post(std::function<void()> fn) {
  // The wake-up is sent under the lock: once OnWakeup saw `stopping` and closed the handle,
  // no Post may touch it.
  MutexLock lock(state_->mu);
  if (state_->stopping) return false;
  state_->queue.push_back(std::move(fn));
  uv_async_send(&state_->wakeup);
  return true;
}

bool Loop::RunSync(const std::function<void()>& fn) {
  std::promise<void> done;
  if (!Post([&] {
        fn();
        done.set_value();
      })) {
    return false;
  }
  done.get_future().get();
  return true;
}

bool Loop::InLoopThread() const { return std::this_thread::get_id() == state_->thread_id; }

void Loop::Stop() {
  {
    MutexLock lock(state_->mu);
    if (state_->stopped) return;
    state_->stopped = true;
    state_->stopping = true;
    uv_async_send(&state_->wakeup);
  }
  state_->thread.join();
  uv_loop_close(&state_->loop);
}

void* Loop::uv_loop() { return &state_->loop; }

void Loop::SetLogBudget(uint64_t bytes) {
  if (InLoopThread()) {
    state_->log_budget.bytes = bytes;
  } else {
    RunSync([&] { state_->log_budget.bytes = bytes; });
  }
}

void* Loop::log_budget() { return &state_->log_budget; }

void* Loop::node_log() { return state_->node_log; }

Status Loop::OpenLog(const std::string& dir, size_t segment_bytes) {
  Status status;
  const bool ran = RunSync([&] {
    if (state_->node_log != nullptr) {
      status = Internal("the loop's node log is open already");
      return;
    }
    char errmsg[256] = {0};
    if (das_raft_log_open(&state_->loop, dir.c_str(), segment_bytes, &state_->node_log, errmsg,
                          sizeof errmsg) != 0) {
      status = Internal("the raft log " + dir + ": " + errmsg);
    }
  });
  return ran ? status : ShuttingDown("the raft loop is stopping");
}

Status Loop::DropFromLog(uint64_t group_id) {
  Status status;
  const bool ran = RunSync([&] {
    if (state_->node_log == nullptr) return;
    char errmsg[256] = {0};
    if (das_raft_log_drop(state_->node_log, group_id, errmsg, sizeof errmsg) != 0) {
      status = Internal("forget raft group " + std::to_string(group_id) + ": " + errmsg);
    }
  });
  return ran ? status : ShuttingDown("the raft loop is stopping");
}

}  // namespace das::raft
