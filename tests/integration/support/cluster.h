// A cluster of real processes for one test: N workers and one control node on free loopback
// ports, in a fresh temporary directory.
//
// Ownership: a Cluster owns its processes and its directory. The destructor kills and reaps
// every process and removes the directory, whatever the test's outcome; when the test failed it
// first prints the tail of each process's log. Set DAS_IT_KEEP_DIR=1 to keep the directory.
// Binaries: DAS_CONTROL_BIN and DAS_WORKER_BIN (compile definitions from CMake, overridden by
// environment variables of the same names).
// Thread-safety: one thread (the test's main thread) drives a Cluster; the ports may be read
// from any thread.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "das/v1/das.pb.h"
#include "support/process.h"
#include "support/raft_proxy.h"

namespace das::it {

struct ClusterOptions {
  int workers = 2;
  std::vector<std::string> control_flags;  // extra flags, e.g. {"--body-limit", "1024"}
  std::vector<std::string> worker_flags;   // extra flags for every worker
  // Extra environment ("NAME=value") of worker i (by index) and of the control node, e.g.
  // libfaketime's (FakeClock()).
  std::map<int, std::vector<std::string>> worker_env;
  std::vector<std::string> control_env;
  // False: no worker process at all; the control node is given ports nobody listens on.
  bool start_workers = true;
  // True: analytics, insert and query deadlines of 10 s, so that a loaded machine (2 cores,
  // parallel builds) does not turn a slow answer into a partial one. Tests of the deadlines
  // themselves set false and get the binaries' defaults (1.5 s and 2 s).
  bool relaxed_deadlines = true;
  // The control node's --replication-factor (3, the binary's default: replicated shards, the
  // control node the witness of a two-worker cluster; 1: the unreplicated system) and --shards
  // (0: the binary's default).
  int replication_factor = 3;
  int shards = 0;
  // Replicated: Start() also waits until /health says "ok" (every shard led by a data replica
  // and every replica caught up). False: only until the control node answers /health at all.
  bool wait_ready = true;
  // A RaftProxy in front of every worker's raft port (partition tests); the workers advertise
  // the proxy's port.
  bool raft_proxies = false;
  // Set: the control node serves HTTPS (its control_flags give --tls-cert and --tls-key), and
  // Start() checks its /health over TLS, verifying against this CA file.
  std::string control_tls_ca;
  // Membership (docs/operations.md, "Membership"): the control node starts with an empty --workers,
  // first, and every worker joins it (--join, no --id: the control node gives the ids).
  bool join = false;
  // With `join`: the workers share one data pool (<dir>/pool, --data-pool) instead of a data
  // directory each, as the containers of a scaled compose service do.
  bool data_pool = false;
};

// Options for a test of an unreplicated cluster (--replication-factor 1: each shard one voter,
// on one worker; a dead worker's shards are missing from answers).
inline ClusterOptions Unreplicated(ClusterOptions options = {}) {
  options.replication_factor = 1;
  return options;
}

// The environment that runs a process with its wall clock `offset` (libfaketime's syntax:
// "-1h", "+4m") from the real one; its monotonic clock is left alone.
std::vector<std::string> FakeClock(const std::string& offset);
// True when libfaketime is installed (scripts/setup.sh installs it).
bool FakeClockAvailable();

// True when the binaries are known (built by CMake or named in the environment); tests skip
// otherwise.
bool BinariesAvailable();
std::string ControlBinary();
std::string WorkerBinary();

class Cluster {
 public:
  Cluster();
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;
  ~Cluster();

  // Starts the workers, then the control node, and waits until each answers GET /health with 200
  // (up to 10 s each).
  testing::AssertionResult Start(const ClusterOptions& options = {});

  int control_port() const { return control_port_; }
  int worker_port(int i) const { return worker_ports_.at(i); }
  int worker_raft_port(int i) const { return worker_raft_ports_.at(i); }
  int control_raft_port() const { return control_raft_port_; }
  // REQUIRES: started with raft_proxies.
  RaftProxy& raft_proxy(int i) { return *proxies_.at(i); }
  int num_workers() const { return static_cast<int>(worker_ports_.size()); }
  const std::string& dir() const { return dir_; }
  pid_t worker_pid(int i) const;
  // The processes, for their exit status; null before the first start.
  Process* worker_process(int i) const { return workers_.at(i).get(); }
  Process* control_process() const { return control_.get(); }

  // Sends `signal` to worker i; for a fatal signal, waits until the process is reaped.
  testing::AssertionResult KillWorker(int i, int signal = SIGKILL);
  testing::AssertionResult StopWorker(int i) { return KillWorker(i, SIGSTOP); }
  testing::AssertionResult ContinueWorker(int i) { return KillWorker(i, SIGCONT); }
  // Kills worker i if it runs, starts it again on the same port and data directory, waits for
  // its /health, then until the control node's /health reports it healthy (replicated: until
  // its replicas are open and caught up, WaitReplicasCaughtUp).
  // `wait_ok` false: only until the control node sees its health (churn under load).
  testing::AssertionResult RestartWorker(int i, bool wait_ok = true);

  testing::AssertionResult KillControl(int signal = SIGKILL);
  // Kills the control node if it runs and starts it again on the same port.
  testing::AssertionResult RestartControl();

  // Membership: starts one more worker (index num_workers()) that joins the running cluster
  // (--join, no --id), and waits for its /health; `index` gets its index.
  testing::AssertionResult AddWorker(int* index);
  // Kills worker i, empties its data directory and starts it again with --join: a new member
  // under a new id (worker_id(i) changes).
  testing::AssertionResult ReplaceWorker(int i);
  // Kills worker i and starts it again with --join on new HTTP and raft ports and the same data
  // directory: the same member (its node id kept) at a new address, as a container that was
  // recreated. Waits for its /health only.
  testing::AssertionResult MoveWorker(int i);
  // The pool directory worker i holds now (data_pool): the one keeping the id it reports.
  const std::string& worker_data_dir(int i) const { return worker_dirs_.at(i); }
  // The node id worker i has (its --id, or the one its join was given).
  uint64_t worker_id(int i) const { return worker_ids_.at(i); }
  // Polls /health until the rebalancer planned with the current map and every member and found
  // nothing left to do, and the status is "ok".
  testing::AssertionResult WaitRebalanced(
      std::chrono::milliseconds timeout = std::chrono::seconds(120));

  // Polls the control node's /health (protobuf) until every worker (or worker i) is reported
  // healthy.
  testing::AssertionResult WaitControlSeesAllWorkersHealthy(
      std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    return WaitControlSeesHealthy(-1, timeout);
  }
  testing::AssertionResult WaitControlSeesHealthy(
      int worker, std::chrono::milliseconds timeout = std::chrono::seconds(10));

  // Polls the control node's /health until every replica on worker i is live and within 16
  // entries of its shard's commit index, and every shard has a leader.
  testing::AssertionResult WaitReplicasCaughtUp(
      int worker, std::chrono::milliseconds timeout = std::chrono::seconds(60));
  // Polls the control node's /health until its status is "ok" (replicated: every shard led by a
  // data replica, every replica live and caught up).
  testing::AssertionResult WaitClusterOk(
      std::chrono::milliseconds timeout = std::chrono::seconds(60));
  // Polls the control node's /health (any status with a HealthResponse body) until `done`.
  testing::AssertionResult PollControlHealth(
      std::chrono::milliseconds timeout, const std::function<bool(const v1::HealthResponse&)>& done,
      const std::string& what);

  // The tails of all logs, for failure messages.
  std::string LogTails(size_t max_bytes_each = 3000) const;

 private:
  testing::AssertionResult StartWorker(int i);
  testing::AssertionResult StartControl();
  // Until `process` answers GET /health with 200 (or, with `any_answer`, 503 too); over TLS,
  // verified against `tls_ca`, when that is set.
  testing::AssertionResult WaitHealthy(Process& process, int port, const std::string& name,
                                       bool any_answer = false, const std::string& tls_ca = {});

  std::string dir_;
  ClusterOptions options_;
  std::vector<int> worker_ports_;
  std::vector<int> worker_raft_ports_;
  std::vector<uint64_t> worker_ids_;
  std::vector<std::string> worker_dirs_;  // data_pool: the directory worker i claimed
  std::vector<bool> joins_;               // worker i starts with --join (and no --id)
  int control_port_ = 0;
  int control_raft_port_ = 0;
  std::vector<std::unique_ptr<Process>> workers_;
  std::unique_ptr<Process> control_;
  std::vector<std::unique_ptr<RaftProxy>> proxies_;
};

// The base fixture of the integration tests: a fresh Cluster per test. Missing binaries fail
// the test: a skipped integration test would hide that nothing was checked.
class ClusterTest : public testing::Test {
 protected:
  void SetUp() override {
    if (!BinariesAvailable()) {
      GTEST_FAIL() << "binaries not built (control '" << ControlBinary() << "', worker '"
                   << WorkerBinary() << "')";
    }
  }
  int port() const { return cluster_.control_port(); }

  Cluster cluster_;
};

}  // namespace das::it
