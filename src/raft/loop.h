// Loop: one libuv event loop on a thread of its own, for every raft group of the process
// (docs/architecture.md: one loop thread per process). libraft runs all of a group's work and
// callbacks on it, so the rest of the system talks to it only by posting closures (Post), the
// one bridge between the raft loop and Asio's threads.
// Thread-safety: Post() from any thread; the closures run on the loop thread, in order.
// Start() also ignores SIGPIPE for the whole process (libuv writes with write(2)).
// Lifecycle: Start() creates and runs the thread; Stop() runs what was posted, closes the node
// log and the loop and joins it. REQUIRES for Stop(): every group on the loop is closed.
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

  // One raft log in `dir` (segments of `segment_bytes`) for every group opened on this loop
  // from now on (src/raft/README.md, "One log per node"): a loop turn's entries of all of them
  // are written and synced once. A group then keeps nothing of its own in its data_dir but what
  // raft_uv makes there, and what an older build kept there is imported at its open. Opened
  // once, before the first group; closed by Stop(). Refused (kInternal, naming the file) when
  // the log does not replay.
  Status OpenLog(const std::string& dir, size_t segment_bytes = 8 * 1024 * 1024);
  // Forgets group `group_id` in the node log (its replica left this node), durably.
  // REQUIRES: the group is closed. OK without a node log.
  Status DropFromLog(uint64_t group_id);

  // The uv_loop_t, the log budget (a das_raft_log_budget) and the node log (a das_raft_log,
  // null without one), for src/raft's own files only.
  void* uv_loop();
  void* log_budget();
  void* node_log();

  struct State;  // defined in loop.cc

 private:
  explicit Loop(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace das::raft
