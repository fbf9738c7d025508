// The control node's public API (DESIGN.md section 3) as a request -> response function.
//
// Inserts are validated, routed by the cluster map and written through one ShardWriter per
// worker; analytics are scattered to every worker with a deadline and merged exactly; health
// asks every worker. Handle() is what the HTTP server calls; tests call it without a socket.
// Thread-safety: Handle() may run concurrently on any number of threads.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "common/status.h"
#include "control/cluster_map.h"
#include "http/message.h"

namespace das::control {

struct ControlOptions {
  std::vector<WorkerAddress> workers;
  std::chrono::milliseconds analytics_deadline{1500};
  std::chrono::milliseconds insert_deadline{2000};
  std::chrono::milliseconds health_deadline{1000};
  size_t connections_per_worker = 16;
  size_t max_inflight_per_worker = 1;
};

class ControlService {
 public:
  static Result<std::unique_ptr<ControlService>> Create(boost::asio::any_io_executor executor,
                                                        ControlOptions options);
  virtual ~ControlService() = default;
  ControlService(const ControlService&) = delete;
  ControlService& operator=(const ControlService&) = delete;

  virtual boost::asio::awaitable<http::Response> Handle(http::Request request) = 0;

  // Closes the connections to the workers; later requests answer 503.
  virtual void Stop() = 0;

 protected:
  ControlService() = default;
};

}  // namespace das::control
