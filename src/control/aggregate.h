// Merging the workers' partial aggregates into the cluster-wide answer.
//
// Averages are merged from (count, sum) per worker, never as an average of averages; the sums
// are added with Neumaier's compensated summation so that large and mixed-sign partial sums
// lose no more precision than one rounding at the end.
// Thread-safety: a value type; not synchronized.
#pragma once

#include <cstdint>
#include <optional>

#include "common/compensated_sum.h"

namespace das::control {

struct PartialAggregate {
  uint64_t count = 0;
  double sum = 0;
  double sum_compensation = 0;  // what `sum` lost to rounding on the worker
  std::optional<double> min;
  std::optional<double> max;
};

struct MergedAggregate {
  uint64_t count = 0;
  double sum = 0;
  std::optional<double> average;  // absent when count == 0
  std::optional<double> min;
  std::optional<double> max;
};

class AggregateMerger {
 public:
  void Add(const PartialAggregate& partial);
  MergedAggregate Finish() const;

 private:
  uint64_t count_ = 0;
  CompensatedSum sum_;
  std::optional<double> min_;
  std::optional<double> max_;
};

}  // namespace das::control
