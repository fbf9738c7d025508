#include "worker/service.h"

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>

#include <google/protobuf/util/json_util.h>
#include <spdlog/spdlog.h>
#include <boost/asio/append.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "common/clock.h"
#include "common/validation.h"
#include "das/v1/das.pb.h"
#include "das/v1/internal.pb.h"
#include "http/await.h"
#include "metrics/process_metrics.h"
#include "metrics/replica_metrics.h"
#include "query/shard_query.h"
#include "rpc/arena.h"
#include "rpc/routes.h"
#include "rpc/status_wire.h"
#include "rpc/topology.h"

namespace das::worker {

namespace asio = boost::asio;
using internal::v1::SubBatchResult;
using query::QueryStore;

namespace {

// The router's own errors (400, 404, 405) as ErrorStatus bodies.
http::Response RouterError(const http::Request&, const Status& error) {
  return rpc::ErrorResponse(error);
}

// A shard-writes request carries at most this many writes, and waits at most this long for
// them (less when the control node says so).
constexpr size_t kMaxShardWrites = 1024;
constexpr std::chrono::milliseconds kShardWritesBound{10000};

// Awaits a store operation that reports through a callback on one of the store's threads,
// resuming the coroutine on its own executor.
template <typename T, typename Start>
asio::awaitable<Result<T>> AwaitStore(Start start) {
  return http::AwaitCallback<Result<T>>(std::move(start));
}

// Checks every sub-batch of the request: one with a bad row is answered INVALID_ARGUMENT in
// `response` and left out. Every sub-batch gets its result in `response`, in order; returns
// the indices of the valid ones.
std::vector<size_t> Validate(const internal::v1::WriteRequest& request,
                             internal::v1::WriteResponse& response) {
  std::vector<size_t> valid;
  valid.reserve(static_cast<size_t>(request.batches_size()));
  for (int i = 0; i < request.batches_size(); ++i) {
    const internal::v1::SubBatch& in = request.batches(i);
    SubBatchResult* result = response.add_results();
    Status invalid = ValidateIdempotencyKey(in.idempotency_key());
    for (int r = 0; invalid.ok() && r < in.rows_size(); ++r) {
      const internal::v1::RowWire& row = in.rows(r);
      invalid = ValidateRow(row.partition_key(),
                            row.has_value() ? std::optional<double>(row.value()) : std::nullopt);
    }
    if (invalid.ok() && in.row_ingest_us_size() != 0 && in.row_ingest_us_size() != in.rows_size()) {
      invalid = InvalidArgument("row_ingest_us has " + std::to_string(in.row_ingest_us_size()) +
                                " times for " + std::to_string(in.rows_size()) + " rows");
    }
    if (!invalid.ok()) {
      result->set_code(SubBatchResult::INVALID_ARGUMENT);
      result->set_error(invalid.message());
      continue;
    }
    valid.push_back(static_cast<size_t>(i));
  }
  return valid;
}

SubBatchResult::Code ToWire(storage::SubBatchOutcome::Code code) {
  switch (code) {
    case storage::SubBatchOutcome::Code::kOk:
      return SubBatchResult::OK;
    case storage::SubBatchOutcome::Code::kDuplicate:
      return SubBatchResult::DUPLICATE;
    case storage::SubBatchOutcome::Code::kKeyConflict:
      return SubBatchResult::KEY_CONFLICT;
  }
  return SubBatchResult::INVALID_ARGUMENT;
}

template <typename Message>
std::optional<Message> Parse(const http::Request& request) {
  Message message;
  if (!message.ParseFromString(request.body)) return std::nullopt;
  return message;
}

http::Response Undecodable(const google::protobuf::MessageLite& message) {
  return rpc::ErrorResponse(Malformed("body is not a valid " + message.GetTypeName()));
}

}  // namespace

WorkerService::WorkerService(replica::ReplicaHost& replicas, const storage::NodeStore& store,
                             WorkerServiceOptions options)
    : worker_id_(options.worker_id),
      replicas_(replicas),
      store_(store),
      legacy_store_(options.legacy),
      raft_port_(options.raft_port),
      cluster_key_(std::move(options.cluster_key)),
      router_(&RouterError),
      metrics_(options.metrics),
      changes_(std::make_unique<asio::thread_pool>(1)) {
  if (cluster_key_) {
    router_.Use([this](http::Request request, http::Target target, const http::RouteHandler& next) {
      return Authenticate(std::move(request), std::move(target), next);
    });
  }
  router_.Add("POST", rpc::kTopologyPath,
              [this](http::Request request, http::Target) { return Topology(std::move(request)); });
  router_.Add("POST", rpc::kTransferPath,
              [this](http::Request request, http::Target) { return Transfer(std::move(request)); });
  router_.Add("POST", rpc::kCopyPath, [this](http::Request request, http::Target) {
    return StartCopy(std::move(request));
  });
  router_.Add("POST", rpc::kCopyChunkPath, [this](http::Request request, http::Target) {
    return CopyChunk(std::move(request));
  });
  router_.Add("POST", rpc::kMembershipPath, [this](http::Request request, http::Target) {
    return Membership(std::move(request));
  });
  router_.Add("POST", rpc::kShardWritesPath, [this](http::Request request, http::Target) {
    return ShardWrites(std::move(request));
  });
  legacy_ = std::make_unique<LegacyExport>(legacy_store_, options.data_dir,
                                           [this] { return replicas_.cluster_id() != 0; });
  legacy_->Register(router_);
  router_.Add("POST", rpc::kQueryPath,
              [this](http::Request request, http::Target) { return Query(std::move(request)); });
  router_.Add("POST", rpc::kWritePath,
              [this](http::Request request, http::Target) { return Write(std::move(request)); });
  router_.Add("GET", rpc::kHealthPath,
              [this](http::Request, http::Target) { return Health(true); });
  router_.Add("GET", rpc::kClockPath,
              [](http::Request, http::Target) -> asio::awaitable<http::Response> {
                internal::v1::ClockResponse clock;
                clock.set_wall_time_us(Clock::Real().WallMicros());
                co_return rpc::ProtobufResponse(clock);
              });
  router_.Add(
      "GET", "/health", [this](http::Request, http::Target) { return Health(false); },
      http::RouteOptions{{"format"}});
  if (metrics_ != nullptr) AddMetrics();
}

WorkerService::~WorkerService() = default;

void WorkerService::AddMetrics() {
  router_.Add("GET", "/metrics", [this](http::Request, http::Target) { return Metrics(); });
  http_metrics_ = std::make_unique<metrics::HttpMetrics>(*metrics_, router_);
  metrics::AddProcessMetrics(*metrics_);
  write_rows_ = &metrics_->Histogram("das_internal_write_rows",
                                     "Rows per internal write request received (its _sum: every "
                                     "row received, duplicates and retries included)",
                                     metrics::CountBuckets());
  write_bytes_ = &metrics_->Counter("das_internal_write_bytes_total",
                                    "Bytes of internal write request bodies received");
}

// The families of the store and the replicas, read at a scrape.
std::vector<metrics::ScrapedFamily> WorkerService::StoreFamilies(
    const std::vector<internal::v1::ReplicaHealth>& replicas) const {
  std::vector<metrics::ScrapedFamily> families = metrics::ReplicaFamilies(replicas);
  metrics::ScrapedFamily& queues = families.emplace_back();
  queues.name = "das_store_queue_depth";
  queues.help = "Writes (raft entries) queued for a store's writer, not yet in a transaction";
  if (legacy_store_ != nullptr) {
    queues.samples.push_back(
        {{{"shard", "unreplicated"}}, static_cast<double>(legacy_store_->queue_depth())});
  }
  for (const internal::v1::ReplicaHealth& replica : replicas) {
    queues.samples.push_back({{{"shard", std::to_string(replica.shard())}},
                              static_cast<double>(replica.queued_writes())});
  }
  const storage::DiskState disk = store_.disk();
  families.push_back({"das_store_disk_full",
                      "1 while the store's disk has less free space than --disk-reserve-mb "
                      "(nothing is written until there is room), else 0",
                      metrics::ScrapedFamily::Kind::kGauge,
                      {{{}, disk.full ? 1.0 : 0.0}}});
  families.push_back({"das_store_disk_free_bytes",
                      "Free bytes on the store's disk, as the disk guard last measured them",
                      metrics::ScrapedFamily::Kind::kGauge,
                      {{{}, static_cast<double>(disk.free_bytes)}}});
  return families;
}

asio::awaitable<std::vector<internal::v1::ReplicaHealth>> WorkerService::ReplicasHealth() {
  auto start = [this](auto done) { replicas_.Health(std::move(done)); };
  asio::awaitable<std::vector<internal::v1::ReplicaHealth>> op =
      http::AwaitCallback<std::vector<internal::v1::ReplicaHealth>>(std::move(start));
  co_return co_await std::move(op);
}

asio::awaitable<http::Response> WorkerService::Metrics() {
  asio::awaitable<std::vector<internal::v1::ReplicaHealth>> read = ReplicasHealth();
  const std::vector<internal::v1::ReplicaHealth> replicas = co_await std::move(read);
  http::Response response;
  response.body = metrics_->Exposition(StoreFamilies(replicas));
  response.content_type = std::string(metrics::kContentType);
  co_return response;
}

asio::awaitable<http::Response> WorkerService::Handle(http::Request request) {
  if (http_metrics_) {
    asio::awaitable<http::Response> counted = http_metrics_->Handle(std::move(request));
    co_return co_await std::move(counted);
  }
  asio::awaitable<http::Response> answer = router_.Handle(std::move(request));
  co_return co_await std::move(answer);
}

asio::awaitable<http::Response> WorkerService::Authenticate(http::Request request,
                                                            http::Target target,
                                                            const http::RouteHandler& next) {
  if (target.path.starts_with("/internal/")) {
    const Status proven = cluster_key_->Verify(request, std::chrono::system_clock::now());
    if (!proven.ok()) {
      const std::string_view peer(request.peer);
      const std::string_view host = peer.substr(0, peer.rfind(':'));
      if (const std::optional<uint64_t> held_back =
              refusals_.Admit(host, std::chrono::steady_clock::now())) {
        spdlog::warn("refused {} {} from {}: {}{}", request.method, target.path,
                     peer.empty() ? "an unknown peer" : peer, proven.message(),
                     *held_back == 0 ? std::string()
                                     : " (" + std::to_string(*held_back) +
                                           " more from it since the last such line)");
      }
      co_return rpc::Unauthenticated("worker " + std::to_string(worker_id_), proven);
    }
  }
  asio::awaitable<http::Response> answer = next(std::move(request), std::move(target));
  co_return co_await std::move(answer);
}

asio::awaitable<http::Response> WorkerService::Write(http::Request request) {
  internal::v1::WriteRequest write;
  if (!write.ParseFromString(request.body)) {
    co_return rpc::ErrorResponse(Malformed("body is not a valid das.internal.v1.WriteRequest"));
  }
  if (write_rows_ != nullptr) {
    size_t rows = 0;
    for (const internal::v1::SubBatch& batch : write.batches()) rows += batch.rows_size();
    write_rows_->Observe(static_cast<double>(rows));
    write_bytes_->Increment(static_cast<double>(request.body.size()));
  }
  if (!write.has_shard()) {
    co_return rpc::ErrorResponse(
        InvalidArgument("a write names no shard: this worker keeps rows in shard replicas only"));
  }
  asio::awaitable<http::Response> replicated = WriteReplicated(write);
  co_return co_await std::move(replicated);
}

asio::awaitable<http::Response> WorkerService::Health(bool internal) {
  // The replicas' running aggregates' counts: no table scan for a health check.
  uint64_t rows = 0;
  asio::awaitable<std::vector<internal::v1::ReplicaHealth>> read = ReplicasHealth();
  std::vector<internal::v1::ReplicaHealth> replicas = co_await std::move(read);
  for (const internal::v1::ReplicaHealth& replica : replicas) rows += replica.rows();
  if (internal) {
    internal::v1::WorkerHealthResponse response;
    response.set_worker_id(worker_id_);
    response.set_rows(rows);
    response.set_raft_port(raft_port_);
    const storage::DiskState disk = store_.disk();
    response.set_disk_full(disk.full);
    response.set_disk_free_bytes(disk.free_bytes);
    response.set_disk_reserve_bytes(disk.reserve_bytes);
    response.set_cluster_id(replicas_.cluster_id());
    response.set_epoch(replicas_.epoch());
    for (internal::v1::ReplicaHealth& replica : replicas)
      *response.add_replicas() = std::move(replica);
    co_return rpc::ProtobufResponse(response);
  }
  // For people and container health checks: JSON, whatever was asked.
  das::v1::HealthResponse response;
  const storage::DiskState disk = store_.disk();
  response.set_status(disk.full ? "disk full" : "ok");
  response.set_node("worker-" + std::to_string(worker_id_));
  das::v1::WorkerStatus* self = response.add_workers();
  self->set_worker_id(worker_id_);
  self->set_healthy(true);
  self->set_rows(rows);
  self->set_disk_full(disk.full);
  if (disk.full) self->set_error(rpc::DiskFullMessage(disk.free_bytes, disk.reserve_bytes));
  http::Response r;
  r.content_type = "application/json";
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(response, &r.body, options);
  co_return r;
}

void WorkerService::StartReplicated(internal::v1::WriteRequest& write, ReplicatedDone done) {
  auto response = std::make_shared<internal::v1::WriteResponse>();
  std::vector<size_t> sent = Validate(write, *response);
  if (sent.empty()) {
    done(std::move(*response));
    return;
  }
  // The sub-batches as they came: the shard's raft entry carries them without a conversion.
  std::vector<const internal::v1::SubBatch*> batches;
  batches.reserve(sent.size());
  for (size_t i : sent) batches.push_back(&write.batches(static_cast<int>(i)));
  replicas_.Write(
      write.shard(), write.request_id(), write.ingest_time_us(), batches,
      [response, sent = std::move(sent),
       done = std::move(done)](Result<std::vector<storage::SubBatchOutcome>> outcomes) {
        if (!outcomes.ok()) {
          done(std::move(outcomes).status());
          return;
        }
        if (outcomes->size() != sent.size()) {
          done(Internal("the shard answered " + std::to_string(outcomes->size()) +
                        " outcomes for " + std::to_string(sent.size()) + " sub-batches"));
          return;
        }
        for (size_t i = 0; i < sent.size(); ++i) {
          SubBatchResult* result = response->mutable_results(static_cast<int>(sent[i]));
          result->set_code(ToWire((*outcomes)[i].code));
          result->set_rows_written((*outcomes)[i].rows_written);
        }
        done(std::move(*response));
      });
}

asio::awaitable<http::Response> WorkerService::WriteReplicated(internal::v1::WriteRequest& write) {
  auto start = [this, &write](auto done) { StartReplicated(write, std::move(done)); };
  asio::awaitable<Result<internal::v1::WriteResponse>> op =
      AwaitStore<internal::v1::WriteResponse>(std::move(start));
  Result<internal::v1::WriteResponse> response = co_await std::move(op);
  if (!response.ok()) co_return rpc::ErrorResponse(response.status());
  co_return rpc::ProtobufResponse(*response);
}

asio::awaitable<http::Response> WorkerService::ShardWrites(http::Request request) {
  // Decoded on an arena (freed whole when the writes are answered): the rows are read, then
  // encoded into their shards' raft entries, never copied one by one.
  google::protobuf::Arena arena(rpc::DecodeArena(request.body.size()));
  auto& writes = *google::protobuf::Arena::CreateMessage<internal::v1::ShardWritesRequest>(&arena);
  if (!writes.ParseFromString(request.body)) {
    co_return Undecodable(internal::v1::ShardWritesRequest());
  }
  if (writes.writes_size() > static_cast<int>(kMaxShardWrites)) {
    co_return rpc::ErrorResponse(InvalidArgument(std::to_string(writes.writes_size()) +
                                                 " writes in one request; at most " +
                                                 std::to_string(kMaxShardWrites)));
  }
  const std::chrono::milliseconds bound =
      writes.timeout_ms() == 0
          ? kShardWritesBound
          : std::min(kShardWritesBound, std::chrono::milliseconds(writes.timeout_ms()));
  // The outcomes are filled on this coroutine's strand (each completion is posted to it), and
  // the timer is cancelled there when the last one arrives; the state outlives a request that
  // gave up waiting.
  struct Gather {
    explicit Gather(asio::any_io_executor executor, size_t n)
        : outcomes(n), remaining(n), timer(std::move(executor)) {}
    std::vector<std::optional<Result<internal::v1::WriteResponse>>> outcomes;
    size_t remaining;
    asio::steady_timer timer;
  };
  const asio::any_io_executor strand = co_await asio::this_coro::executor;
  const size_t n = static_cast<size_t>(writes.writes_size());
  auto gather = std::make_shared<Gather>(strand, n);
  for (size_t i = 0; i < n; ++i) {
    internal::v1::WriteRequest& write = *writes.mutable_writes(static_cast<int>(i));
    if (write_rows_ != nullptr) {
      size_t rows = 0;
      for (const internal::v1::SubBatch& batch : write.batches()) rows += batch.rows_size();
      write_rows_->Observe(static_cast<double>(rows));
    }
    ReplicatedDone done = [gather, strand, i](Result<internal::v1::WriteResponse> outcome) {
      asio::post(strand, [gather, i, outcome = std::move(outcome)]() mutable {
        gather->outcomes[i] = std::move(outcome);
        if (--gather->remaining == 0) gather->timer.cancel();
      });
    };
    if (!write.has_shard()) {
      done(InvalidArgument("a write of a shard-writes request names no shard"));
    } else {
      StartReplicated(write, std::move(done));
    }
  }
  if (write_bytes_ != nullptr) write_bytes_->Increment(static_cast<double>(request.body.size()));
  if (gather->remaining > 0) {
    gather->timer.expires_after(bound);
    auto [ignored] = co_await gather->timer.async_wait(asio::as_tuple(asio::use_awaitable));
    (void)ignored;
  }
  internal::v1::ShardWritesResponse response;
  for (size_t i = 0; i < n; ++i) {
    internal::v1::ShardWriteOutcome* out = response.add_outcomes();
    std::optional<Result<internal::v1::WriteResponse>>& outcome = gather->outcomes[i];
    if (!outcome) {
      *out->mutable_error() = rpc::ToWire(DeadlineExceeded(
          "shard " + std::to_string(writes.writes(static_cast<int>(i)).shard()) +
          " did not commit the write within " + std::to_string(bound.count()) + " ms"));
    } else if (!outcome->ok()) {
      *out->mutable_error() = rpc::ToWire(outcome->status());
    } else {
      *out->mutable_response() = std::move(**outcome);
    }
  }
  co_return rpc::ProtobufResponse(response);
}

asio::awaitable<http::Response> WorkerService::Topology(http::Request request) {
  std::optional<internal::v1::TopologyRequest> topology =
      Parse<internal::v1::TopologyRequest>(request);
  if (!topology) co_return Undecodable(internal::v1::TopologyRequest());
  // Opening replicas takes a while (their tables, raft logs) and closing one waits for its
  // store: on the changes thread, so that this HTTP thread goes on serving writes and reads.
  auto start = [this, topology = std::move(*topology)](auto done) mutable {
    asio::post(*changes_, [this, topology = std::move(topology), done = std::move(done)] {
      Status adopted = replicas_.Adopt(topology);
      if (adopted.ok()) return done(Result<bool>(true));
      done(Result<bool>(std::move(adopted)));
    });
  };
  asio::awaitable<Result<bool>> op = AwaitStore<bool>(std::move(start));
  Result<bool> adopted = co_await std::move(op);
  if (!adopted.ok()) {
    spdlog::error("topology refused: {}", adopted.status().ToString());
    co_return rpc::ErrorResponse(adopted.status());
  }
  co_return rpc::ProtobufResponse(internal::v1::TopologyResponse());
}

asio::awaitable<http::Response> WorkerService::Query(http::Request request) {
  std::optional<internal::v1::ShardQuery> query = Parse<internal::v1::ShardQuery>(request);
  if (!query) co_return Undecodable(internal::v1::ShardQuery());
  if (!query->has_shard()) {
    co_return rpc::ErrorResponse(
        InvalidArgument("a query names no shard: this worker keeps rows in shard replicas only"));
  }
  using Answer = internal::v1::ShardQueryResponse;
  auto start = [this, query = std::move(*query)](auto done) mutable {
    const uint32_t shard = query.shard();
    replicas_.ReadWith(shard,
                       [query = std::move(query), done](Result<storage::Store*> store) mutable {
                         if (!store.ok()) return done(Result<Answer>(std::move(store).status()));
                         QueryStore(**store, std::move(query), std::move(done));
                       });
  };
  asio::awaitable<Result<Answer>> op = AwaitStore<Answer>(std::move(start));
  Result<Answer> answer = co_await std::move(op);
  if (!answer.ok()) co_return rpc::ErrorResponse(answer.status());
  answer->set_worker_id(worker_id_);
  co_return rpc::ProtobufResponse(*answer);
}

asio::awaitable<http::Response> WorkerService::Transfer(http::Request request) {
  std::optional<internal::v1::TransferRequest> transfer =
      Parse<internal::v1::TransferRequest>(request);
  if (!transfer) co_return Undecodable(internal::v1::TransferRequest());
  auto start = [this, shard = transfer->shard(), to = transfer->to()](auto done) {
    replicas_.Transfer(shard, to, [done = std::move(done)](Status status) mutable {
      if (status.ok()) return done(Result<bool>(true));
      done(Result<bool>(std::move(status)));
    });
  };
  asio::awaitable<Result<bool>> op = AwaitStore<bool>(std::move(start));
  Result<bool> transferred = co_await std::move(op);
  if (!transferred.ok()) co_return rpc::ErrorResponse(transferred.status());
  co_return rpc::ProtobufResponse(internal::v1::TransferResponse());
}

asio::awaitable<http::Response> WorkerService::Membership(http::Request request) {
  std::optional<internal::v1::MembershipRequest> change =
      Parse<internal::v1::MembershipRequest>(request);
  if (!change) co_return Undecodable(internal::v1::MembershipRequest());
  // On the changes thread: it asks the raft loop for the group's role and members, waiting.
  auto start = [this, change = *change](auto done) {
    asio::post(*changes_, [this, change, done = std::move(done)] {
      replicas_.ChangeMembership(change, [done](Status status) {
        if (status.ok()) return done(Result<bool>(true));
        done(Result<bool>(std::move(status)));
      });
    });
  };
  asio::awaitable<Result<bool>> op = AwaitStore<bool>(std::move(start));
  Result<bool> changed = co_await std::move(op);
  if (!changed.ok()) co_return rpc::ErrorResponse(changed.status());
  co_return rpc::ProtobufResponse(internal::v1::MembershipResponse());
}

asio::awaitable<http::Response> WorkerService::StartCopy(http::Request request) {
  std::optional<internal::v1::CopyRequest> copy = Parse<internal::v1::CopyRequest>(request);
  if (!copy) co_return Undecodable(internal::v1::CopyRequest());
  auto start = [this, shard = copy->shard(), min_index = copy->min_index()](auto done) {
    replicas_.StartCopy(shard, min_index, std::move(done));
  };
  asio::awaitable<Result<internal::v1::CopyResponse>> op =
      AwaitStore<internal::v1::CopyResponse>(std::move(start));
  Result<internal::v1::CopyResponse> made = co_await std::move(op);
  if (!made.ok()) co_return rpc::ErrorResponse(made.status());
  co_return rpc::ProtobufResponse(*made);
}

asio::awaitable<http::Response> WorkerService::CopyChunk(http::Request request) {
  std::optional<internal::v1::CopyChunkRequest> chunk =
      Parse<internal::v1::CopyChunkRequest>(request);
  if (!chunk) co_return Undecodable(internal::v1::CopyChunkRequest());
  // At most 4 MiB read from a file the page cache most likely holds: done on this thread.
  Result<std::string> data =
      replicas_.ReadCopyChunk(chunk->shard(), chunk->copy_id(), chunk->offset());
  if (!data.ok()) co_return rpc::ErrorResponse(data.status());
  internal::v1::CopyChunkResponse response;
  response.set_data(std::move(*data));
  co_return rpc::ProtobufResponse(response);
}

}  // namespace das::worker
