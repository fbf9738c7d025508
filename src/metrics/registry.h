// Registry: one process's metrics (README, "Metrics") on prometheus-cpp's core
// library, and their exposition in the Prometheus text format 0.0.4 for GET /metrics (served by our
// own HTTP server: prometheus-cpp's civetweb exposer is not used).
//
// Two kinds of metric live here:
//  - counters, gauges and histograms the code updates as things happen (Counter(), Gauge(),
//    Histogram(): prometheus-cpp's own types; updating one is a few atomic operations, a
//    histogram's also a short mutex);
//  - values that already exist elsewhere (a raft group's term, a queue's depth) read at each
//    scrape by a Collector, so nothing on the hot path maintains them.
//
// Names follow Prometheus conventions: the das_ prefix, base units (seconds, bytes), _total
// for counters. Every metric is documented in the README's Metrics section.
// Thread-safety: every method may be called from any thread; AddCollector before serving.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>

namespace das::metrics {

using Labels = std::map<std::string, std::string>;

// One family of values read at scrape time.
struct ScrapedFamily {
  enum class Kind { kCounter, kGauge };
  struct Sample {
    Labels labels;
    double value = 0;
  };
  std::string name;
  std::string help;
  Kind kind = Kind::kGauge;
  std::vector<Sample> samples;
};
// Called at every scrape, on the scraping request's thread; must not block for long.
using Collector = std::function<std::vector<ScrapedFamily>()>;

// The Content-Type of the exposition.
inline constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

// Bucket upper bounds: latencies in seconds (0.25 ms to 10 s), and counts (1 to 1M rows).
std::vector<double> LatencyBuckets();
std::vector<double> CountBuckets();

class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // The metric of family `name` with `labels`, created on first use; the same name and labels
  // give the same metric. REQUIRES: a valid metric name, used with one kind and help only.
  prometheus::Counter& Counter(const std::string& name, const std::string& help,
                               const Labels& labels = {});
  prometheus::Gauge& Gauge(const std::string& name, const std::string& help,
                           const Labels& labels = {});
  prometheus::Histogram& Histogram(const std::string& name, const std::string& help,
                                   const std::vector<double>& buckets, const Labels& labels = {});

  void AddCollector(Collector collector);

  // Every metric in the text format 0.0.4, families sorted by name, with `gathered`: families
  // the caller read at this scrape without blocking a thread (a raft group's, read on its loop).
  std::string Exposition(std::vector<ScrapedFamily> gathered = {}) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace das::metrics
