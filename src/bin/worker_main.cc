// worker: a worker node. Keeps its hash partition of the rows in one DuckDB file and serves
// the internal API (src/worker/service.h) to the control node.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>

#include <unistd.h>

#include <CLI/CLI.hpp>

#include "common/log.h"
#include "rpc/cluster_auth.h"
#include "rpc/routes.h"
#include "storage/memory_budget.h"
#include "worker/data_pool.h"
#include "worker/join.h"
#include "worker/node.h"
#include "worker/node_identity.h"

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

// Who the worker is and where it listens.
void AddNodeFlags(CLI::App& app, Flags& f) {
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
}

// Its shards' raft groups.
void AddRaftFlags(CLI::App& app, Flags& f) {
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
}

// Its data directory and store.
void AddDataFlags(CLI::App& app, Flags& f) {
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
}

// How it serves.
void AddServiceFlags(CLI::App& app, Flags& f) {
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

void AddFlags(CLI::App& app, Flags& f) {
  AddNodeFlags(app, f);
  AddRaftFlags(app, f);
  AddDataFlags(app, f);
  AddServiceFlags(app, f);
}

das::worker::WorkerNodeOptions NodeOptions(const Flags& flags, const std::string& cluster_secret) {
  das::worker::WorkerNodeOptions o;
  o.id = flags.id;
  o.host = flags.host;
  o.port = flags.port;
  o.raft_port = flags.raft_port;
  o.raft_advertise_port = flags.raft_advertise_port;
  o.cluster_secret = cluster_secret;
  o.metrics = flags.metrics;
  o.threads = flags.threads;
  o.body_limit = flags.body_limit;
  o.copy_bytes_per_s = flags.copy_bytes_per_s;
  o.store.data_dir = flags.data_dir;
  o.store.reader_threads = flags.reader_threads;
  o.store.disk_reserve_bytes = flags.disk_reserve_mb * 1024 * 1024;  // 0: the default
  o.store.duckdb_threads = flags.duckdb_threads;
  o.store.memory_limit_bytes =
      flags.duckdb_memory_mb != 0
          ? flags.duckdb_memory_mb << 20
          : das::storage::DefaultDuckdbMemory(das::storage::MachineMemoryBytes());
  o.store.min_commit_interval = std::chrono::milliseconds(flags.replica_commit_interval_ms);
  o.idempotency_retention = std::chrono::seconds(flags.idempotency_retention_s);
  o.election_timeout_ms = flags.election_timeout_ms;
  o.snapshot_threshold = flags.snapshot_threshold;
  o.snapshot_trailing = flags.snapshot_trailing;
  o.raft_log_bytes = flags.raft_log_mb << 20;
  return o;
}

// Refuses flags that do not go together (exit code 2), and fills in the defaults that depend
// on others.
std::optional<int> CheckFlags(Flags& flags) {
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
  return std::nullopt;
}

struct Logs {
  spdlog::level::level_enum level;
  das::LogFormat format;
  void Start(uint32_t id) const {
    das::InitLogging(id == 0 ? std::string("worker") : "worker-" + std::to_string(id), level,
                     format);
  }
};

std::optional<Logs> LogSettings(const Flags& flags) {
  auto level = das::ResolveLogLevel(flags.log_level);
  if (!level) {
    std::fprintf(stderr, "--log-level: unknown level '%s'\n", flags.log_level.c_str());
    return std::nullopt;
  }
  const std::optional<das::LogFormat> format = das::LogFormatFromEnvironment();
  if (!format) {
    std::fprintf(stderr, "LOG_FORMAT: unknown format '%s' (text or json)\n",
                 std::getenv("LOG_FORMAT"));
    return std::nullopt;
  }
  return Logs{*level, *format};
}

// The cluster secret (empty: none, said in a warning).
das::Result<std::string> ReadSecret(const Flags& flags) {
  if (flags.cluster_secret_file.empty()) {
    spdlog::warn(
        "no --cluster-secret-file: internal traffic (this worker's API and its raft port) is "
        "unauthenticated; anyone who reaches port {} can write into its shards",
        flags.port);
    return std::string();
  }
  ASSIGN_OR_RETURN(std::string secret, das::rpc::ReadClusterSecret(flags.cluster_secret_file));
  spdlog::info("internal requests and raft connections must prove the cluster secret from {}",
               flags.cluster_secret_file);
  return secret;
}

// The address the control node is told (a listen on every address names the host).
std::string AdvertisedHost(const Flags& flags) {
  std::string advertise = flags.advertise_host.empty() ? flags.host : flags.advertise_host;
  if (advertise == "0.0.0.0" || advertise == "::") {
    char name[256] = {};
    ::gethostname(name, sizeof(name) - 1);
    advertise = name;
  }
  return advertise;
}

// --join: the id comes from the control node (or, for a worker that joined before, its data
// directory), before anything in the directory is opened. An exit code when it cannot.
std::optional<int> Join(Flags& flags, const std::string& secret, das::worker::PoolClaim* pool,
                        const Logs& logs) {
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
  das::worker::JoinOptions join;
  join.control = flags.join;
  join.node_id = *kept != 0 ? *kept : flags.id;
  join.http_address = AdvertisedHost(flags) + ":" + std::to_string(flags.port);
  join.raft_port = flags.raft_advertise_port;
  if (!secret.empty()) join.cluster_key = das::rpc::ClusterKey::Create(secret);
  das::Result<uint64_t> id = das::worker::JoinCluster(join);
  if (!id.ok() && pool != nullptr && id.status().code() == das::StatusCode::kNotFound &&
      id.status().detail() == das::rpc::kDepartedDetail) {
    // A pool's directory outlives its container: this one's worker left (it was
    // decommissioned, or replaced). Its data is kept aside; a new worker starts here.
    spdlog::warn("{}; its data moves to {}.left-{}, and this worker joins as a new one",
                 id.status().message(), flags.data_dir, join.node_id);
    if (das::Status aside = pool->SetAside(join.node_id); !aside.ok()) {
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
    logs.Start(flags.id);
  }
  return std::nullopt;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "worker: a worker node of the distributed analytics system.\n"
      "Stores its replicas' rows in <data-dir>/store.duckdb."};
  Flags flags;
  AddFlags(app, flags);
  CLI11_PARSE(app, argc, argv);
  if (std::optional<int> refused = CheckFlags(flags)) return *refused;
  const std::optional<Logs> logs = LogSettings(flags);
  if (!logs) return 2;
  das::InstallCrashHandler();
  logs->Start(flags.id);
  das::Result<std::string> secret = ReadSecret(flags);
  if (!secret.ok()) {
    spdlog::critical("cannot start: {}", secret.status().message());
    return 2;
  }
  // Held while the worker runs (the directory's lock).
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
    if (std::optional<int> failed = Join(flags, *secret, pool_claim.get(), *logs)) return *failed;
  }
  // Before anything in the directory is opened: it must be this worker's.
  if (das::Status claimed = das::worker::ClaimNodeId(flags.data_dir, flags.id); !claimed.ok()) {
    spdlog::critical("cannot start: {}", claimed.message());
    return claimed.code() == das::StatusCode::kInvalidArgument ? 2 : 1;
  }
  das::Result<std::unique_ptr<das::worker::WorkerNode>> node =
      das::worker::WorkerNode::Open(NodeOptions(flags, *secret));
  if (!node.ok()) {
    spdlog::critical("{}", node.status().message());
    return 1;
  }
  (*node)->RunUntilSignal();
  return 0;
}
