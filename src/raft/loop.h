// Loop: one libuv event loop on a thread of its own, for every raft group of the process
// (docs/architecture.md: one loop thread per process). libraft runs all of a group's work and
// callbacks on it, so the rest of the system talks to it only by posting closures (Post), the
// one bridge between the raft loop and Asio's threads.
// Thread-safety: Post() from any thread; the closures run on the loop thread, in order.
// Start() also ignores SIGPIPE for the whole process (libuv writes with write(2)).
// Lifecycle: Start() creates and runs the thread; Stop() runs what was posted, closes the loop
// and joins it. REQUIRES for Stop(): every group on the loop is closed.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/status.h"

namespace das::raft {

class Loop {
 public:
  static Result<std::unique_ptr<Loop>> Start(std::string name);
  ~Loop();
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  // Runs `fn` on the loop thread. After Stop() began, `fn` is dropped and false returned.
  bool Post(std::function<void()> fn);
  // Runs `fn` on the loop thread and waits for it; false (not run) once Stop() began.
  // REQUIRES: not on the loop thread.
  bool RunSync(const std::function<void()>& fn);
  bool InLoopThread() const;
  // Safe to call more than once.
  void Stop();

  // The bytes of applied entries the loop's groups keep of their logs, in memory and on disk,
  // shared evenly among the groups open at a time (src/raft/README.md, "Logs bounded in
  // bytes"); 0 (the default): each group keeps its snapshot_trailing entries, whatever their
  // size. Takes effect at each group's next applied entry.
  void SetLogBudget(uint64_t bytes);

  // The uv_loop_t and the log budget (a das_raft_log_budget), for src/raft's own files only.
  void* uv_loop();
  void* log_budget();

  struct State;  // defined in loop.cc

 private:
  explicit Loop(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace das::raft
