#include "query/aggregate.h"

#include <algorithm>

namespace das::query {

std::optional<PartialAggregate> PartialFrom(const internal::v1::AggregateResponse& response) {
  std::optional<ExactSum> sum = ExactSum::FromBytes(response.exact_sum());
  if (!sum) return std::nullopt;
  PartialAggregate partial{response.count(), *sum, std::nullopt, std::nullopt};
  if (response.has_min()) partial.min = response.min();
  if (response.has_max()) partial.max = response.max();
  return partial;
}

void AggregateMerger::Add(const PartialAggregate& partial) {
  if (partial.count == 0) return;
  count_ += partial.count;
  sum_.Merge(partial.sum);
  if (partial.min) min_ = min_ ? std::min(*min_, *partial.min) : *partial.min;
  if (partial.max) max_ = max_ ? std::max(*max_, *partial.max) : *partial.max;
}

MergedAggregate AggregateMerger::Finish() const {
  MergedAggregate merged;
  merged.count = count_;
  merged.sum = sum_.Value();
  merged.min = min_;
  merged.max = max_;
  if (count_ > 0) merged.average = sum_.Divide(count_);
  return merged;
}

}  // namespace das::query
