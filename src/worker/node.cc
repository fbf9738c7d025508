#include "worker/node.h"

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "http/run.h"
#include "http/server.h"
#include "metrics/registry.h"
#include "replica/copy_fetcher.h"
#include "replica/replica_host.h"
#include "rpc/cluster_auth.h"
#include "storage/disk_space.h"
#include "storage/store.h"
#include "worker/legacy_export.h"
#include "worker/service.h"

namespace das::worker {

namespace asio = boost::asio;

// In the order they are made; destroyed in reverse.
struct WorkerNode::Parts {
  explicit Parts(WorkerNodeOptions o) : options(std::move(o)), io(static_cast<int>(threads())) {}
  unsigned threads() const { return std::max(options.threads, 1u); }

  WorkerNodeOptions options;
  std::unique_ptr<metrics::Registry> metrics;
  std::unique_ptr<storage::NodeStore> node_store;
  std::unique_ptr<storage::Store> legacy;  // an older build's unreplicated store (or none)
  asio::io_context io;                     // the HTTP server, and the fetches of copies
  http::IoThreads serving{io};             // Start()'s
  std::optional<asio::signal_set> hangup;
  std::function<void()> await_hangup;
  std::unique_ptr<replica::CopyFetcher> copies;
  std::unique_ptr<replica::ReplicaHost> replicas;
  std::unique_ptr<WorkerService> service;
  std::unique_ptr<http::Server> server;
  std::thread opener;  // opens the replicas the data directory keeps
  bool stopped = false;

  Status OpenStore();
  Status OpenLegacy();
  void OpenReplicaHost(const std::shared_ptr<const rpc::ClusterKey>& key);
  Status Listen();
  void IgnoreHangups();
  void CloseAfterServing();
};

Status WorkerNode::Parts::OpenStore() {
  storage::NodeStoreOptions store_options = options.store;
  if (metrics) {
    store_options.commit_seconds =
        &metrics->Histogram("das_store_commit_duration_seconds",
                            "Duration of a store's write transaction (a round of writes and raft "
                            "entries of every replica), BEGIN to COMMIT",
                            metrics::LatencyBuckets());
  }
  if (store_options.disk_reserve_bytes == 0) {
    std::filesystem::create_directories(store_options.data_dir);
    Result<storage::DiskSize> disk = storage::MeasureDisk(store_options.data_dir);
    store_options.disk_reserve_bytes =
        disk.ok() ? storage::DefaultDiskReserve(disk->total_bytes) : 256 * 1024 * 1024;
  }
  ASSIGN_OR_RETURN(node_store, storage::NodeStore::Open(store_options));
  return OpenLegacy();
}

// The unreplicated store an older build kept (a worker.duckdb, or its replica in the node
// store), opened only if there is one, for its import into the shards (worker/legacy_export.h).
Status WorkerNode::Parts::OpenLegacy() {
  const std::string& data_dir = options.store.data_dir;
  RETURN_IF_ERROR(LegacyExport::DropIfImported(*node_store, data_dir));
  storage::ReplicaStoreOptions unreplicated;
  unreplicated.idempotency_retention = options.idempotency_retention;
  unreplicated.replica = storage::kUnreplicatedReplica;
  unreplicated.migrate_from = (std::filesystem::path(data_dir) / "worker.duckdb").string();
  ASSIGN_OR_RETURN(std::vector<uint32_t> held, node_store->Replicas());
  const bool kept =
      std::filesystem::exists(unreplicated.migrate_from) ||
      std::find(held.begin(), held.end(), storage::kUnreplicatedReplica) != held.end();
  if (!kept) return Status::Ok();
  ASSIGN_OR_RETURN(legacy, node_store->OpenReplica(unreplicated));
  return Status::Ok();
}

// The replicated shards: opened at Open() if the data directory keeps a topology, else when
// the control node sends one.
void WorkerNode::Parts::OpenReplicaHost(const std::shared_ptr<const rpc::ClusterKey>& key) {
  copies = replica::CopyFetcher::Create(io, key, options.copy_bytes_per_s);
  replica::ReplicaHostOptions host;
  host.node_id = options.id;
  host.data_dir = options.store.data_dir;
  host.listen_host = options.host;
  host.raft_port = options.raft_port;
  host.cluster_secret = options.cluster_secret;
  host.store = node_store.get();
  host.replica_store.idempotency_retention = options.idempotency_retention;
  host.election_timeout_ms = options.election_timeout_ms;
  host.heartbeat_timeout_ms = std::max(10u, options.election_timeout_ms / 10);
  host.snapshot_threshold = options.snapshot_threshold;
  host.snapshot_trailing = options.snapshot_trailing;
  host.log_budget_bytes = options.raft_log_bytes;
  host.copies = copies.get();
  replicas = replica::ReplicaHost::Create(host);
  WorkerServiceOptions service_options;
  service_options.worker_id = options.id;
  service_options.raft_port =
      options.raft_advertise_port != 0 ? options.raft_advertise_port : options.raft_port;
  service_options.cluster_key = key;
  service_options.metrics = metrics.get();
  service_options.legacy = legacy.get();
  service_options.data_dir = options.store.data_dir;
  service = std::make_unique<WorkerService>(*replicas, *node_store, std::move(service_options));
}

Status WorkerNode::Parts::Listen() {
  http::ServerOptions server_options;
  server_options.host = options.host;
  server_options.port = options.port;
  server_options.body_limit = options.body_limit;
  ASSIGN_OR_RETURN(server, http::Server::Create(io, server_options, [this](http::Request r) {
                     return service->Handle(std::move(r));
                   }));
  server->Start();
  spdlog::info("worker {} listening on {}:{}, data in {}", options.id, options.host, server->port(),
               options.store.data_dir);
  // The replicas a restarted worker keeps open behind the running server (16 replicas' tables
  // and raft logs take a while on a loaded machine): meanwhile it answers /health, and shard
  // requests with UNAVAILABLE, which the control node retries elsewhere. A replica that cannot
  // be opened stops the worker.
  opener = std::thread([this] {
    if (Status loaded = replicas->LoadSaved(); !loaded.ok()) {
      spdlog::critical("cannot open the shard replicas in {}: {}", options.store.data_dir,
                       loaded.ToString());
      std::fflush(nullptr);
      std::_Exit(1);
    }
  });
  return Status::Ok();
}

// SIGHUP (sent to a whole group of processes by an operator reloading the control node's
// tokens) is never the default action, termination: a worker has nothing to read again.
void WorkerNode::Parts::IgnoreHangups() {
  hangup.emplace(io, SIGHUP);
  await_hangup = [this] {
    hangup->async_wait([this](const boost::system::error_code& error, int) {
      if (error) return;
      spdlog::info(
          "SIGHUP: a worker has nothing to read again (the cluster secret is read at start "
          "only)");
      await_hangup();
    });
  };
  await_hangup();
}

// After the server stopped: the store still ran meanwhile, so that handlers waiting on it
// finished; it stops after them.
void WorkerNode::Parts::CloseAfterServing() {
  if (opener.joinable()) opener.join();
  replicas->Close();
  if (legacy) legacy->Stop();
  node_store->Stop();
  spdlog::info("stopped");
}

Result<std::unique_ptr<WorkerNode>> WorkerNode::Open(WorkerNodeOptions options) {
  auto parts = std::make_unique<Parts>(std::move(options));
  if (parts->options.metrics) parts->metrics = std::make_unique<metrics::Registry>();
  if (Status opened = parts->OpenStore(); !opened.ok()) {
    return Unavailable("cannot open the store in " + parts->options.store.data_dir + ": " +
                       opened.ToString());
  }
  std::shared_ptr<const rpc::ClusterKey> key;
  if (!parts->options.cluster_secret.empty()) {
    key = rpc::ClusterKey::Create(parts->options.cluster_secret);
  }
  parts->OpenReplicaHost(key);
  if (Status listening = parts->Listen(); !listening.ok()) {
    parts->stopped = true;
    parts->CloseAfterServing();
    return Unavailable("cannot listen on " + parts->options.host + ":" +
                       std::to_string(parts->options.port) + ": " + listening.ToString());
  }
  return std::unique_ptr<WorkerNode>(new WorkerNode(std::move(parts)));
}

WorkerNode::WorkerNode(std::unique_ptr<Parts> parts) : parts_(std::move(parts)) {}

WorkerNode::~WorkerNode() { Stop(); }

uint16_t WorkerNode::port() const { return parts_->server->port(); }

void WorkerNode::RunUntilSignal() {
  parts_->IgnoreHangups();
  http::RunUntilSignal(parts_->io, parts_->threads(), [this] {
    if (!parts_->server->Stop()) spdlog::warn("connections still open after 5 s; stopping anyway");
  });
  parts_->stopped = true;
  parts_->CloseAfterServing();
}

void WorkerNode::Start() { parts_->serving.Start(parts_->threads()); }

void WorkerNode::Stop() {
  if (parts_->stopped) return;
  // The server stops on its io_context: serve, if never started, while it does.
  if (!parts_->serving.started()) Start();
  parts_->stopped = true;
  if (!parts_->server->Stop()) spdlog::warn("connections still open after 5 s; stopping anyway");
  parts_->serving.Stop();
  parts_->CloseAfterServing();
}

}  // namespace das::worker
