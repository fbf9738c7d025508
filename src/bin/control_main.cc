// distributed_analytics_system: the control node. Takes the public HTTP API (README, "API"), routes
// inserts to the workers and merges their analytics.
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <vector>

#include <CLI/CLI.hpp>

#include "common/log.h"
#include "control/node.h"
#include "rpc/cluster_auth.h"

namespace {

struct Flags {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;
  std::string workers = "127.0.0.1:8081,127.0.0.1:8082";
  size_t body_limit = 16 * 1024 * 1024;
  unsigned analytics_deadline_ms = 1500;
  unsigned insert_deadline_ms = 2000;
  unsigned max_clock_offset_ms = 500;
  uint64_t disk_reserve_mb = 64;
  unsigned query_deadline_ms = 5000;
  uint32_t query_max_rows = 100'000;
  size_t connections_per_worker = 16;
  size_t max_inflight_per_worker = 1;
  unsigned threads = 2;
  std::string cluster_secret_file;
  std::string tls_cert;
  std::string tls_key;
  std::string log_level;
  uint32_t replication_factor = 3;
  uint32_t shards = 16;
  std::string data_dir = "./data/control";
  uint16_t raft_port = 9080;
  std::string advertise_host;
  unsigned dead_worker_after_s = 300;
  unsigned election_timeout_ms = 500;
  uint64_t raft_log_mb = 128;
  std::string auth_tokens_file;
  size_t max_connections = 1024;
  size_t header_limit = 16 * 1024;
  bool metrics = true;
};

// Where it listens and what one request may be.
void AddServingFlags(CLI::App& app, Flags& f) {
  app.add_option("--host", f.host, "Address to listen on (0.0.0.0: every interface)")
      ->envname("DAS_HOST")
      ->capture_default_str();
  app.add_option("--port", f.port, "Port of the public HTTP API")
      ->envname("DAS_PORT")
      ->capture_default_str();
  app.add_option("--workers", f.workers,
                 "Comma-separated host:port of the workers that are members from the start (their "
                 "order fixes the first placement); empty, with replication: workers join "
                 "(worker --join)")
      ->envname("DAS_WORKERS")
      ->capture_default_str();
  app.add_option("--body-limit", f.body_limit, "Largest request body in bytes (else 413)")
      ->envname("DAS_BODY_LIMIT")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--max-connections", f.max_connections,
                 "Client connections served at once; one more is answered 503 and closed")
      ->envname("DAS_MAX_CONNECTIONS")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{1} << 20));
  app.add_option("--header-limit", f.header_limit,
                 "Largest request head (request line and headers) in bytes (else 431)")
      ->envname("DAS_HEADER_LIMIT")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1024}, size_t{1} << 20));
  app.add_option("--threads", f.threads, "Threads serving HTTP")
      ->envname("DAS_THREADS")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
}

// How long each part of a request may take, and how much is sent at once.
void AddDeadlineFlags(CLI::App& app, Flags& f) {
  app.add_option("--analytics-deadline-ms", f.analytics_deadline_ms,
                 "How long each worker gets to answer an analytics request")
      ->envname("DAS_ANALYTICS_DEADLINE_MS")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--query-deadline-ms", f.query_deadline_ms,
                 "How long each shard gets to answer each round of a /v1/query (or a filtered "
                 "/analytics) before it counts as missing")
      ->envname("DAS_QUERY_DEADLINE_MS")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--query-max-rows", f.query_max_rows,
                 "The most rows a query's answer may have (else 422)")
      ->envname("DAS_QUERY_MAX_ROWS")
      ->capture_default_str()
      ->check(CLI::Range(uint32_t{1}, uint32_t{10'000'000}));
  app.add_option("--max-clock-offset-ms", f.max_clock_offset_ms,
                 "A worker's clock further than this from the control node's is reported (/health "
                 "degraded, a log line, das_clock_offset_seconds); rows are stamped with the "
                 "cluster's time, so no one node's wrong clock stamps them")
      ->envname("DAS_MAX_CLOCK_OFFSET_MS")
      ->capture_default_str()
      ->check(CLI::Range(1u, 3'600'000u));
  app.add_option("--disk-reserve-mb", f.disk_reserve_mb,
                 "Below this much free space in --data-dir, /health says the control node's disk "
                 "is full (the witness's raft logs then wait for room)")
      ->envname("DAS_DISK_RESERVE_MB")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{1}, uint64_t{1024 * 1024}));
  app.add_option("--insert-deadline-ms", f.insert_deadline_ms,
                 "How long a worker gets to commit an insert before the client gets 503")
      ->envname("DAS_INSERT_DEADLINE_MS")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--connections-per-worker", f.connections_per_worker,
                 "Kept-alive connections to each worker")
      ->envname("DAS_CONNECTIONS_PER_WORKER")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--max-inflight-per-worker", f.max_inflight_per_worker,
                 "Coalesced insert requests in flight to each worker at once")
      ->envname("DAS_MAX_INFLIGHT_PER_WORKER")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
}

// The shards, their raft groups, and the witness.
void AddClusterFlags(CLI::App& app, Flags& f) {
  app.add_option("--replication-factor", f.replication_factor,
                 "Votes per shard: 1 is the unreplicated system (one partition per worker); 3 "
                 "keeps every shard on min(3, workers) workers, plus this node as a witness "
                 "when there are two")
      ->envname("DAS_REPLICATION_FACTOR")
      ->capture_default_str();
  app.add_option("--shards", f.shards,
                 "Replicated shards (slot ranges), fixed when the cluster is created")
      ->envname("DAS_SHARDS")
      ->capture_default_str();
  app.add_option("--data-dir", f.data_dir, "The cluster's state and the witness's raft logs")
      ->envname("DAS_DATA_DIR")
      ->capture_default_str();
  app.add_option("--raft-port", f.raft_port, "Port of the witness's raft transport, on --host")
      ->envname("DAS_RAFT_PORT")
      ->capture_default_str();
  app.add_option("--advertise-host", f.advertise_host,
                 "The address workers reach this node's raft port at (default: --host; needed "
                 "when --host is 0.0.0.0)")
      ->envname("DAS_ADVERTISE_HOST");
  app.add_option("--dead-worker-after-s", f.dead_worker_after_s,
                 "A worker that has not answered for this long is dead: its replicas are "
                 "recreated on the other workers when there is room")
      ->envname("DAS_DEAD_WORKER_AFTER_S")
      ->capture_default_str()
      ->check(CLI::Range(1, 86400 * 365));
  app.add_option("--raft-election-timeout-ms", f.election_timeout_ms,
                 "Raft election timeout of the witness (heartbeats at a tenth of it)")
      ->envname("DAS_RAFT_ELECTION_TIMEOUT_MS")
      ->capture_default_str()
      ->check(CLI::Range(50, 60000));
  app.add_option("--raft-log-mb", f.raft_log_mb,
                 "MiB of applied entries the witness keeps of its shards' raft logs, in memory "
                 "and on disk, shared among them (at least 16 entries each; 0: up to 65,536 "
                 "entries each, whatever their size). A worker that was away catches up from "
                 "these while the other data replica is down too")
      ->envname("DAS_RAFT_LOG_MB")
      ->capture_default_str()
      ->check(CLI::Range(0, 1 << 20));
}

// Tokens, TLS, the cluster secret, metrics and logs.
void AddSecurityFlags(CLI::App& app, Flags& f) {
  app.add_option("--auth-tokens-file", f.auth_tokens_file,
                 "Require a bearer token on the public API: a file of 'TOKEN NAME ROLE' lines "
                 "(roles read, write, admin; '#' starts a comment), read again on SIGHUP "
                 "(default: none, the API is open)")
      ->envname("DAS_AUTH_TOKENS_FILE");
  app.add_option("--tls-cert", f.tls_cert,
                 "Serve the public API over HTTPS only: the certificate chain, PEM (with "
                 "--tls-key)")
      ->envname("DAS_TLS_CERT");
  app.add_option("--tls-key", f.tls_key, "The private key of --tls-cert, PEM, unencrypted")
      ->envname("DAS_TLS_KEY");
  app.add_option("--cluster-secret-file", f.cluster_secret_file,
                 "A file whose contents (16 to 4096 bytes, trailing whitespace ignored) every node "
                 "of the cluster shares: requests to the workers and raft connections prove it "
                 "(default: none, internal traffic is unauthenticated)")
      ->envname("DAS_CLUSTER_SECRET_FILE");
  app.add_flag("--metrics,!--no-metrics", f.metrics,
               "Count requests and rows and serve them at GET /metrics (--no-metrics: neither)")
      ->envname("DAS_METRICS")
      ->capture_default_str();
  app.add_option("--log-level", f.log_level,
                 "trace, debug, info, warn, error (default: LOG_LEVEL, else RUST_LOG, else info); "
                 "the format: LOG_FORMAT=text (default) or json (one JSON object per line)");
}

void AddFlags(CLI::App& app, Flags& f) {
  AddServingFlags(app, f);
  AddDeadlineFlags(app, f);
  AddClusterFlags(app, f);
  AddSecurityFlags(app, f);
}

// The node's options from the flags; the cluster secret read from its file.
das::Result<das::control::ControlNodeOptions> NodeOptions(
    const Flags& flags, std::vector<das::control::WorkerAddress> workers) {
  das::control::ControlNodeOptions node;
  node.threads = flags.threads;
  node.auth_tokens_file = flags.auth_tokens_file;
  node.metrics = flags.metrics;
  das::control::ControlOptions& options = node.service;
  if (flags.cluster_secret_file.empty()) {
    spdlog::warn(
        "no --cluster-secret-file: internal traffic (to the workers' APIs and raft ports, and "
        "to this node's) is unauthenticated");
  } else {
    ASSIGN_OR_RETURN(options.cluster_secret,
                     das::rpc::ReadClusterSecret(flags.cluster_secret_file));
    spdlog::info("internal requests and raft connections prove the cluster secret from {}",
                 flags.cluster_secret_file);
  }
  options.workers = std::move(workers);
  options.analytics_deadline = std::chrono::milliseconds(flags.analytics_deadline_ms);
  options.insert_deadline = std::chrono::milliseconds(flags.insert_deadline_ms);
  options.max_clock_offset = std::chrono::milliseconds(flags.max_clock_offset_ms);
  options.clock_probe_interval = std::chrono::seconds(1);
  options.disk_reserve_bytes = flags.disk_reserve_mb * 1024 * 1024;
  options.query_deadline = std::chrono::milliseconds(flags.query_deadline_ms);
  options.query_max_rows = flags.query_max_rows;
  options.connections_per_worker = flags.connections_per_worker;
  options.max_inflight_per_worker = flags.max_inflight_per_worker;
  options.replication.replication_factor = flags.replication_factor;
  options.replication.shards = flags.shards;
  options.replication.data_dir = flags.data_dir;
  options.replication.raft_host = flags.host;
  options.replication.raft_port = flags.raft_port;
  options.replication.advertise_host = flags.advertise_host;
  options.replication.election_timeout_ms = flags.election_timeout_ms;
  options.replication.log_budget_bytes = flags.raft_log_mb << 20;
  options.replication.dead_worker_after = std::chrono::seconds(flags.dead_worker_after_s);
  das::http::ServerOptions& server = node.server;
  server.host = flags.host;
  server.port = flags.port;
  server.body_limit = flags.body_limit;
  server.max_connections = flags.max_connections;
  server.header_limit = flags.header_limit;
  server.tls_cert_file = flags.tls_cert;
  server.tls_key_file = flags.tls_key;
  return node;
}

}  // namespace

// Exit codes: 2 for a configuration that cannot run (flags, files, the cluster's saved state),
// 1 when the port cannot be listened on.
int main(int argc, char** argv) {
  CLI::App app{
      "distributed_analytics_system: the control node of the distributed analytics system.\n"
      "Serves POST /insert, POST /insert/batch, GET /analytics, POST /v1/query, GET /health and "
      "GET /metrics."};
  Flags flags;
  AddFlags(app, flags);
  CLI11_PARSE(app, argc, argv);

  auto level = das::ResolveLogLevel(flags.log_level);
  if (!level) {
    std::fprintf(stderr, "--log-level: unknown level '%s'\n", flags.log_level.c_str());
    return 2;
  }
  const std::optional<das::LogFormat> format = das::LogFormatFromEnvironment();
  if (!format) {
    std::fprintf(stderr, "LOG_FORMAT: unknown format '%s' (text or json)\n",
                 std::getenv("LOG_FORMAT"));
    return 2;
  }
  das::InitLogging("control", *level, *format);
  das::InstallCrashHandler();

  auto workers = das::control::ParseWorkerList(flags.workers);
  if (!workers.ok()) {
    spdlog::critical("--workers: {}", workers.status().message());
    return 2;
  }
  das::Result<das::control::ControlNodeOptions> options =
      NodeOptions(flags, std::move(workers).value());
  if (!options.ok()) {
    spdlog::critical("cannot start: {}", options.status().message());
    return 2;
  }
  auto node = das::control::ControlNode::Create(std::move(options).value());
  if (!node.ok()) {
    spdlog::critical("cannot start: {}", node.status().ToString());
    return 2;
  }
  if (das::Status listening = (*node)->Listen(); !listening.ok()) {
    if (listening.code() == das::StatusCode::kInvalidArgument) {
      spdlog::critical("cannot start: {}", listening.message());
      return 2;
    }
    spdlog::critical("cannot listen on {}:{}: {}", flags.host, flags.port, listening.ToString());
    return 1;
  }
  (*node)->RunUntilSignal();
  return 0;
}
