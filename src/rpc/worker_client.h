// WorkerClient: the typed client of one worker's internal API (rpc/routes.h), over a pool of
// kept-alive HTTP connections. It owns the route names and the encoding; callers get decoded
// messages or a Status whose code is the worker's own (rpc/status_wire.h), or kUnavailable /
// kDeadlineExceeded when the worker could not be reached in time.
// Thread-safety: every method may be called from any thread and coroutine concurrently.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "common/status.h"
#include "das/v1/internal.pb.h"
#include "rpc/cluster_auth.h"
#include "rpc/write_target.h"

namespace das::rpc {

struct WorkerClientOptions {
  std::string host;
  uint16_t port = 0;
  size_t max_connections = 16;
  // Signs every request with the cluster secret (null: none, for a worker without one).
  std::shared_ptr<const ClusterKey> cluster_key;
  // WriteShard: exchanges at once; the writes queued meanwhile leave together in the next.
  size_t shard_writes_in_flight = 1;
};

class WorkerClient : public WriteTarget {
 public:
  static std::unique_ptr<WorkerClient> Create(boost::asio::any_io_executor executor,
                                              WorkerClientOptions options);
  virtual ~WorkerClient() = default;
  WorkerClient(const WorkerClient&) = delete;
  WorkerClient& operator=(const WorkerClient&) = delete;

  // peer(): "host:port"; Write(): POST /internal/v1/write (WriteTarget; request.shard set).
  // A replicated shard's write (request.shard set), merged with the other shards' writes to
  // this worker queued while an exchange runs into one POST /internal/v1/shard/writes: under
  // load one round trip carries every shard this worker leads. The outcome is the shard's own
  // (NOT_LEADER with its hint, ...); a failed exchange fails each of its writes.
  virtual boost::asio::awaitable<Result<internal::v1::WriteResponse>> WriteShard(
      const internal::v1::WriteRequest& request, std::chrono::milliseconds timeout) = 0;
  virtual boost::asio::awaitable<Result<internal::v1::WorkerHealthResponse>> Health(
      std::chrono::milliseconds timeout) = 0;
  // The worker's wall clock (control/clock_probe.h measures its offset).
  virtual boost::asio::awaitable<Result<internal::v1::ClockResponse>> Clock(
      std::chrono::milliseconds timeout) = 0;
  // A shard's part of a query (query.shard set), read at the shard's leader.
  virtual boost::asio::awaitable<Result<internal::v1::ShardQueryResponse>> Query(
      const internal::v1::ShardQuery& query, std::chrono::milliseconds timeout) = 0;
  // Replicated shards: the topology, a shard's linearizable read, a leadership transfer.
  virtual boost::asio::awaitable<Result<internal::v1::TopologyResponse>> Topology(
      const internal::v1::TopologyRequest& request, std::chrono::milliseconds timeout) = 0;
  virtual boost::asio::awaitable<Result<internal::v1::TransferResponse>> Transfer(
      uint32_t shard, uint64_t to, std::chrono::milliseconds timeout) = 0;
  // POST /internal/v1/join, sent to the control node by a worker started with --join (the
  // control node answers the internal protocol on this one route).
  virtual boost::asio::awaitable<Result<internal::v1::JoinResponse>> Join(
      const internal::v1::JoinRequest& request, std::chrono::milliseconds timeout) = 0;
  // One membership step of a shard, at its leader (docs/operations.md, "Membership").
  virtual boost::asio::awaitable<Result<internal::v1::MembershipResponse>> Membership(
      const internal::v1::MembershipRequest& request, std::chrono::milliseconds timeout) = 0;
  // A copy of the worker's replica of `shard` (at an applied index of at least `min_index`),
  // then its bytes, chunk by chunk (replica/copy_fetcher.h).
  virtual boost::asio::awaitable<Result<internal::v1::CopyResponse>> StartCopy(
      uint32_t shard, uint64_t min_index, std::chrono::milliseconds timeout) = 0;
  virtual boost::asio::awaitable<Result<internal::v1::CopyChunkResponse>> CopyChunk(
      uint32_t shard, uint64_t copy_id, uint64_t offset, std::chrono::milliseconds timeout) = 0;
  // The unreplicated store an older build kept, a page at a time, for its import into the shards
  // (control/legacy_import.h); LegacyDone when every page is in them.
  virtual boost::asio::awaitable<Result<internal::v1::LegacyRowsResponse>> LegacyRows(
      const internal::v1::LegacyPageRequest& request, std::chrono::milliseconds timeout) = 0;
  virtual boost::asio::awaitable<Result<internal::v1::LegacyKeysResponse>> LegacyKeys(
      const internal::v1::LegacyPageRequest& request, std::chrono::milliseconds timeout) = 0;
  virtual boost::asio::awaitable<Result<internal::v1::LegacyDoneResponse>> LegacyDone(
      std::chrono::milliseconds timeout) = 0;

  // Closes idle connections; later calls fail with kShuttingDown.
  virtual void Close() = 0;

 protected:
  WorkerClient() = default;
};

}  // namespace das::rpc
