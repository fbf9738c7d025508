// A child process for integration tests: the real binaries, started with fork/exec, their
// stdout and stderr appended to a log file.
//
// Ownership: a Process owns its child. The destructor always resumes (SIGCONT), kills (SIGKILL)
// and reaps it, so a failing test leaks no process; the child also gets SIGKILL through
// PR_SET_PDEATHSIG if the test binary dies. Because PDEATHSIG follows the *thread* that forked,
// start processes from the test's main thread only.
// Thread-safety: Signal() may be called from any thread; the other methods from one thread.
#pragma once

#include <sys/wait.h>

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace das::it {

class Process {
  struct Key {};  // only Start() constructs

 public:
  // Starts `binary` with `args` (argv[1..]); output goes to `log_path` (appended). Returns
  // nullptr and fills `error` when the log cannot be opened or fork fails. An exec failure shows
  // as the child exiting with status 127 and a line in the log.
  // `env`: "NAME=value" entries added to (or replacing those of) the test's environment.
  static std::unique_ptr<Process> Start(const std::string& binary,
                                        const std::vector<std::string>& args,
                                        const std::string& log_path, std::string* error,
                                        const std::vector<std::string>& env = {});

  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  ~Process();

  pid_t pid() const { return pid_; }
  const std::string& log_path() const { return log_path_; }

  // Sends `signal` (SIGKILL, SIGSTOP, SIGCONT, SIGTERM, ...). False once the child is reaped.
  bool Signal(int signal);
  // Waits up to `timeout` for the child to exit; returns its wait status (as from waitpid) or
  // nullopt on timeout. Once reaped, returns the same status again.
  std::optional<int> Wait(std::chrono::milliseconds timeout);
  // SIGKILL (after SIGCONT, so a stopped child dies too) and reap.
  void KillAndReap();
  // True while the child has not exited (reaps it if it has).
  bool Running();
  // Blocks until the kernel reports the child stopped (every thread of it, after SIGSTOP) or,
  // for WaitContinued, running again after SIGCONT; false if it exited instead. kill() returns
  // before that happens; on a loaded machine a "stopped" process can still answer for a while.
  // REQUIRES: the signal was sent (else this waits for the child's next stop or exit).
  bool WaitStopped() { return WaitJobControl(WUNTRACED); }
  bool WaitContinued() { return WaitJobControl(WCONTINUED); }

  // True once this object sent SIGKILL or SIGTERM: an exit after that was asked for.
  bool termination_requested() const { return termination_requested_; }

  // The last `max_bytes` of the log, for failure messages.
  std::string LogTail(size_t max_bytes = 4000) const;
  // Waits up to `timeout` until the log holds `text` `count` times: for an event the process
  // reports only there (a reload after SIGHUP). It wakes on each write to the log (inotify),
  // not on a timer. Returns whether the log holds it.
  bool WaitForLog(std::string_view text, size_t count, std::chrono::milliseconds timeout) const;

  Process(Key, pid_t pid, std::string log_path) : pid_(pid), log_path_(std::move(log_path)) {}

 private:
  bool WaitJobControl(int option);

  pid_t pid_;
  std::string log_path_;
  std::optional<int> wait_status_;
  bool termination_requested_ = false;
};

// Describes a wait status: "exited with 1", "killed by signal 9".
std::string DescribeWaitStatus(int status);

// A TCP port on 127.0.0.1 that nobody listens on now, chosen below the kernel's ephemeral range
// (so outgoing connections do not take it as their source port before the server binds it) and
// never handed out twice by this test binary.
int FreePort();

}  // namespace das::it
