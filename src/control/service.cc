#include "control/service.h"

#include <spdlog/spdlog.h>

#include "control/aggregate.h"
#include "control/codec.h"
#include "control/gather.h"
#include "control/shard_writer.h"
#include "das/v1/das.pb.h"
#include "das/v1/internal.pb.h"
#include "http/client.h"

namespace das::control {

namespace asio = boost::asio;
using internal::v1::SubBatch;
using internal::v1::SubBatchResult;

namespace {

std::string_view PathOf(std::string_view target) { return target.substr(0, target.find('?')); }

http::Response MethodNotAllowed(const http::Request& request, std::string_view allow) {
  http::Response r = EncodeError(
      ApiError{405, "method " + request.method + " is not allowed on " +
                        std::string(PathOf(request.target)) + "; use " + std::string(allow)},
      ErrorEncoding(request));
  r.headers.emplace_back("Allow", std::string(allow));
  return r;
}

// What one worker's answer to a sub-batch means for the client.
struct PartAnswer {
  bool stored = false;  // OK or DUPLICATE: the rows are in the worker
  uint64_t rows = 0;
  ApiError error;
};

PartAnswer Interpret(const Result<SubBatchResult>& result, const std::string& worker) {
  if (!result.ok()) {
    return {false, 0,
            ApiError{503, "worker " + worker +
                              " cannot take the insert: " + result.status().ToString()}};
  }
  switch (result->code()) {
    case SubBatchResult::OK:
    case SubBatchResult::DUPLICATE:
      return {true, result->rows_written(), {}};
    case SubBatchResult::KEY_CONFLICT:
      return {false, 0, ApiError{422, "idempotency_key was already used for different rows"}};
    default:
      return {false, 0, ApiError{422, "worker " + worker + " rejected rows: " + result->error()}};
  }
}

class ControlServiceImpl final : public ControlService {
 public:
  ControlServiceImpl(asio::any_io_executor executor, ControlOptions options, ClusterMap map)
      : executor_(executor), options_(std::move(options)), map_(std::move(map)) {
    for (const WorkerAddress& w : map_.workers()) {
      http::ClientOptions client_options;
      client_options.host = w.host;
      client_options.port = w.port;
      client_options.max_connections = options_.connections_per_worker;
      clients_.push_back(http::Client::Create(executor, client_options));
      ShardWriterOptions writer_options;
      writer_options.max_inflight = options_.max_inflight_per_worker;
      writer_options.deadline = options_.insert_deadline;
      writers_.push_back(std::make_unique<ShardWriter>(executor, *clients_.back(), writer_options));
    }
  }

  asio::awaitable<http::Response> Handle(http::Request request) override {
    std::string_view path = PathOf(request.target);
    if (path == "/insert") {
      if (request.method != "POST") co_return MethodNotAllowed(request, "POST");
      asio::awaitable<http::Response> insert = Insert(std::move(request));
      co_return co_await std::move(insert);
    }
    if (path == "/insert/batch") {
      if (request.method != "POST") co_return MethodNotAllowed(request, "POST");
      asio::awaitable<http::Response> batch = InsertBatch(std::move(request));
      co_return co_await std::move(batch);
    }
    if (path == "/analytics") {
      if (request.method != "GET") co_return MethodNotAllowed(request, "GET");
      co_return co_await Analytics(request);
    }
    if (path == "/health") {
      if (request.method != "GET") co_return MethodNotAllowed(request, "GET");
      co_return co_await Health(request);
    }
    co_return EncodeError(ApiError{404, "no route " + std::string(path)}, ErrorEncoding(request));
  }

  void Stop() override {
    for (auto& client : clients_) client->Close();
  }

 private:
  asio::awaitable<http::Response> Insert(http::Request request) {
    Decoded<Encoding> body = BodyEncoding(request);
    if (auto* e = std::get_if<ApiError>(&body)) co_return EncodeError(*e, ErrorEncoding(request));
    Encoding answer = AnswerEncoding(request, std::get<Encoding>(body));
    Decoded<internal::v1::RowWire> row = DecodeInsert(request, std::get<Encoding>(body));
    if (auto* e = std::get_if<ApiError>(&row)) co_return EncodeError(*e, answer);

    auto& decoded = std::get<internal::v1::RowWire>(row);
    size_t worker = map_.WorkerFor(decoded.partition_key());
    SubBatch part;
    *part.add_rows() = std::move(decoded);
    asio::awaitable<Result<SubBatchResult>> write = writers_[worker]->Write(std::move(part));
    Result<SubBatchResult> written = co_await std::move(write);
    PartAnswer result = Interpret(written, clients_[worker]->peer());
    if (!result.stored) co_return EncodeError(result.error, answer);
    das::v1::InsertResponse response;
    response.set_rows_written(result.rows);
    co_return Encode(200, response, answer);
  }

  asio::awaitable<http::Response> InsertBatch(http::Request request) {
    Decoded<Encoding> body = BodyEncoding(request);
    if (auto* e = std::get_if<ApiError>(&body)) co_return EncodeError(*e, ErrorEncoding(request));
    Encoding answer = AnswerEncoding(request, std::get<Encoding>(body));
    Decoded<internal::v1::InsertBatchWire> decoded = DecodeBatch(request, std::get<Encoding>(body));
    if (auto* e = std::get_if<ApiError>(&decoded)) co_return EncodeError(*e, answer);
    auto& batch = std::get<internal::v1::InsertBatchWire>(decoded);

    // Split by worker; each worker's part is atomic there, with the batch's key.
    std::vector<SubBatch> parts(writers_.size());
    for (internal::v1::RowWire& row : *batch.mutable_rows()) {
      size_t worker = map_.WorkerFor(row.partition_key());
      parts[worker].mutable_rows()->Add(std::move(row));
    }
    std::vector<size_t> targets;
    std::vector<asio::awaitable<Result<SubBatchResult>>> writes;
    for (size_t w = 0; w < parts.size(); ++w) {
      if (parts[w].rows_size() == 0) continue;
      parts[w].set_idempotency_key(batch.idempotency_key());
      targets.push_back(w);
      writes.push_back(writers_[w]->Write(std::move(parts[w])));
    }
    asio::awaitable<std::vector<Result<SubBatchResult>>> gather_writes =
        GatherAll<SubBatchResult>(executor_, std::move(writes));
    std::vector<Result<SubBatchResult>> results = co_await std::move(gather_writes);

    uint64_t rows = 0;
    std::optional<ApiError> first_error;
    for (size_t i = 0; i < results.size(); ++i) {
      PartAnswer part = Interpret(results[i], clients_[targets[i]]->peer());
      if (part.stored) {
        rows += part.rows;
      } else if (!first_error || part.error.status == 422) {
        first_error = part.error;
      }
    }
    if (first_error) co_return EncodeError(*first_error, answer, rows);
    das::v1::InsertResponse response;
    response.set_rows_written(rows);
    co_return Encode(200, response, answer);
  }

  asio::awaitable<Result<PartialAggregate>> FetchAggregate(size_t worker) {
    http::Request request;
    request.method = "GET";
    request.target = "/internal/v1/aggregate";
    asio::awaitable<Result<http::Response>> send =
        clients_[worker]->Send(std::move(request), options_.analytics_deadline);
    Result<http::Response> answer = co_await std::move(send);
    const std::string& peer = clients_[worker]->peer();
    if (!answer.ok()) co_return answer.status();
    if (answer->status != 200) {
      co_return Unavailable("worker " + peer + " answered " + std::to_string(answer->status));
    }
    internal::v1::AggregateResponse body;
    if (!body.ParseFromString(answer->body)) {
      co_return Internal("worker " + peer + " sent an undecodable aggregate");
    }
    PartialAggregate partial{body.count(), body.sum(), body.sum_compensation(), std::nullopt,
                             std::nullopt};
    if (body.has_min()) partial.min = body.min();
    if (body.has_max()) partial.max = body.max();
    co_return partial;
  }

  asio::awaitable<http::Response> Analytics(const http::Request& request) {
    std::vector<asio::awaitable<Result<PartialAggregate>>> fetches;
    for (size_t w = 0; w < clients_.size(); ++w) fetches.push_back(FetchAggregate(w));
    asio::awaitable<std::vector<Result<PartialAggregate>>> gather_fetches =
        GatherAll<PartialAggregate>(executor_, std::move(fetches));
    std::vector<Result<PartialAggregate>> partials = co_await std::move(gather_fetches);

    AggregateMerger merger;
    uint32_t responding = 0;
    for (size_t w = 0; w < partials.size(); ++w) {
      if (!partials[w].ok()) {
        spdlog::warn("analytics: worker {} did not answer: {}", clients_[w]->peer(),
                     partials[w].status().ToString());
        continue;
      }
      ++responding;
      merger.Add(*partials[w]);
    }
    MergedAggregate merged = merger.Finish();
    das::v1::AnalyticsResponse response;
    if (merged.average) response.set_average(*merged.average);
    response.set_is_partial(responding < partials.size());
    response.set_total_nodes(static_cast<uint32_t>(partials.size()));
    response.set_responding_nodes(responding);
    response.set_count(merged.count);
    response.set_sum(merged.sum);
    if (merged.min) response.set_min(*merged.min);
    if (merged.max) response.set_max(*merged.max);
    co_return Encode(responding == 0 ? 503 : 200, response,
                     AnswerEncoding(request, Encoding::kProtobuf));
  }

  asio::awaitable<Result<internal::v1::WorkerHealthResponse>> FetchHealth(size_t worker) {
    http::Request request;
    request.method = "GET";
    request.target = "/internal/v1/health";
    asio::awaitable<Result<http::Response>> send =
        clients_[worker]->Send(std::move(request), options_.health_deadline);
    Result<http::Response> answer = co_await std::move(send);
    if (!answer.ok()) co_return answer.status();
    internal::v1::WorkerHealthResponse body;
    if (answer->status != 200 || !body.ParseFromString(answer->body)) {
      co_return Unavailable("answered " + std::to_string(answer->status));
    }
    co_return body;
  }

  asio::awaitable<http::Response> Health(const http::Request& request) {
    std::vector<asio::awaitable<Result<internal::v1::WorkerHealthResponse>>> fetches;
    for (size_t w = 0; w < clients_.size(); ++w) fetches.push_back(FetchHealth(w));
    asio::awaitable<std::vector<Result<internal::v1::WorkerHealthResponse>>> gather_fetches =
        GatherAll<internal::v1::WorkerHealthResponse>(executor_, std::move(fetches));
    std::vector<Result<internal::v1::WorkerHealthResponse>> results =
        co_await std::move(gather_fetches);
    das::v1::HealthResponse response;
    response.set_node("control");
    bool all_healthy = true;
    for (size_t w = 0; w < results.size(); ++w) {
      das::v1::WorkerStatus* status = response.add_workers();
      status->set_address(clients_[w]->peer());
      status->set_healthy(results[w].ok());
      if (results[w].ok()) {
        status->set_worker_id(results[w]->worker_id());
        status->set_rows(results[w]->rows());
      } else {
        all_healthy = false;
        status->set_error(results[w].status().ToString());
      }
    }
    response.set_status(all_healthy ? "ok" : "degraded");
    co_return Encode(200, response, AnswerEncoding(request, Encoding::kProtobuf));
  }

  asio::any_io_executor executor_;
  const ControlOptions options_;
  const ClusterMap map_;
  std::vector<std::unique_ptr<http::Client>> clients_;  // one per worker, in map order
  std::vector<std::unique_ptr<ShardWriter>> writers_;   // one per worker, in map order
};

}  // namespace

Result<std::unique_ptr<ControlService>> ControlService::Create(asio::any_io_executor executor,
                                                               ControlOptions options) {
  ASSIGN_OR_RETURN(ClusterMap map, ClusterMap::Create(options.workers));
  return std::unique_ptr<ControlService>(std::make_unique<ControlServiceImpl>(
      std::move(executor), std::move(options), std::move(map)));
}

}  // namespace das::control
