// HttpMetrics: every answered HTTP request of one server, by route and status code, and its
// latency by route (das_http_requests_total, das_http_request_duration_seconds). The route
// label is the router's registered path or prefix ("other" for a path no route matches), never
// the raw path, so a client cannot grow the label set.
// Thread-safety: Handle may run concurrently. The registry and router outlive it.
#pragma once

#include <array>
#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include <boost/asio/awaitable.hpp>

#include "http/message.h"
#include "http/router.h"
#include "metrics/registry.h"

namespace das::metrics {

class HttpMetrics {
 public:
  // REQUIRES: every route is registered on `router`.
  HttpMetrics(Registry& registry, const http::Router& router);
  HttpMetrics(const HttpMetrics&) = delete;
  HttpMetrics& operator=(const HttpMetrics&) = delete;

  // Answers `request` through the router and counts it.
  boost::asio::awaitable<http::Response> Handle(http::Request request);

 private:
  struct Route {
    std::string name;
    prometheus::Histogram* latency = nullptr;
    // By status code (100..599), created at its first use.
    std::array<std::atomic<prometheus::Counter*>, 500> requests{};
  };
  void Count(Route& route, unsigned status, double seconds);

  Registry& registry_;
  const http::Router& router_;
  std::map<std::string, std::unique_ptr<Route>, std::less<>> routes_;  // by pattern; fixed
  Route other_;
};

}  // namespace das::metrics
