#include "support/process.h"

#include "../free_port.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>
#include <thread>

namespace das::it {

std::unique_ptr<Process> Process::Start(const std::string& binary,
                                        const std::vector<std::string>& args,
                                        const std::string& log_path, std::string* error,
                                        const std::vector<std::string>& env) {
  int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    *error = "open " + log_path + ": " + std::strerror(errno);
    return nullptr;
  }
  // Everything the child needs is prepared before fork: after it, only async-signal-safe calls.
  std::vector<std::string> storage;
  storage.push_back(binary);
  storage.insert(storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& s : storage) argv.push_back(s.data());
  argv.push_back(nullptr);
  // The test's environment, a name given in `env` replacing the inherited one.
  std::vector<std::string> env_storage;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view entry(*e);
    const std::string_view name = entry.substr(0, entry.find('=') + 1);
    bool replaced = false;
    for (const std::string& extra : env) replaced = replaced || extra.starts_with(name);
    if (!replaced) env_storage.emplace_back(entry);
  }
  env_storage.insert(env_storage.end(), env.begin(), env.end());
  std::vector<char*> envp;
  for (std::string& s : env_storage) envp.push_back(s.data());
  envp.push_back(nullptr);
  const pid_t parent = ::getpid();
  static constexpr char kExecFailed[] = "integration test: exec failed\n";

  const pid_t pid = ::fork();
  if (pid < 0) {
    *error = std::string("fork: ") + std::strerror(errno);
    ::close(log_fd);
    return nullptr;
  }
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(126);  // the parent died before prctl took effect
    ::setpgid(0, 0);  // a terminal's Ctrl-C goes to the test, which then kills its children
    ::dup2(log_fd, STDOUT_FILENO);
    ::dup2(log_fd, STDERR_FILENO);
    int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd >= 0) ::dup2(null_fd, STDIN_FILENO);
    // Signals blocked or ignored by the test runner would otherwise be inherited.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    ::execve(argv[0], argv.data(), envp.data());
    ssize_t ignored = ::write(STDERR_FILENO, kExecFailed, sizeof(kExecFailed) - 1);
    (void)ignored;
    ::_exit(127);
  }
  ::close(log_fd);
  return std::make_unique<Process>(Key{}, pid, log_path);
}

Process::~Process() { KillAndReap(); }

bool Process::Signal(int signal) {
  if (wait_status_) return false;
  if (signal == SIGKILL || signal == SIGTERM) termination_requested_ = true;
  return ::kill(pid_, signal) == 0;
}

std::optional<int> Process::Wait(std::chrono::milliseconds timeout) {
  if (wait_status_) return wait_status_;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      wait_status_ = status;
      return wait_status_;
    }
    if (r < 0 && errno != EINTR) {
      wait_status_ = -1;  // not our child any more: nothing left to wait for
      return wait_status_;
    }
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

void Process::KillAndReap() {
  if (wait_status_) return;
  termination_requested_ = true;
  ::kill(pid_, SIGCONT);
  ::kill(pid_, SIGKILL);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  wait_status_ = status;
}

bool Process::Running() { return !Wait(std::chrono::milliseconds(0)).has_value(); }

bool Process::WaitJobControl(int option) {
  while (!wait_status_) {
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, option);
    if (r < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (option == WUNTRACED && WIFSTOPPED(status)) return true;
    if (option == WCONTINUED && WIFCONTINUED(status)) return true;
    if (WIFEXITED(status) || WIFSIGNALED(status)) wait_status_ = status;
  }
  return false;
}

std::string Process::LogTail(size_t max_bytes) const {
  std::ifstream in(log_path_, std::ios::binary);
  if (!in) return "(no log at " + log_path_ + ")";
  std::stringstream ss;
  ss << in.rdbuf();
  std::string all = ss.str();
  if (all.size() <= max_bytes) return all;
  return "...\n" + all.substr(all.size() - max_bytes);
}

bool Process::WaitForLog(std::string_view text, size_t count,
                         std::chrono::milliseconds timeout) const {
  auto holds = [&] {
    const std::string log = LogTail(std::numeric_limits<size_t>::max());
    size_t found = 0;
    for (size_t at = log.find(text); at != std::string::npos; at = log.find(text, at + 1)) {
      ++found;
    }
    return found >= count;
  };
  // Woken by the kernel whenever the log is written to, never by a timer.
  const int inotify = ::inotify_init1(IN_CLOEXEC);
  if (inotify < 0) return holds();
  const bool watched = ::inotify_add_watch(inotify, log_path_.c_str(), IN_MODIFY) >= 0;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool done = holds();  // after the watch is set, so no write falls between the two
  while (!done && watched) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd wait{inotify, POLLIN, 0};
    if (::poll(&wait, 1, static_cast<int>(left.count())) > 0) {
      char events[4096];
      (void)!::read(inotify, events, sizeof(events));
    }
    done = holds();
  }
  ::close(inotify);
  return done;
}

std::string DescribeWaitStatus(int status) {
  if (status < 0) return "unknown (not reaped by this process)";
  if (WIFEXITED(status)) return "exited with " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "wait status " + std::to_string(status);
}

int FreePort() { return das::test::FreePort(); }

}  // namespace das::it
