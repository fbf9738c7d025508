// The worker's internal API, used by the control node only (HTTP + protobuf, das.internal.v1;
// routes named in rpc/routes.h):
//
//   POST /internal/v1/write      WriteRequest -> WriteResponse (one result per sub-batch)
//   GET  /internal/v1/aggregate  -> AggregateResponse (count, exact sum, min, max)
//   GET  /internal/v1/health     -> WorkerHealthResponse
//   GET  /health                 -> das.v1.HealthResponse as JSON, for people and containers
//
// Every failure is answered with an ErrorStatus (rpc/status_wire.h) whose code the control node
// acts on. Rows are re-validated here (the same limits as the public API): a sub-batch with a
// bad row is rejected alone, without touching the others. Handle() never blocks: store work
// runs on the store's threads and is awaited.
// Thread-safety: Handle() may run concurrently. The store must outlive the service.
#pragma once

#include <cstdint>

#include <boost/asio/awaitable.hpp>

#include "http/message.h"
#include "http/router.h"
#include "worker/store.h"

namespace das::worker {

class WorkerService {
 public:
  WorkerService(uint32_t worker_id, Store& store);
  WorkerService(const WorkerService&) = delete;
  WorkerService& operator=(const WorkerService&) = delete;

  boost::asio::awaitable<http::Response> Handle(http::Request request);

 private:
  boost::asio::awaitable<http::Response> Write(http::Request request);
  boost::asio::awaitable<http::Response> Aggregate();
  boost::asio::awaitable<http::Response> Health(bool internal);

  const uint32_t worker_id_;
  Store& store_;
  http::Router router_;
};

}  // namespace das::worker
