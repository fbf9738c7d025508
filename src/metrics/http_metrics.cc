#include "metrics/http_metrics.h"

#include <chrono>
#include <utility>

namespace das::metrics {
namespace {

constexpr char kRequests[] = "das_http_requests_total";
constexpr char kRequestsHelp[] = "HTTP requests answered, by route and status code";
constexpr char kLatency[] = "das_http_request_duration_seconds";
constexpr char kLatencyHelp[] =
    "Time from a request read whole (head and body) to its answer being ready, by route";

}  // namespace

HttpMetrics::HttpMetrics(Registry& registry, const http::Router& router)
    : registry_(registry), router_(router) {
  auto init = [&](Route& route, std::string name) {
    route.latency =
        &registry_.Histogram(kLatency, kLatencyHelp, LatencyBuckets(), {{"route", name}});
    route.name = std::move(name);
  };
  for (std::string& pattern : router.Patterns()) {
    auto route = std::make_unique<Route>();
    init(*route, pattern);
    routes_.emplace(std::move(pattern), std::move(route));
  }
  init(other_, "other");
}

void HttpMetrics::Count(Route& route, unsigned status, double seconds) {
  route.latency->Observe(seconds);
  if (status < 100 || status > 599) status = 599;
  std::atomic<prometheus::Counter*>& slot = route.requests[status - 100];
  prometheus::Counter* counter = slot.load(std::memory_order_acquire);
  if (counter == nullptr) {
    // The registry gives every caller the same counter for the same labels.
    counter = &registry_.Counter(kRequests, kRequestsHelp,
                                 {{"route", route.name}, {"code", std::to_string(status)}});
    slot.store(counter, std::memory_order_release);
  }
  counter->Increment();
}

boost::asio::awaitable<http::Response> HttpMetrics::Handle(http::Request request) {
  const auto started = std::chrono::steady_clock::now();
  const std::string_view pattern = router_.RouteOf(request.target);
  auto found = routes_.find(pattern);
  Route& route = found == routes_.end() ? other_ : *found->second;
  boost::asio::awaitable<http::Response> answer = router_.Handle(std::move(request));
  http::Response response = co_await std::move(answer);
  Count(route, response.status,
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  co_return response;
}

}  // namespace das::metrics
