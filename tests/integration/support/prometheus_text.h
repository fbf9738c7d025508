// A strict parser of the Prometheus text exposition format 0.0.4, written for the tests from the
// format's specification, so that /metrics is checked by something other than the library that
// wrote it. It refuses (with the line number and why): a malformed line, name, label or value;
// a TYPE or HELP given twice or a TYPE after its family's samples; a family's samples not
// contiguous; a series given twice; a counter that is negative; a histogram without _sum,
// _count or a +Inf bucket, with buckets not cumulative, or whose +Inf bucket is not its count.
// Thread-safety: plain values.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace das::it {

using MetricLabels = std::map<std::string, std::string>;

struct MetricSample {
  std::string name;  // as written: "x_bucket", "x_sum", ...
  MetricLabels labels;
  double value = 0;
};

struct MetricFamily {
  std::string name;
  std::string type = "untyped";  // counter, gauge, histogram, summary, untyped
  std::string help;
  std::vector<MetricSample> samples;
};

class MetricsText {
 public:
  static Result<MetricsText> Parse(std::string_view text);

  const std::map<std::string, MetricFamily>& families() const { return families_; }
  const MetricFamily* Find(const std::string& family) const;
  // The value of sample `name` whose labels include every one of `labels` (nullopt: none, or
  // more than one matches).
  std::optional<double> Value(const std::string& name, const MetricLabels& labels = {}) const;
  // The sum of every sample `name` whose labels include `labels` (0 when none).
  double Sum(const std::string& name, const MetricLabels& labels = {}) const;
  // Every sample named `name` whose labels include `labels`.
  std::vector<MetricSample> Samples(const std::string& name, const MetricLabels& labels = {}) const;

 private:
  std::map<std::string, MetricFamily> families_;
};

}  // namespace das::it
