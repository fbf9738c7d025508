#include "metrics/registry.h"

#include <algorithm>
#include <mutex>
#include <utility>

#include <prometheus/family.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "common/mutex.h"

namespace das::metrics {

std::vector<double> LatencyBuckets() {
  return {0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

std::vector<double> CountBuckets() { return {1, 10, 100, 1'000, 10'000, 100'000, 1'000'000}; }

struct Registry::Impl {
  prometheus::Registry registry;
  Mutex mu;
  std::vector<Collector> collectors GUARDED_BY(mu);
};

Registry::Registry() : impl_(std::make_unique<Impl>()) {}
Registry::~Registry() = default;

prometheus::Counter& Registry::Counter(const std::string& name, const std::string& help,
                                       const Labels& labels) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(impl_->registry).Add(labels);
}

prometheus::Gauge& Registry::Gauge(const std::string& name, const std::string& help,
                                   const Labels& labels) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(impl_->registry).Add(labels);
}

prometheus::Histogram& Registry::Histogram(const std::string& name, const std::string& help,
                                           const std::vector<double>& buckets,
                                           const Labels& labels) {
  return prometheus::BuildHistogram()
      .Name(name)
      .Help(help)
      .Register(impl_->registry)
      .Add(labels, buckets);
}

void Registry::AddCollector(Collector collector) {
  MutexLock lock(impl_->mu);
  impl_->collectors.push_back(std::move(collector));
}

namespace {

prometheus::MetricFamily ToFamily(ScrapedFamily scraped) {
  prometheus::MetricFamily family;
  family.name = std::move(scraped.name);
  family.help = std::move(scraped.help);
  const bool counter = scraped.kind == ScrapedFamily::Kind::kCounter;
  family.type = counter ? prometheus::MetricType::Counter : prometheus::MetricType::Gauge;
  for (ScrapedFamily::Sample& sample : scraped.samples) {
    prometheus::ClientMetric& metric = family.metric.emplace_back();
    for (auto& [name, value] : sample.labels) metric.label.push_back({name, value});
    if (counter) {
      metric.counter.value = sample.value;
    } else {
      metric.gauge.value = sample.value;
    }
  }
  return family;
}

}  // namespace

std::string Registry::Exposition(std::vector<ScrapedFamily> gathered) const {
  std::vector<prometheus::MetricFamily> families = impl_->registry.Collect();
  for (ScrapedFamily& scraped : gathered) {
    if (!scraped.samples.empty()) families.push_back(ToFamily(std::move(scraped)));
  }
  std::vector<Collector> collectors;
  {
    MutexLock lock(impl_->mu);
    collectors = impl_->collectors;
  }
  for (const Collector& collect : collectors) {
    for (ScrapedFamily& scraped : collect()) {
      if (!scraped.samples.empty()) families.push_back(ToFamily(std::move(scraped)));
    }
  }
  std::stable_sort(families.begin(), families.end(),
                   [](const prometheus::MetricFamily& a, const prometheus::MetricFamily& b) {
                     return a.name < b.name;
                   });
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace das::metrics
