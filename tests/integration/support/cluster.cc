#include "support/cluster.h"

#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <thread>

#include "das/v1/das.pb.h"
#include "das/v1/internal.pb.h"
#include "support/http_client.h"
#include "support/tls_client.h"

namespace das::it {
namespace {

// Generous: a replicated cluster forms (16 shards elect leaders) before the control node's
// /health says 200, and the suite runs with both cores busy.
constexpr auto kStartTimeout = std::chrono::seconds(60);

std::string FromEnvOr(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  if (value != nullptr && *value != '\0') return value;
  return fallback;
}

std::string WorkerList(const std::vector<int>& ports) {
  std::string list;
  for (int port : ports) {
    if (!list.empty()) list += ",";
    list += "127.0.0.1:" + std::to_string(port);
  }
  return list;
}

// Fails when `p` exited without being asked to.
testing::AssertionResult CheckNotCrashed(Process* p, const std::string& name) {
  if (p == nullptr || p->termination_requested()) return testing::AssertionSuccess();
  if (std::optional<int> status = p->Wait(std::chrono::milliseconds(0))) {
    return testing::AssertionFailure()
           << name << " died on its own before the restart: " << DescribeWaitStatus(*status)
           << "; log:\n"
           << p->LogTail();
  }
  return testing::AssertionSuccess();
}

}  // namespace

std::string ControlBinary() { return FromEnvOr("DAS_CONTROL_BIN", DAS_CONTROL_BIN); }
std::string WorkerBinary() { return FromEnvOr("DAS_WORKER_BIN", DAS_WORKER_BIN); }

namespace {
constexpr char kFakeTimeLibrary[] = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
}  // namespace

std::vector<std::string> FakeClock(const std::string& offset) {
  return {std::string("LD_PRELOAD=") + kFakeTimeLibrary, "FAKETIME=" + offset,
          "FAKETIME_DONT_FAKE_MONOTONIC=1"};
}

bool FakeClockAvailable() { return std::filesystem::exists(kFakeTimeLibrary); }

bool BinariesAvailable() {
  return !ControlBinary().empty() && !WorkerBinary().empty() &&
         std::filesystem::exists(ControlBinary()) && std::filesystem::exists(WorkerBinary());
}

Cluster::Cluster() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "das-it-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) != nullptr) dir_ = tmpl;
}

Cluster::~Cluster() {
  std::string states;
  auto note = [&](const std::string& name, Process* p) {
    if (p == nullptr) return;
    std::optional<int> status = p->Wait(std::chrono::milliseconds(0));
    states += name + " (pid " + std::to_string(p->pid()) +
              "): " + (status ? DescribeWaitStatus(*status) : "running") + "\n";
    // A process that died on its own (a crash, an exit) fails the test even if every assertion
    // held.
    if (status && !p->termination_requested()) {
      ADD_FAILURE() << name << " died during the test: " << DescribeWaitStatus(*status);
    }
  };
  note("control", control_.get());
  for (size_t i = 0; i < workers_.size(); ++i) {
    note("worker-" + std::to_string(i + 1), workers_[i].get());
  }
  control_.reset();  // kills and reaps
  workers_.clear();
  if (testing::Test::HasFailure()) {
    std::cerr << "---- the cluster in " << dir_ << " at the end of the test:\n"
              << states << LogTails() << "\n";
  }
  const char* keep = std::getenv("DAS_IT_KEEP_DIR");
  if (!dir_.empty() && (keep == nullptr || std::string(keep) != "1")) {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
}

testing::AssertionResult Cluster::Start(const ClusterOptions& options) {
  if (dir_.empty()) return testing::AssertionFailure() << "mkdtemp failed";
  options_ = options;
  worker_ports_.clear();
  worker_raft_ports_.clear();
  worker_ids_.clear();
  joins_.clear();
  for (int i = 0; i < options.workers; ++i) {
    worker_ports_.push_back(FreePort());
    worker_raft_ports_.push_back(FreePort());
    worker_ids_.push_back(options.join ? 0 : static_cast<uint64_t>(i + 1));
    joins_.push_back(options.join);
  }
  workers_.resize(options.workers);
  proxies_.clear();
  if (options.raft_proxies) {
    for (int i = 0; i < options.workers; ++i) {
      proxies_.push_back(std::make_unique<RaftProxy>(worker_raft_ports_[i]));
    }
  }
  control_port_ = FreePort();
  control_raft_port_ = FreePort();
  if (options.join) {
    // The control node first: the workers join it.
    if (auto r = StartControl(); !r) return r;
    for (int i = 0; i < options.workers; ++i) {
      if (auto r = StartWorker(i); !r) return r;
    }
    if (options.wait_ready) return WaitClusterOk();
    return testing::AssertionSuccess();
  }
  if (options.start_workers) {
    for (int i = 0; i < options.workers; ++i) {
      if (auto r = StartWorker(i); !r) return r;
    }
  }
  if (auto r = StartControl(); !r) return r;
  if (options.start_workers && options.wait_ready) return WaitClusterOk();
  return testing::AssertionSuccess();
}

namespace {

// GET /health of the node on `port`, over TLS verified against `tls_ca` when it is set.
Result<HttpResponse> GetHealth(int port, const std::string& tls_ca,
                               std::chrono::milliseconds timeout) {
  if (tls_ca.empty()) return HttpGet(port, "/health", {}, timeout);
  Result<std::unique_ptr<TlsConnection>> tls = TlsConnection::Connect(port, tls_ca, timeout);
  if (!tls.ok()) return tls.status();
  HttpRequest health;
  health.target = "/health";
  return (*tls)->RoundTrip(health);
}

}  // namespace

testing::AssertionResult Cluster::PollControlHealth(
    std::chrono::milliseconds timeout, const std::function<bool(const v1::HealthResponse&)>& done,
    const std::string& what) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string last = "no answer yet";
  while (std::chrono::steady_clock::now() < deadline) {
    Result<HttpResponse> r =
        GetHealth(control_port_, options_.control_tls_ca, std::chrono::seconds(3));
    v1::HealthResponse health;
    if (r.ok() && health.ParseFromString(r->body)) {
      if (done(health)) return testing::AssertionSuccess();
      last = health.ShortDebugString().substr(0, 2000);
    } else {
      last = r.ok() ? "status " + std::to_string(r->status) : r.status().ToString();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return testing::AssertionFailure() << what << " did not happen in time; last /health: " << last;
}

testing::AssertionResult Cluster::WaitReplicasCaughtUp(int worker,
                                                       std::chrono::milliseconds timeout) {
  const std::string node = "worker-" + std::to_string(worker_ids_.at(worker));
  return PollControlHealth(
      timeout,
      [&node](const v1::HealthResponse& health) {
        if (health.shards_size() == 0) return false;
        for (const v1::ShardStatus& shard : health.shards()) {
          for (const v1::ReplicaStatus& replica : shard.replicas()) {
            // The control node's own notion of caught up: within 16 entries of the commit index.
            if (replica.node() == node && (!replica.live() || shard.leader().empty() ||
                                           replica.applied_index() + 16 < shard.commit_index())) {
              return false;
            }
          }
        }
        return true;
      },
      node + "'s replicas catching up");
}

testing::AssertionResult Cluster::WaitClusterOk(std::chrono::milliseconds timeout) {
  return PollControlHealth(
      timeout, [](const v1::HealthResponse& health) { return health.status() == "ok"; },
      "the control node's /health saying ok");
}

pid_t Cluster::worker_pid(int i) const { return workers_.at(i) ? workers_.at(i)->pid() : -1; }

testing::AssertionResult Cluster::StartWorker(int i) {
  const std::string name = "worker-" + std::to_string(i + 1);
  const std::string data_dir = dir_ + "/" + name;
  std::filesystem::create_directories(data_dir);
  std::vector<std::string> args = {"--host",      "127.0.0.1",
                                   "--port",      std::to_string(worker_ports_[i]),
                                   "--raft-port", std::to_string(worker_raft_ports_[i])};
  if (options_.data_pool) {
    args.insert(args.end(), {"--data-pool", dir_ + "/pool"});
  } else {
    args.insert(args.end(), {"--data-dir", data_dir});
  }
  if (joins_.at(i)) {
    args.insert(args.end(), {"--join", "127.0.0.1:" + std::to_string(control_port_)});
  } else {
    args.insert(args.end(), {"--id", std::to_string(i + 1)});
  }
  if (!proxies_.empty()) {
    args.insert(args.end(), {"--raft-advertise-port", std::to_string(proxies_.at(i)->port())});
  }
  args.insert(args.end(), options_.worker_flags.begin(), options_.worker_flags.end());
  std::string error;
  const auto env = options_.worker_env.find(i);
  workers_[i] =
      Process::Start(WorkerBinary(), args, dir_ + "/" + name + ".log", &error,
                     env == options_.worker_env.end() ? std::vector<std::string>{} : env->second);
  if (!workers_[i]) return testing::AssertionFailure() << "cannot start " << name << ": " << error;
  if (auto r = WaitHealthy(*workers_[i], worker_ports_[i], name); !r) return r;
  if (options_.data_pool) {
    // Which directory it claimed: the one whose node_id names the id its /health reports.
    Result<HttpResponse> health = HttpGet(worker_ports_[i], "/internal/v1/health");
    internal::v1::WorkerHealthResponse parsed;
    if (!health.ok() || !parsed.ParseFromString(health->body) || parsed.worker_id() == 0) {
      return testing::AssertionFailure() << name << "'s /health names no worker id";
    }
    worker_ids_[i] = parsed.worker_id();
    worker_dirs_.resize(workers_.size());
    worker_dirs_[i].clear();
    for (const auto& entry : std::filesystem::directory_iterator(dir_ + "/pool")) {
      std::ifstream file(entry.path() / "node_id");
      uint64_t id = 0;
      if (entry.is_directory() && entry.path().string().find(".left-") == std::string::npos &&
          (file >> id) && id == worker_ids_[i]) {
        worker_dirs_[i] = entry.path().string();
      }
    }
    if (worker_dirs_[i].empty()) {
      return testing::AssertionFailure() << "no directory of the pool keeps " << name << "'s id";
    }
    return testing::AssertionSuccess();
  }
  if (joins_.at(i)) {
    // The id its join was given, as its data directory keeps it.
    std::ifstream file(data_dir + "/node_id");
    uint64_t id = 0;
    if (!(file >> id) || id == 0) {
      return testing::AssertionFailure() << name << " keeps no node id after joining";
    }
    worker_ids_[i] = id;
  }
  return testing::AssertionSuccess();
}

testing::AssertionResult Cluster::AddWorker(int* index) {
  const int i = static_cast<int>(worker_ports_.size());
  worker_ports_.push_back(FreePort());
  worker_raft_ports_.push_back(FreePort());
  worker_ids_.push_back(0);
  joins_.push_back(true);
  workers_.emplace_back();
  *index = i;
  return StartWorker(i);
}

testing::AssertionResult Cluster::ReplaceWorker(int i) {
  if (workers_.at(i)) workers_[i]->KillAndReap();
  const std::string data_dir = dir_ + "/worker-" + std::to_string(i + 1);
  std::error_code error;
  std::filesystem::remove_all(data_dir, error);
  if (error) return testing::AssertionFailure() << "cannot empty " << data_dir;
  joins_.at(i) = true;
  worker_ids_.at(i) = 0;
  return StartWorker(i);
}

testing::AssertionResult Cluster::MoveWorker(int i) {
  if (workers_.at(i)) workers_[i]->KillAndReap();
  if (!proxies_.empty()) return testing::AssertionFailure() << "MoveWorker: not behind proxies";
  worker_ports_.at(i) = FreePort();
  worker_raft_ports_.at(i) = FreePort();
  joins_.at(i) = true;
  return StartWorker(i);
}

testing::AssertionResult Cluster::WaitRebalanced(std::chrono::milliseconds timeout) {
  return PollControlHealth(
      timeout,
      [](const v1::HealthResponse& health) {
        return health.status() == "ok" && health.rebalance().balanced();
      },
      "the rebalancing");
}

testing::AssertionResult Cluster::StartControl() {
  std::vector<std::string> args = {"--host",
                                   "127.0.0.1",
                                   "--port",
                                   std::to_string(control_port_),
                                   "--workers",
                                   options_.join ? std::string() : WorkerList(worker_ports_),
                                   "--replication-factor",
                                   std::to_string(options_.replication_factor),
                                   "--raft-port",
                                   std::to_string(control_raft_port_),
                                   "--data-dir",
                                   dir_ + "/control"};
  if (options_.shards > 0) args.insert(args.end(), {"--shards", std::to_string(options_.shards)});
  if (options_.relaxed_deadlines) {
    for (const char* flag :
         {"--analytics-deadline-ms", "--insert-deadline-ms", "--query-deadline-ms"}) {
      args.insert(args.end(), {flag, "10000"});
    }
  }
  args.insert(args.end(), options_.control_flags.begin(), options_.control_flags.end());
  std::string error;
  control_ =
      Process::Start(ControlBinary(), args, dir_ + "/control.log", &error, options_.control_env);
  if (!control_) return testing::AssertionFailure() << "cannot start the control node: " << error;
  // Not waiting for a ready cluster: any answer to /health (a 503 while shards form) will do.
  // Nor, with joins, for workers: they start after it.
  return WaitHealthy(*control_, control_port_, "control",
                     !options_.wait_ready || options_.join || !options_.start_workers,
                     options_.control_tls_ca);
}

testing::AssertionResult Cluster::WaitHealthy(Process& process, int port, const std::string& name,
                                              bool any_answer, const std::string& tls_ca) {
  const auto deadline = std::chrono::steady_clock::now() + kStartTimeout;
  std::string last = "no answer yet";
  while (std::chrono::steady_clock::now() < deadline) {
    if (std::optional<int> status = process.Wait(std::chrono::milliseconds(0))) {
      return testing::AssertionFailure()
             << name << " exited while starting (" << DescribeWaitStatus(*status) << "); log:\n"
             << process.LogTail();
    }
    Result<HttpResponse> r = GetHealth(port, tls_ca, std::chrono::seconds(5));
    if (r.ok() && (r->status == 200 || (any_answer && r->status == 503))) {
      return testing::AssertionSuccess();
    }
    last = r.ok() ? "status " + std::to_string(r->status) : r.status().ToString();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return testing::AssertionFailure() << name << " did not answer GET /health with 200 within "
                                     << kStartTimeout.count() << " s (last: " << last << "); log:\n"
                                     << process.LogTail();
}

testing::AssertionResult Cluster::KillWorker(int i, int signal) {
  Process* p = workers_.at(i).get();
  if (p == nullptr) return testing::AssertionFailure() << "worker " << i << " was never started";
  if (!p->Signal(signal)) {
    return testing::AssertionFailure() << "cannot signal worker " << i << " (it has exited)";
  }
  if (signal == SIGKILL || signal == SIGTERM) {
    if (!p->Wait(std::chrono::seconds(10))) {
      return testing::AssertionFailure()
             << "worker " << i << " did not exit after signal " << signal;
    }
  }
  // Returns once the kernel says the worker is stopped (or running again): the test's next
  // request must not race the signal's delivery.
  if (signal == SIGSTOP && !p->WaitStopped()) {
    return testing::AssertionFailure() << "worker " << i << " did not stop after SIGSTOP";
  }
  if (signal == SIGCONT && !p->WaitContinued()) {
    return testing::AssertionFailure() << "worker " << i << " did not continue after SIGCONT";
  }
  return testing::AssertionSuccess();
}

testing::AssertionResult Cluster::RestartWorker(int i, bool wait_ok) {
  if (auto r = CheckNotCrashed(workers_.at(i).get(), "worker " + std::to_string(i)); !r) return r;
  if (workers_.at(i)) workers_[i]->KillAndReap();
  if (auto r = StartWorker(i); !r) return r;
  if (control_ && control_->Running()) {
    if (auto r = WaitControlSeesHealthy(i); !r) return r;
    // Back means its replicas are open and caught up.
    if (wait_ok) return WaitReplicasCaughtUp(i);
  }
  return testing::AssertionSuccess();
}

testing::AssertionResult Cluster::KillControl(int signal) {
  if (!control_ || !control_->Signal(signal)) {
    return testing::AssertionFailure() << "the control node is not running";
  }
  if (!control_->Wait(std::chrono::seconds(10))) {
    return testing::AssertionFailure() << "the control node did not exit after signal " << signal;
  }
  return testing::AssertionSuccess();
}

testing::AssertionResult Cluster::RestartControl() {
  if (auto r = CheckNotCrashed(control_.get(), "the control node"); !r) return r;
  if (control_) control_->KillAndReap();
  return StartControl();
}

testing::AssertionResult Cluster::WaitControlSeesHealthy(int worker,
                                                         std::chrono::milliseconds timeout) {
  const std::string address =
      worker < 0 ? "" : "127.0.0.1:" + std::to_string(worker_ports_.at(worker));
  return PollControlHealth(
      timeout,
      [this, &address](const v1::HealthResponse& health) {
        int healthy = 0;
        for (const v1::WorkerStatus& w : health.workers()) {
          if (!w.healthy()) continue;
          ++healthy;
          if (!address.empty() && w.address() == address) return true;
        }
        return address.empty() && healthy == num_workers();
      },
      "the control node reporting " +
          (worker < 0 ? std::string("all workers") : "worker " + std::to_string(worker)) +
          " healthy");
}

std::string Cluster::LogTails(size_t max_bytes_each) const {
  std::string out;
  auto add = [&](const std::string& name, const std::string& path) {
    if (!std::filesystem::exists(path)) return;
    std::ifstream in(path, std::ios::binary);
    std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (all.size() > max_bytes_each) all = "...\n" + all.substr(all.size() - max_bytes_each);
    out += "== " + name + " (" + path + ")\n" + all + "\n";
  };
  add("control", dir_ + "/control.log");
  for (int i = 0; i < num_workers(); ++i) {
    const std::string name = "worker-" + std::to_string(i + 1);
    add(name, dir_ + "/" + name + ".log");
  }
  return out;
}

}  // namespace das::it
