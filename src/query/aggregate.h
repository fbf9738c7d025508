// Merging the workers' partial aggregates into the cluster-wide answer.
//
// Averages are merged from (count, sum) per worker, never as an average of averages. The sums
// are exact (common/exact_sum.h): each worker sends its exact sum and the merge adds them
// exactly, so the answer is the exact sum of every row rounded once: `sum` is +/-Infinity only
// when that exact sum lies outside the double range, and `average`, `min`, `max` are correctly
// rounded whenever they are representable. No finite input ever gives NaN.
// Thread-safety: a value type; not synchronized.
#pragma once

#include <cstdint>
#include <optional>

#include "common/exact_sum.h"
#include "das/v1/internal.pb.h"

namespace das::query {

struct PartialAggregate {
  uint64_t count = 0;
  ExactSum sum;
  std::optional<double> min;
  std::optional<double> max;
};

// A worker's or a shard's answer as a partial; nullopt when its exact sum does not decode.
std::optional<PartialAggregate> PartialFrom(const internal::v1::AggregateResponse& response);

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
  ExactSum sum_;
  std::optional<double> min_;
  std::optional<double> max_;
};

}  // namespace das::query
