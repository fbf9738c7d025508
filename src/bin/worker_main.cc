// worker: a worker node. Keeps its hash partition of the rows in one DuckDB file and serves
// the internal API (src/worker/service.h) to the control node.
#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <thread>

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "common/log.h"
#include "http/run.h"
#include "http/server.h"
#include "metrics/registry.h"
#include "replica/copy_fetcher.h"
#include "replica/replica_host.h"
#include "rpc/cluster_auth.h"
#include "rpc/routes.h"
#include "storage/disk_space.h"
#include "storage/memory_budget.h"
#include "storage/node_store.h"
#include "storage/store.h"
#include "worker/data_pool.h"
#include "worker/join.h"
#include "worker/node_identity.h"
#include "worker/service.h"

namespace {

struct Flags {
  uint32_t id = 0;
  std::string join;
  std::string advertise_host;
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  uint16_t raft_port = 0;
  uint16_t raft_advertise_port = 0;
  unsigned election_timeout_ms = 500;
  unsigned replica_commit_interval_ms = 200;
  unsigned snapshot_threshold = 1024;
  unsigned snapshot_trailing = 8192;
  uint64_t raft_log_mb = 256;
  std::string data_dir;
  std::string data_pool;
  uint64_t copy_bytes_per_s = 64 * 1024 * 1024;
  size_t body_limit = 64 * 1024 * 1024;
  uint64_t idempotency_retention_s = 24 * 3600;
  // The worker's store serves every replica's reads (query scans, copies) from these: more
  // than one, so that a long copy or scan does not hold the other replicas' reads.
  size_t reader_threads = 4;
  uint64_t disk_reserve_mb = 0;
  size_t duckdb_threads = 1;
  uint64_t duckdb_memory_mb = 0;
  unsigned threads = 1;
  std::string cluster_secret_file;
  std::string log_level;
  bool metrics = true;
};

void AddFlags(CLI::App& app, Flags& f) {
  app.add_option("--id", f.id,
                 "This worker's id (a positive number); required without --join, which "
                 "otherwise gives a new worker one (kept in its data directory)")
      ->envname("WORKER_ID")
      ->check(CLI::PositiveNumber);
  app.add_option("--join", f.join,
                 "host:port of the control node to join: the worker registers there at every "
                 "start and is given replicas by the rebalancer")
      ->envname("WORKER_JOIN");
  app.add_option("--advertise-host", f.advertise_host,
                 "The host others reach this worker at, announced when it joins (default: "
                 "--host, or this machine's host name when --host is 0.0.0.0)")
      ->envname("WORKER_ADVERTISE_HOST");
  app.add_option("--host", f.host, "Address to listen on (0.0.0.0: every interface)")
      ->envname("WORKER_HOST")
      ->capture_default_str();
  app.add_option("--port", f.port,
                 "Port of the internal API (default: 8080 + id; with --join and no --id, 8081)")
      ->envname("WORKER_PORT");
  app.add_option("--raft-port", f.raft_port,
                 "Port of the raft transport, on --host, for every shard replica (default: "
                 "--port + 1000)")
      ->envname("WORKER_RAFT_PORT");
  app.add_option("--raft-advertise-port", f.raft_advertise_port,
                 "The raft port peers dial, when it differs from --raft-port (a port mapping or "
                 "a proxy in front of it; default: --raft-port)")
      ->envname("WORKER_RAFT_ADVERTISE_PORT");
  app.add_option("--raft-election-timeout-ms", f.election_timeout_ms,
                 "Raft election timeout of the shard replicas (heartbeats at a tenth of it)")
      ->envname("WORKER_RAFT_ELECTION_TIMEOUT_MS")
      ->capture_default_str()
      ->check(CLI::Range(50, 60000));
  app.add_option("--replica-commit-interval-ms", f.replica_commit_interval_ms,
                 "At least this long between two rounds of the worker's store (each commits "
                 "what every replica queued in one DuckDB transaction): entries committed on "
                 "the raft logs meanwhile share the next one (inserts are answered at raft "
                 "commit; a read or an unreplicated write that waits for the store ends the "
                 "wait at once; 0: commit at once)")
      ->envname("WORKER_REPLICA_COMMIT_INTERVAL_MS")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000));
  app.add_option("--raft-snapshot-threshold", f.snapshot_threshold,
                 "Entries between two snapshots of a shard replica (a manifest; the log before "
                 "it is dropped, but for --raft-snapshot-trailing entries)")
      ->envname("WORKER_RAFT_SNAPSHOT_THRESHOLD")
      ->capture_default_str()
      ->check(CLI::Range(16, 1 << 24));
  app.add_option("--raft-snapshot-trailing", f.snapshot_trailing,
                 "Entries kept after a snapshot, so that a replica that was away catches up from "
                 "the log; one further behind catches up from a copy of another replica's data")
      ->envname("WORKER_RAFT_SNAPSHOT_TRAILING")
      ->capture_default_str()
      ->check(CLI::Range(16, 1 << 24));
  app.add_option("--raft-log-mb", f.raft_log_mb,
                 "MiB of applied entries the worker keeps of its shards' raft logs, in memory "
                 "and on disk, shared among them: each keeps fewer than "
                 "--raft-snapshot-trailing entries when they do not fit (at least 16), and "
                 "snapshots sooner (0: no bound in bytes)")
      ->envname("WORKER_RAFT_LOG_MB")
      ->capture_default_str()
      ->check(CLI::Range(0, 1 << 20));
  app.add_option("--data-dir", f.data_dir,
                 "Directory of this worker's DuckDB file (default: ./data/worker-<id>; with "
                 "--join and no --id, ./data/worker)")
      ->envname("WORKER_DATA_DIR");
  app.add_option("--data-pool", f.data_pool,
                 "Instead of --data-dir, for the workers of one scaled service (docker-compose "
                 "--scale) sharing one volume: use the first <pool>/worker-<n> no running worker "
                 "holds (locked while this one runs), and the worker whose data it keeps (needs "
                 "--join; no --id). A directory of a worker that left the cluster is moved aside "
                 "to <pool>/worker-<n>.left-<id> and the worker joins as a new one")
      ->envname("WORKER_DATA_POOL");
  app.add_option("--copy-bytes-per-s", f.copy_bytes_per_s,
                 "Rate limit of the copies of shard data this worker fetches (a replica the "
                 "rebalancer adds here, or one too far behind its leader's log), all together, "
                 "in bytes/s, so that a move leaves the disk and network to inserts (0: none)")
      ->envname("WORKER_COPY_BYTES_PER_S")
      ->capture_default_str();
  app.add_option("--body-limit", f.body_limit, "Largest internal request body in bytes")
      ->envname("WORKER_BODY_LIMIT")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--idempotency-retention-s", f.idempotency_retention_s,
                 "How long an idempotency key is remembered after its batch committed")
      ->envname("WORKER_IDEMPOTENCY_RETENTION_S")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--disk-reserve-mb", f.disk_reserve_mb,
                 "Free space the store keeps on its disk: below it the worker writes nothing (its "
                 "shards are led elsewhere, plain writes get 503) and says \"disk full\" until "
                 "there is room, then catches up by itself. 0: a quarter of the disk, at most 256")
      ->envname("WORKER_DISK_RESERVE_MB")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{0}, uint64_t{1024 * 1024}));
  app.add_option("--reader-threads", f.reader_threads,
                 "Threads of the worker's store running reads of its replicas: query scans, "
                 "copies for other workers, the aggregate a replica starts from")
      ->envname("WORKER_READER_THREADS")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  app.add_option("--duckdb-threads", f.duckdb_threads,
                 "DuckDB's threads (0: one per core). 1 keeps commits cheapest; analytics "
                 "are answered from the running aggregate, not by scanning")
      ->envname("WORKER_DUCKDB_THREADS")
      ->capture_default_str();
  app.add_option("--duckdb-memory-mb", f.duckdb_memory_mb,
                 "DuckDB's memory limit for the worker's database (every replica it holds "
                 "together: cached blocks, the hash tables and sorts of queries, which spill to "
                 "disk beyond it), in MiB, at least 32 (0: a quarter of the machine's memory, or "
                 "of the container's limit, at least 128)")
      ->envname("WORKER_DUCKDB_MEMORY_MB")
      ->capture_default_str()
      ->check(CLI::Validator(
          [](const std::string& text) -> std::string {
            const std::string refused = "must be 0 or 32..16777216";
            if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos) {
              return refused;
            }
            const uint64_t mb = text.size() > 9 ? UINT64_MAX : std::stoull(text);
            return mb == 0 || (mb >= 32 && mb <= (uint64_t{1} << 24)) ? "" : refused;
          },
          "0 or 32..16777216"));
  app.add_option("--threads", f.threads, "Threads serving HTTP")
      ->envname("WORKER_THREADS")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  app.add_option("--cluster-secret-file", f.cluster_secret_file,
                 "A file whose contents (16 to 4096 bytes, trailing whitespace ignored) every node "
                 "of the cluster shares: internal requests and raft connections must prove it "
                 "(default: none, internal traffic is unauthenticated)")
      ->envname("WORKER_CLUSTER_SECRET_FILE");
  app.add_flag("--metrics,!--no-metrics", f.metrics,
               "Count requests, rows and commits and serve them at GET /metrics (--no-metrics: "
               "neither)")
      ->envname("WORKER_METRICS")
      ->capture_default_str();
  app.add_option("--log-level", f.log_level,
                 "trace, debug, info, warn, error (default: LOG_LEVEL, else RUST_LOG, else info); "
                 "the format: LOG_FORMAT=text (default) or json (one JSON object per line)");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "worker: a worker node of the distributed analytics system.\n"
      "Stores its partition of the rows in <data-dir>/worker.duckdb."};
  Flags flags;
  AddFlags(app, flags);
  CLI11_PARSE(app, argc, argv);
  if (!flags.data_pool.empty() &&
      (flags.join.empty() || flags.id != 0 || !flags.data_dir.empty())) {
    std::fprintf(stderr,
                 "--data-pool needs --join, and neither --id nor --data-dir (the directory it "
                 "claims keeps the worker's id)\n");
    return 2;
  }
  if (flags.id == 0 && flags.join.empty()) {
    std::fprintf(stderr, "--id is required (or --join HOST:PORT, which gives one)\n");
    return 2;
  }
  if (flags.port == 0) flags.port = static_cast<uint16_t>(flags.id == 0 ? 8081 : 8080 + flags.id);
  if (flags.data_dir.empty()) {
    flags.data_dir = flags.id == 0 ? "./data/worker" : "./data/worker-" + std::to_string(flags.id);
  }
  if (flags.raft_port == 0) flags.raft_port = static_cast<uint16_t>(flags.port + 1000);
  if (flags.raft_advertise_port == 0) flags.raft_advertise_port = flags.raft_port;

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
  das::InstallCrashHandler();
  das::InitLogging(flags.id == 0 ? std::string("worker") : "worker-" + std::to_string(flags.id),
                   *level, *format);

  std::string cluster_secret;
  std::shared_ptr<const das::rpc::ClusterKey> cluster_key;
  if (flags.cluster_secret_file.empty()) {
    spdlog::warn(
        "no --cluster-secret-file: internal traffic (this worker's API and its raft port) is "
        "unauthenticated; anyone who reaches port {} can write into its shards",
        flags.port);
  } else {
    auto secret = das::rpc::ReadClusterSecret(flags.cluster_secret_file);
    if (!secret.ok()) {
      spdlog::critical("cannot start: {}", secret.status().message());
      return 2;
    }
    cluster_secret = std::move(secret).value();
    cluster_key = das::rpc::ClusterKey::Create(cluster_secret);
    spdlog::info("internal requests and raft connections must prove the cluster secret from {}",
                 flags.cluster_secret_file);
  }

  std::unique_ptr<das::worker::PoolClaim> pool_claim;
  if (!flags.data_pool.empty()) {
    das::Result<std::unique_ptr<das::worker::PoolClaim>> claim =
        das::worker::ClaimFromPool(flags.data_pool);
    if (!claim.ok()) {
      spdlog::critical("cannot start: {}", claim.status().message());
      return 1;
    }
    pool_claim = std::move(claim).value();
    flags.data_dir = pool_claim->data_dir();
    spdlog::info("claimed {} from the data pool {}", flags.data_dir, flags.data_pool);
  }
  if (!flags.join.empty()) {
    // The id comes from the control node (or, for a worker that joined before, its data
    // directory), before anything in the directory is opened.
    das::Result<uint64_t> kept = das::worker::KeptNodeId(flags.data_dir);
    if (!kept.ok()) {
      spdlog::critical("cannot start: {}", kept.status().message());
      return 1;
    }
    if (flags.id != 0 && *kept != 0 && *kept != flags.id) {
      spdlog::critical("cannot start: the data directory {} belongs to worker {}, not {}",
                       flags.data_dir, *kept, flags.id);
      return 2;
    }
    std::string advertise = flags.advertise_host;
    if (advertise.empty()) advertise = flags.host;
    if (advertise == "0.0.0.0" || advertise == "::") {
      char name[256] = {};
      ::gethostname(name, sizeof(name) - 1);
      advertise = name;
    }
    das::worker::JoinOptions join;
    join.control = flags.join;
    join.node_id = *kept != 0 ? *kept : flags.id;
    join.http_address = advertise + ":" + std::to_string(flags.port);
    join.raft_port = flags.raft_advertise_port;
    join.cluster_key = cluster_key;
    das::Result<uint64_t> id = das::worker::JoinCluster(join);
    if (!id.ok() && pool_claim && id.status().code() == das::StatusCode::kNotFound &&
        id.status().detail() == das::rpc::kDepartedDetail) {
      // A pool's directory outlives its container: this one's worker left (it was
      // decommissioned, or replaced). Its data is kept aside; a new worker starts here.
      spdlog::warn("{}; its data moves to {}.left-{}, and this worker joins as a new one",
                   id.status().message(), flags.data_dir, join.node_id);
      if (das::Status aside = pool_claim->SetAside(join.node_id); !aside.ok()) {
        spdlog::critical("cannot start: {}", aside.message());
        return 1;
      }
      join.node_id = 0;
      id = das::worker::JoinCluster(join);
    }
    if (!id.ok()) {
      spdlog::critical("cannot start: {}", id.status().message());
      return 2;
    }
    if (flags.id == 0) {
      flags.id = static_cast<uint32_t>(*id);
      das::InitLogging("worker-" + std::to_string(flags.id), *level, *format);
    }
  }
  // Before anything in the directory is opened: it must be this worker's.
  if (das::Status claimed = das::worker::ClaimNodeId(flags.data_dir, flags.id); !claimed.ok()) {
    spdlog::critical("cannot start: {}", claimed.message());
    return claimed.code() == das::StatusCode::kInvalidArgument ? 2 : 1;
  }
  std::unique_ptr<das::metrics::Registry> metrics;
  if (flags.metrics) metrics = std::make_unique<das::metrics::Registry>();
  // The worker's one database: every shard replica's rows and the unreplicated store's.
  das::storage::NodeStoreOptions node_options;
  if (metrics) {
    node_options.commit_seconds =
        &metrics->Histogram("das_store_commit_duration_seconds",
                            "Duration of a store's write transaction (a round of writes and raft "
                            "entries of every replica), BEGIN to COMMIT",
                            das::metrics::LatencyBuckets());
  }
  node_options.data_dir = flags.data_dir;
  node_options.reader_threads = flags.reader_threads;
  node_options.disk_reserve_bytes = flags.disk_reserve_mb * 1024 * 1024;
  if (node_options.disk_reserve_bytes == 0) {
    std::filesystem::create_directories(flags.data_dir);
    das::Result<das::storage::DiskSize> disk = das::storage::MeasureDisk(flags.data_dir);
    node_options.disk_reserve_bytes =
        disk.ok() ? das::storage::DefaultDiskReserve(disk->total_bytes) : 256 * 1024 * 1024;
  }
  node_options.duckdb_threads = flags.duckdb_threads;
  node_options.memory_limit_bytes =
      flags.duckdb_memory_mb != 0
          ? flags.duckdb_memory_mb << 20
          : das::storage::DefaultDuckdbMemory(das::storage::MachineMemoryBytes());
  node_options.min_commit_interval = std::chrono::milliseconds(flags.replica_commit_interval_ms);
  auto node_store = das::storage::NodeStore::Open(node_options);
  if (!node_store.ok()) {
    spdlog::critical("cannot open the store in {}: {}", flags.data_dir,
                     node_store.status().ToString());
    return 1;
  }
  das::storage::ReplicaStoreOptions replica_store;
  replica_store.idempotency_retention = std::chrono::seconds(flags.idempotency_retention_s);
  das::storage::ReplicaStoreOptions unreplicated = replica_store;
  unreplicated.replica = das::storage::kUnreplicatedReplica;
  // The unreplicated store's own file from before the node store, imported once.
  unreplicated.migrate_from = (std::filesystem::path(flags.data_dir) / "worker.duckdb").string();
  auto store = (*node_store)->OpenReplica(unreplicated);
  if (!store.ok()) {
    spdlog::critical("cannot open the store in {}: {}", flags.data_dir, store.status().ToString());
    return 1;
  }
  // Runs the HTTP server, and the fetches of copies for replicas behind their leader's log.
  boost::asio::io_context io(static_cast<int>(flags.threads));
  // SIGHUP (sent to a whole group of processes by an operator reloading the control node's
  // tokens) is never the default action, termination: a worker has nothing to read
  // again. Installed before the server answers, so no SIGHUP after its first /health kills it.
  boost::asio::signal_set hangup(io, SIGHUP);
  std::function<void()> await_hangup = [&] {
    hangup.async_wait([&](const boost::system::error_code& error, int) {
      if (error) return;
      spdlog::info(
          "SIGHUP: a worker has nothing to read again (the cluster secret is read at "
          "start only)");
      await_hangup();
    });
  };
  await_hangup();
  std::unique_ptr<das::replica::CopyFetcher> copies =
      das::replica::CopyFetcher::Create(io, cluster_key, flags.copy_bytes_per_s);
  // The replicated shards: opened now if the data directory keeps a topology, else when the
  // control node sends one.
  das::replica::ReplicaHostOptions replica_options;
  replica_options.node_id = flags.id;
  replica_options.data_dir = flags.data_dir;
  replica_options.listen_host = flags.host;
  replica_options.raft_port = flags.raft_port;
  replica_options.cluster_secret = cluster_secret;
  replica_options.store = node_store->get();
  replica_options.replica_store = replica_store;
  replica_options.election_timeout_ms = flags.election_timeout_ms;
  replica_options.heartbeat_timeout_ms = std::max(10u, flags.election_timeout_ms / 10);
  replica_options.snapshot_threshold = flags.snapshot_threshold;
  replica_options.snapshot_trailing = flags.snapshot_trailing;
  replica_options.log_budget_bytes = flags.raft_log_mb << 20;
  replica_options.copies = copies.get();
  std::unique_ptr<das::replica::ReplicaHost> replicas =
      das::replica::ReplicaHost::Create(replica_options);
  das::worker::WorkerService service(flags.id, **store, replicas.get(), flags.raft_advertise_port,
                                     cluster_key, metrics.get());

  das::http::ServerOptions server_options;
  server_options.host = flags.host;
  server_options.port = flags.port;
  server_options.body_limit = flags.body_limit;
  auto server = das::http::Server::Create(io, server_options, [&service](das::http::Request r) {
    return service.Handle(std::move(r));
  });
  if (!server.ok()) {
    spdlog::critical("cannot listen on {}:{}: {}", flags.host, flags.port,
                     server.status().ToString());
    return 1;
  }
  (*server)->Start();
  spdlog::info("worker {} listening on {}:{}, data in {}", flags.id, flags.host, (*server)->port(),
               flags.data_dir);
  // The replicas a restarted worker keeps open behind the running server (16 DuckDB files and
  // raft logs take a while on a loaded machine): meanwhile it answers /health, and shard
  // requests with UNAVAILABLE, which the control node retries elsewhere. A replica that cannot
  // be opened stops the worker.
  std::thread opener([&replicas, &flags] {
    if (das::Status loaded = replicas->LoadSaved(); !loaded.ok()) {
      spdlog::critical("cannot open the shard replicas in {}: {}", flags.data_dir,
                       loaded.ToString());
      std::fflush(nullptr);
      std::_Exit(1);
    }
  });

  das::http::RunUntilSignal(io, flags.threads, [&server] {
    // The store still runs, so handlers waiting on it finish; it stops after them.
    if (!(*server)->Stop()) spdlog::warn("connections still open after 5 s; stopping anyway");
  });
  opener.join();
  replicas->Close();
  (*store)->Stop();
  (*node_store)->Stop();
  spdlog::info("stopped");
  return 0;
}
