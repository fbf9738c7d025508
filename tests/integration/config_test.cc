// Configuration: every flag has an environment twin (what the containers use), and --help
// explains the flags.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "support/api.h"
#include "support/cluster.h"
#include "support/http_client.h"
#include "support/process.h"

namespace das::it {
namespace {

class ConfigTest : public testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "das-config-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    processes_.clear();  // kills and reaps
    for (const char* name : kVariables) unsetenv(name);
    std::filesystem::remove_all(dir_);
  }

  // Starts `binary` with no flags at all: the environment (set by the caller) configures it.
  Process* StartBare(const std::string& binary, const std::string& name) {
    std::string error;
    processes_.push_back(Process::Start(binary, {}, dir_ + "/" + name + ".log", &error));
    EXPECT_NE(processes_.back(), nullptr) << error;
    return processes_.back().get();
  }

  static bool AnswersHealth(int port) {
    for (int i = 0; i < 100; ++i) {
      Result<HttpResponse> r = HttpGet(port, "/health", {}, std::chrono::seconds(1));
      if (r.ok() && r->status == 200) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }

  static std::string Output(const std::string& log) {
    std::ifstream in(log);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

  static constexpr const char* kVariables[] = {
      "WORKER_ID",    "WORKER_HOST", "WORKER_PORT", "WORKER_DATA_DIR", "WORKER_RAFT_PORT",
      "DAS_HOST",     "DAS_PORT",    "DAS_WORKERS", "LOG_LEVEL",       "DAS_RAFT_PORT",
      "DAS_DATA_DIR", "DAS_SHARDS",  "LOG_FORMAT"};
  std::string dir_;
  std::vector<std::unique_ptr<Process>> processes_;
};

TEST_F(ConfigTest, EnvironmentTwinsConfigureBothBinaries) {
  const int ports[2] = {FreePort(), FreePort()};
  for (int i = 0; i < 2; ++i) {
    setenv("WORKER_ID", std::to_string(i + 1).c_str(), 1);
    setenv("WORKER_HOST", "127.0.0.1", 1);
    setenv("WORKER_PORT", std::to_string(ports[i]).c_str(), 1);
    setenv("WORKER_DATA_DIR", (dir_ + "/w" + std::to_string(i + 1)).c_str(), 1);
    setenv("WORKER_RAFT_PORT", std::to_string(FreePort()).c_str(), 1);
    ASSERT_NE(StartBare(WorkerBinary(), "worker" + std::to_string(i + 1)), nullptr);
  }
  const int control = FreePort();
  setenv("DAS_HOST", "127.0.0.1", 1);
  setenv("DAS_PORT", std::to_string(control).c_str(), 1);
  setenv(
      "DAS_WORKERS",
      ("127.0.0.1:" + std::to_string(ports[0]) + ",127.0.0.1:" + std::to_string(ports[1])).c_str(),
      1);
  setenv("LOG_LEVEL", "warn", 1);
  setenv("DAS_RAFT_PORT", std::to_string(FreePort()).c_str(), 1);
  setenv("DAS_DATA_DIR", (dir_ + "/control").c_str(), 1);
  setenv("DAS_SHARDS", "4", 1);
  ASSERT_NE(StartBare(ControlBinary(), "control"), nullptr);

  ASSERT_TRUE(AnswersHealth(ports[0]));
  ASSERT_TRUE(AnswersHealth(ports[1]));
  ASSERT_TRUE(AnswersHealth(control));
  ASSERT_TRUE(InsertOk(control, "env-a", 1.5));
  ASSERT_TRUE(InsertOk(control, "env-b", 2.5));
  Result<Analytics> a = GetAnalytics(control);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_TRUE(Completeness(*a, 200, false, 2, 2));
  EXPECT_EQ(a->body.count(), 2u);
  EXPECT_EQ(a->body.sum(), 4.0);
  // The data went where WORKER_DATA_DIR said, and LOG_LEVEL=warn silenced the control node's
  // info lines (the workers, started before it was set, still log theirs).
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/w1/store.duckdb"));
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/w1/shards/0/raft"));
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/w2/shards/3/raft"));
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/w1/shards/4"));  // DAS_SHARDS=4
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/control/cluster.pb"));
  EXPECT_EQ(Output(dir_ + "/control.log").find("listening"), std::string::npos)
      << Output(dir_ + "/control.log");
  EXPECT_NE(Output(dir_ + "/worker1.log")
                .find("worker 1 listening on 127.0.0.1:" + std::to_string(ports[0])),
            std::string::npos);
}

TEST_F(ConfigTest, HelpExplainsEveryFlagAndItsEnvironmentTwin) {
  Process* control = nullptr;
  {
    std::string error;
    processes_.push_back(Process::Start(ControlBinary(), {"--help"}, dir_ + "/c.log", &error));
    control = processes_.back().get();
  }
  ASSERT_NE(control, nullptr);
  std::optional<int> status = control->Wait(std::chrono::seconds(10));
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
  const std::string help = Output(dir_ + "/c.log");
  for (const char* text : {"--port",
                           "DAS_PORT",
                           "--workers",
                           "DAS_WORKERS",
                           "--body-limit",
                           "--analytics-deadline-ms",
                           "--insert-deadline-ms",
                           "--max-clock-offset-ms",
                           "DAS_MAX_CLOCK_OFFSET_MS",
                           "--log-level",
                           "--replication-factor",
                           "DAS_REPLICATION_FACTOR",
                           "--shards",
                           "DAS_SHARDS",
                           "--data-dir",
                           "DAS_DATA_DIR",
                           "--raft-port",
                           "DAS_RAFT_PORT",
                           "--advertise-host",
                           "DAS_ADVERTISE_HOST",
                           "--auth-tokens-file",
                           "DAS_AUTH_TOKENS_FILE",
                           "--max-connections",
                           "DAS_MAX_CONNECTIONS",
                           "--header-limit",
                           "DAS_HEADER_LIMIT",
                           "--raft-log-mb",
                           "DAS_RAFT_LOG_MB"}) {
    EXPECT_NE(help.find(text), std::string::npos) << text << " missing from:\n" << help;
  }
  std::string error;
  processes_.push_back(Process::Start(WorkerBinary(), {"--help"}, dir_ + "/w.log", &error));
  ASSERT_NE(processes_.back(), nullptr) << error;
  ASSERT_TRUE(processes_.back()->Wait(std::chrono::seconds(10)).has_value());
  const std::string worker_help = Output(dir_ + "/w.log");
  for (const char* text :
       {"--id", "WORKER_ID", "--port", "--data-dir", "WORKER_DATA_DIR", "--idempotency-retention-s",
        "--raft-port", "WORKER_RAFT_PORT", "--replica-commit-interval-ms",
        "WORKER_REPLICA_COMMIT_INTERVAL_MS", "--raft-snapshot-threshold",
        "WORKER_RAFT_SNAPSHOT_THRESHOLD", "--raft-snapshot-trailing",
        "WORKER_RAFT_SNAPSHOT_TRAILING", "--raft-log-mb", "WORKER_RAFT_LOG_MB",
        "--duckdb-memory-mb", "WORKER_DUCKDB_MEMORY_MB"}) {
    EXPECT_NE(worker_help.find(text), std::string::npos) << text << " missing";
  }
}

TEST_F(ConfigTest, BadFlagsStopTheBinaryWithAnError) {
  std::string error;
  processes_.push_back(
      Process::Start(ControlBinary(), {"--workers", "nohost"}, dir_ + "/bad.log", &error));
  ASSERT_NE(processes_.back(), nullptr) << error;
  std::optional<int> status = processes_.back()->Wait(std::chrono::seconds(10));
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 2);
  EXPECT_NE(Output(dir_ + "/bad.log").find("worker 'nohost' is not host:port"), std::string::npos);
}

// LOG_FORMAT=json: every line either binary writes is one JSON object with the time (UTC), the
// level, the node and the message; a shard replica's lines also carry its shard and term.
TEST_F(ConfigTest, JsonLogsAreOneObjectPerLineWithNodeShardAndTerm) {
  setenv("LOG_FORMAT", "json", 1);
  Cluster cluster;
  ASSERT_TRUE(cluster.Start());
  std::vector<TestRow> rows;
  for (int i = 0; i < 50; ++i) rows.push_back({"json-" + std::to_string(i), 1.0});
  ASSERT_TRUE(BatchOk(cluster.control_port(), rows, "", 50));
  ASSERT_TRUE(cluster.KillWorker(0, SIGTERM));  // its shutdown lines too
  bool shard_and_term = false;
  for (Process* process : {cluster.control_process(), cluster.worker_process(0)}) {
    std::istringstream lines(Output(process->log_path()));
    std::string line;
    int parsed = 0;
    while (std::getline(lines, line)) {
      Result<google::protobuf::Struct> object = ParseJsonObject(line);
      ASSERT_TRUE(object.ok()) << "not a JSON object: " << line;
      const auto& fields = object->fields();
      ASSERT_TRUE(fields.contains("time") && fields.contains("level") && fields.contains("node") &&
                  fields.contains("message"))
          << line;
      EXPECT_TRUE(fields.at("time").string_value().ends_with("Z")) << line;
      EXPECT_EQ(fields.at("node").string_value(),
                process == cluster.control_process() ? "control" : "worker-1")
          << line;
      if (fields.contains("shard") && fields.contains("term") &&
          fields.at("term").number_value() >= 1) {
        shard_and_term = true;
      }
      ++parsed;
    }
    EXPECT_GT(parsed, 5) << process->log_path();
  }
  EXPECT_TRUE(shard_and_term) << "no line names its shard and term";
}

// A data directory is one worker's: another id on it is refused before anything is opened, and
// the worker it belongs to starts on it again.
TEST_F(ConfigTest, AWorkerRefusesAnotherWorkersDataDirectory) {
  const std::string data = dir_ + "/worker-data";
  auto start = [&](int id, const std::string& log) {
    const int port = FreePort();
    std::string error;
    processes_.push_back(
        Process::Start(WorkerBinary(),
                       {"--id", std::to_string(id), "--port", std::to_string(port), "--raft-port",
                        std::to_string(FreePort()), "--data-dir", data},
                       dir_ + "/" + log, &error));
    EXPECT_NE(processes_.back(), nullptr) << error;
    return port;
  };
  ASSERT_TRUE(AnswersHealth(start(1, "first.log")));
  ASSERT_TRUE(processes_.back()->Signal(SIGTERM));
  ASSERT_TRUE(processes_.back()->Wait(std::chrono::seconds(30)).has_value());
  EXPECT_EQ(Output(data + "/node_id"), "1\n");

  start(2, "other.log");
  std::optional<int> status = processes_.back()->Wait(std::chrono::seconds(10));
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 2);
  EXPECT_NE(Output(dir_ + "/other.log")
                .find("the data directory " + data +
                      " belongs to worker 1, not 2: start it "
                      "with --id 1, or give worker 2 a data directory of its own"),
            std::string::npos)
      << Output(dir_ + "/other.log");
  EXPECT_EQ(Output(data + "/node_id"), "1\n");

  EXPECT_TRUE(AnswersHealth(start(1, "again.log")));
}

TEST_F(ConfigTest, AnUnknownLogFormatStopsTheBinaryWithAnError) {
  setenv("LOG_FORMAT", "yaml", 1);
  std::string error;
  processes_.push_back(Process::Start(WorkerBinary(), {"--id", "1", "--data-dir", dir_ + "/w"},
                                      dir_ + "/bad-format.log", &error));
  ASSERT_NE(processes_.back(), nullptr) << error;
  std::optional<int> status = processes_.back()->Wait(std::chrono::seconds(10));
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 2);
  EXPECT_NE(Output(dir_ + "/bad-format.log").find("LOG_FORMAT: unknown format 'yaml'"),
            std::string::npos);
}

// The worker's raft and commit tuning has named limits: a value outside them stops the worker
// at start, naming the flag.
TEST_F(ConfigTest, WorkerTuningOutsideItsLimitsIsRefused) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"--raft-snapshot-threshold", "15"},
      {"--raft-snapshot-trailing", "15"},
      {"--replica-commit-interval-ms", "1001"},
      {"--raft-election-timeout-ms", "49"},
      {"--raft-log-mb", "1048577"},
      {"--raft-log-mb", "-1"},
      {"--duckdb-memory-mb", "31"},
      {"--duckdb-memory-mb", "16777217"},
      {"--duckdb-memory-mb", "-1"},
      {"--duckdb-memory-mb", "lots"}};
  for (const auto& [flag, value] : bad) {
    const std::string log = dir_ + "/bad-worker" + flag + ".log";
    std::string error;
    processes_.push_back(Process::Start(WorkerBinary(), {"--id", "1", flag, value}, log, &error));
    ASSERT_NE(processes_.back(), nullptr) << error;
    std::optional<int> status = processes_.back()->Wait(std::chrono::seconds(10));
    ASSERT_TRUE(status.has_value()) << flag << " " << value << " was accepted";
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) != 0) << flag;
    EXPECT_NE(Output(log).find(flag), std::string::npos) << Output(log);
  }
}

TEST_F(ConfigTest, AClockBoundOutsideItsLimitsIsRefused) {
  for (const char* value : {"0", "3600001", "soon"}) {
    const std::string log = dir_ + "/bad-clock-" + value + ".log";
    std::string error;
    processes_.push_back(
        Process::Start(ControlBinary(), {"--max-clock-offset-ms", value}, log, &error));
    ASSERT_NE(processes_.back(), nullptr) << error;
    std::optional<int> status = processes_.back()->Wait(std::chrono::seconds(10));
    ASSERT_TRUE(status.has_value()) << value << " was accepted";
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) != 0) << value;
    EXPECT_NE(Output(log).find("--max-clock-offset-ms"), std::string::npos) << Output(log);
  }
}

TEST_F(ConfigTest, AWitnessLogBudgetOutsideItsLimitsIsRefused) {
  for (const char* value : {"-1", "1048577", "lots"}) {
    const std::string log = dir_ + "/bad-log-" + std::string(value) + ".log";
    std::string error;
    processes_.push_back(Process::Start(ControlBinary(), {"--raft-log-mb", value}, log, &error));
    ASSERT_NE(processes_.back(), nullptr) << error;
    std::optional<int> status = processes_.back()->Wait(std::chrono::seconds(10));
    ASSERT_TRUE(status.has_value()) << value << " was accepted";
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) != 0) << value;
    EXPECT_NE(Output(log).find("--raft-log-mb"), std::string::npos) << Output(log);
  }
}

// Runs the control node with `args` until it exits; returns its exit code (-1: it did not exit).
int ControlExitCode(std::vector<std::unique_ptr<Process>>& processes, std::vector<std::string> args,
                    const std::string& log) {
  std::string error;
  processes.push_back(Process::Start(ControlBinary(), std::move(args), log, &error));
  if (processes.back() == nullptr) return -1;
  std::optional<int> status = processes.back()->Wait(std::chrono::seconds(10));
  if (!status || !WIFEXITED(*status)) return -1;
  return WEXITSTATUS(*status);
}

// Membership needs replication: an unreplicated control node needs its workers listed, and a
// worker needs an id or a control node to join, which gives one.
TEST_F(ConfigTest, AnEmptyWorkerListNeedsReplicationAndAWorkerAnIdOrAJoin) {
  EXPECT_EQ(ControlExitCode(processes_,
                            {"--workers", "", "--replication-factor", "1", "--port",
                             std::to_string(FreePort()), "--data-dir", dir_ + "/c1"},
                            dir_ + "/empty.log"),
            2);
  EXPECT_NE(Output(dir_ + "/empty.log").find("at least one worker"), std::string::npos)
      << Output(dir_ + "/empty.log");
  std::string error;
  processes_.push_back(Process::Start(WorkerBinary(), {"--port", std::to_string(FreePort())},
                                      dir_ + "/noid.log", &error));
  ASSERT_NE(processes_.back(), nullptr) << error;
  std::optional<int> status = processes_.back()->Wait(std::chrono::seconds(10));
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 2);
  EXPECT_NE(Output(dir_ + "/noid.log").find("--id is required (or --join"), std::string::npos)
      << Output(dir_ + "/noid.log");
  // A data pool gives the directory, and the id kept there: it needs --join, and neither --id
  // nor --data-dir. Refused before anything is created.
  const std::string pool = dir_ + "/pool";
  for (const std::vector<std::string>& flags :
       {std::vector<std::string>{"--data-pool", pool},
        {"--data-pool", pool, "--join", "127.0.0.1:1", "--id", "3"},
        {"--data-pool", pool, "--join", "127.0.0.1:1", "--data-dir", dir_ + "/w"}}) {
    std::vector<std::string> args = flags;
    args.insert(args.end(), {"--port", std::to_string(FreePort())});
    processes_.push_back(Process::Start(WorkerBinary(), args, dir_ + "/pool.log", &error));
    ASSERT_NE(processes_.back(), nullptr) << error;
    status = processes_.back()->Wait(std::chrono::seconds(10));
    ASSERT_TRUE(status.has_value());
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 2);
    EXPECT_NE(Output(dir_ + "/pool.log").find("--data-pool needs --join"), std::string::npos)
        << Output(dir_ + "/pool.log");
  }
  EXPECT_FALSE(std::filesystem::exists(pool));
}

// A replication factor the workers cannot honour is refused at start, naming why.
TEST_F(ConfigTest, ImpossibleReplicationIsRefusedAtStart) {
  const std::string one = "127.0.0.1:" + std::to_string(FreePort());
  EXPECT_EQ(ControlExitCode(processes_,
                            {"--workers", one, "--port", std::to_string(FreePort()), "--data-dir",
                             dir_ + "/c1"},
                            dir_ + "/r1.log"),
            2);
  EXPECT_NE(Output(dir_ + "/r1.log").find("--replication-factor 3 needs at least 2 workers"),
            std::string::npos)
      << Output(dir_ + "/r1.log");
  EXPECT_EQ(ControlExitCode(processes_,
                            {"--workers", one + ",127.0.0.1:1", "--replication-factor", "2",
                             "--port", std::to_string(FreePort()), "--data-dir", dir_ + "/c2"},
                            dir_ + "/r2.log"),
            2);
  EXPECT_NE(Output(dir_ + "/r2.log").find("--replication-factor 2 is even"), std::string::npos);
}

// The shards are fixed when the cluster is created: a later start with another count is
// refused, and the kept cluster is untouched.
TEST_F(ConfigTest, AnotherShardCountThanTheKeptClusterIsRefused) {
  Cluster cluster;
  ASSERT_TRUE(cluster.Start());
  ASSERT_TRUE(cluster.KillControl());
  const std::string workers = "127.0.0.1:" + std::to_string(cluster.worker_port(0)) +
                              ",127.0.0.1:" + std::to_string(cluster.worker_port(1));
  EXPECT_EQ(
      ControlExitCode(processes_,
                      {"--workers", workers, "--shards", "8", "--port", std::to_string(FreePort()),
                       "--raft-port", std::to_string(cluster.control_raft_port()), "--data-dir",
                       cluster.dir() + "/control"},
                      dir_ + "/shards.log"),
      2);
  EXPECT_NE(Output(dir_ + "/shards.log").find("keeps a cluster of 16 shards"), std::string::npos)
      << Output(dir_ + "/shards.log");
  ASSERT_TRUE(cluster.RestartControl());
  ASSERT_TRUE(cluster.WaitClusterOk());
}

}  // namespace
}  // namespace das::it
