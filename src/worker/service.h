// The worker's internal API, used by the control node only (HTTP + protobuf, das.internal.v1;
// routes named in rpc/routes.h). Every row the worker keeps is in a shard replica
// (docs/architecture.md; `replicas`), whatever the replication factor:
//
//   POST /internal/v1/topology         TopologyRequest -> TopologyResponse (kept, replicas open)
//   POST /internal/v1/write            WriteRequest with `shard` -> WriteResponse (one result per
//                                      sub-batch), proposed on the shard's raft group
//   POST /internal/v1/shard/writes     ShardWritesRequest -> ShardWritesResponse (several
//                                      shards' writes at once, an outcome each)
//   POST /internal/v1/query            ShardQuery with `shard` -> ShardQueryResponse (at the
//                                      leader)
//   POST /internal/v1/shard/transfer   TransferRequest -> TransferResponse
//   POST /internal/v1/shard/copy       CopyRequest -> CopyResponse (a copy made for a replica
//                                      behind its leader's log)
//   POST /internal/v1/shard/copy/chunk CopyChunkRequest -> CopyChunkResponse (its bytes)
//   POST /internal/v1/shard/membership MembershipRequest -> MembershipResponse (at the leader)
//   POST /internal/v1/legacy/{rows,keys,done}  the unreplicated store an older build kept, a page
//                                      at a time, for its import into the shards
//                                      (worker/legacy_export.h); empty when there is none
//   GET  /internal/v1/health           -> WorkerHealthResponse
//   GET  /internal/v1/clock            -> ClockResponse
//   GET  /health                       -> das.v1.HealthResponse as JSON, for people and containers
//   GET  /metrics                      -> Prometheus text format (with a metrics registry)
//
// With a cluster secret (`cluster_key`), a request to any /internal/ route must carry its
// signature (rpc/cluster_auth.h): one that does not is answered 401 (an ErrorStatus UNAVAILABLE
// saying why) and logged with the peer's address, at most one line a peer every 10 s. /health
// stays open, for orchestrators.
//
// Every failure is answered with an ErrorStatus (rpc/status_wire.h) whose code the control node
// acts on. Rows are re-validated here (the same limits as the public API): a sub-batch with a
// bad row is rejected alone, without touching the others. Handle() never blocks: store work
// runs on the store's threads, raft work on the raft loop, and topology and membership changes
// (which open and close replicas, and ask the raft loop and wait) on a thread of their own, one
// change at a time; each is awaited.
// Thread-safety: Handle() may run concurrently. The replica host, the node store and the
// legacy store outlive the service.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <boost/asio/awaitable.hpp>

namespace boost::asio {
class thread_pool;
}

#include "common/log.h"
#include "das/v1/internal.pb.h"
#include "http/message.h"
#include "http/router.h"
#include "metrics/http_metrics.h"
#include "metrics/registry.h"
#include "replica/replica_host.h"
#include "rpc/cluster_auth.h"
#include "storage/node_store.h"
#include "storage/store.h"
#include "worker/legacy_export.h"

namespace das::worker {

struct WorkerServiceOptions {
  uint32_t worker_id = 0;
  uint16_t raft_port = 0;  // what its health tells the control node (the port peers dial)
  std::shared_ptr<const rpc::ClusterKey> cluster_key;  // null: none
  metrics::Registry* metrics = nullptr;  // null: no /metrics, nothing counted; outlives it
  // The unreplicated store an older build kept (worker/legacy_export.h), offered for import
  // into the shards; null: none kept. `data_dir` is where the import leaves its marker.
  storage::Store* legacy = nullptr;
  std::string data_dir;
};

class WorkerService {
 public:
  // `replicas` hold the worker's rows; `store` is their database (its disk guard and queue).
  WorkerService(replica::ReplicaHost& replicas, const storage::NodeStore& store,
                WorkerServiceOptions options);
  ~WorkerService();
  WorkerService(const WorkerService&) = delete;
  WorkerService& operator=(const WorkerService&) = delete;

  boost::asio::awaitable<http::Response> Handle(http::Request request);

 private:
  boost::asio::awaitable<http::Response> Write(http::Request request);
  boost::asio::awaitable<http::Response> Health(bool internal);
  boost::asio::awaitable<http::Response> Metrics();
  void AddMetrics();
  // Every replica's health, read without blocking this thread (ReplicaHost::Health).
  boost::asio::awaitable<std::vector<internal::v1::ReplicaHealth>> ReplicasHealth();
  std::vector<metrics::ScrapedFamily> StoreFamilies(
      const std::vector<internal::v1::ReplicaHealth>& replicas) const;
  boost::asio::awaitable<http::Response> Topology(http::Request request);
  boost::asio::awaitable<http::Response> Query(http::Request request);
  boost::asio::awaitable<http::Response> Transfer(http::Request request);
  boost::asio::awaitable<http::Response> Membership(http::Request request);
  boost::asio::awaitable<http::Response> StartCopy(http::Request request);
  boost::asio::awaitable<http::Response> CopyChunk(http::Request request);
  boost::asio::awaitable<http::Response> WriteReplicated(internal::v1::WriteRequest& write);
  // Several replicated shards' writes in one exchange (rpc::kShardWritesPath).
  boost::asio::awaitable<http::Response> ShardWrites(http::Request request);
  // A replicated shard's write: sub-batches with a bad row are answered here, the others are
  // proposed on the shard's group. `done` gets the response (a result per sub-batch) or the
  // failure of the whole write, on a thread of the replica host (or at once).
  using ReplicatedDone = std::function<void(Result<internal::v1::WriteResponse>)>;
  void StartReplicated(internal::v1::WriteRequest& write, ReplicatedDone done);
  // The middleware that checks the cluster secret's signature on internal routes.
  boost::asio::awaitable<http::Response> Authenticate(http::Request request, http::Target target,
                                                      const http::RouteHandler& next);

  const uint32_t worker_id_;
  replica::ReplicaHost& replicas_;
  const storage::NodeStore& store_;
  storage::Store* const legacy_store_;
  const uint16_t raft_port_;
  const std::shared_ptr<const rpc::ClusterKey> cluster_key_;
  LogThrottle refusals_{std::chrono::seconds(10)};
  http::Router router_;
  metrics::Registry* const metrics_;
  std::unique_ptr<metrics::HttpMetrics> http_metrics_;  // with metrics_
  prometheus::Histogram* write_rows_ = nullptr;         // with metrics_
  prometheus::Counter* write_bytes_ = nullptr;          // with metrics_
  std::unique_ptr<LegacyExport> legacy_;
  // One thread for topology and membership changes; destroyed (joined) first.
  std::unique_ptr<boost::asio::thread_pool> changes_;
};

}  // namespace das::worker
