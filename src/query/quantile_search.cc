#include "query/quantile_search.h"

#include <algorithm>
#include <limits>
#include <set>
#include <string>
#include <utility>

namespace das::query {
namespace {

using internal::v1::ProbeAnswer;
using internal::v1::QuantileProbe;

// One bin merged over the shards.
struct BinSum {
  uint64_t count = 0;
  uint64_t lo = std::numeric_limits<uint64_t>::max();
  uint64_t hi = 0;
};

Status Disagree(int64_t bucket, const std::string& what) {
  return Internal("quantiles of bucket " + std::to_string(bucket) +
                  ": the shards' rows changed between two rounds (" + what + ")");
}

}  // namespace

QuantileSearch::QuantileSearch(const std::map<int64_t, BucketSummary>& buckets,
                               std::vector<double> quantiles, uint32_t bins, uint64_t fetch_values)
    : bins_(std::max<uint32_t>(bins, 2)),
      fetch_values_(fetch_values),
      quantiles_(std::move(quantiles)) {
  for (const auto& [start, summary] : buckets) {
    if (summary.count == 0) continue;
    Bucket& bucket = buckets_[start];
    bucket.count = summary.count;
    for (double q : quantiles_) {
      const QuantileRanks ranks = RanksOf(summary.count, q);
      for (uint64_t rank : {ranks.low, ranks.high}) {
        Target target{rank, OrderedBits(summary.min), OrderedBits(summary.max), 0, summary.count};
        if (target.lo == target.hi) {
          target.found = true;
          target.value = summary.min;
        }
        bucket.targets.emplace(rank, target);
      }
    }
    for (const auto& [rank, target] : bucket.targets) pending_ += target.found ? 0 : 1;
  }
}

std::vector<QuantileProbe> QuantileSearch::Probes() const {
  std::vector<QuantileProbe> probes;
  uint64_t fetching = 0;  // values asked for in this round, over every probe
  for (const auto& [start, bucket] : buckets_) {
    std::set<std::pair<uint64_t, uint64_t>> ranges;
    for (const auto& [rank, target] : bucket.targets) {
      if (target.found || !ranges.emplace(target.lo, target.hi).second) continue;
      QuantileProbe& probe = probes.emplace_back();
      probe.set_bucket_start_ms(start);
      probe.set_lo(target.lo);
      probe.set_hi(target.hi);
      const bool fetch = target.count <= fetch_values_ && fetching + target.count <= kFetchPerRound;
      if (fetch) fetching += target.count;
      probe.set_bins(fetch ? 0 : bins_);
    }
  }
  return probes;
}

Status QuantileSearch::Feed(const std::vector<const internal::v1::ShardQueryResponse*>& answers) {
  const std::vector<QuantileProbe> probes = Probes();
  for (const internal::v1::ShardQueryResponse* answer : answers) {
    if (answer->probes_size() != static_cast<int>(probes.size())) {
      return Internal("a shard answered " + std::to_string(answer->probes_size()) +
                      " quantile probes of " + std::to_string(probes.size()));
    }
  }
  for (size_t i = 0; i < probes.size(); ++i) {
    const QuantileProbe& probe = probes[i];
    Bucket& bucket = buckets_.at(probe.bucket_start_ms());
    std::map<uint32_t, BinSum> bins;
    std::vector<double> values;
    for (const internal::v1::ShardQueryResponse* answer : answers) {
      const ProbeAnswer& part = answer->probes(static_cast<int>(i));
      if (part.count_size() != part.bin_size() || part.min_size() != part.bin_size() ||
          part.max_size() != part.bin_size()) {
        return Internal("a shard sent a malformed quantile probe answer");
      }
      for (int b = 0; b < part.bin_size(); ++b) {
        BinSum& sum = bins[part.bin(b)];
        sum.count += part.count(b);
        sum.lo = std::min(sum.lo, OrderedBits(part.min(b)));
        sum.hi = std::max(sum.hi, OrderedBits(part.max(b)));
      }
      values.insert(values.end(), part.values().begin(), part.values().end());
    }
    std::sort(values.begin(), values.end(),
              [](double a, double b) { return OrderedBits(a) < OrderedBits(b); });
    uint64_t total = 0;
    for (const auto& [index, sum] : bins) total += sum.count;
    for (auto& [rank, target] : bucket.targets) {
      if (target.found || target.lo != probe.lo() || target.hi != probe.hi()) continue;
      const uint64_t offset = target.rank - target.below;
      if (probe.bins() == 0) {
        if (values.size() != target.count) {
          return Disagree(probe.bucket_start_ms(), std::to_string(values.size()) + " values for " +
                                                       std::to_string(target.count) + " rows");
        }
        target.found = true;
        target.value = values[offset];
        --pending_;
        continue;
      }
      if (total != target.count) {
        return Disagree(probe.bucket_start_ms(), std::to_string(total) + " rows counted for " +
                                                     std::to_string(target.count));
      }
      uint64_t seen = 0;
      bool narrowed = false;
      for (const auto& [index, sum] : bins) {
        if (offset < seen + sum.count) {
          target.below += seen;
          target.count = sum.count;
          target.lo = sum.lo;
          target.hi = sum.hi;
          if (sum.lo == sum.hi) {
            target.found = true;
            target.value = FromOrderedBits(sum.lo);
            --pending_;
          }
          narrowed = true;
          break;
        }
        seen += sum.count;
      }
      if (!narrowed) {
        return Disagree(probe.bucket_start_ms(),
                        "rank " + std::to_string(target.rank) + " is past the rows counted");
      }
    }
  }
  return Status::Ok();
}

std::vector<double> QuantileSearch::Values(int64_t start) const {
  std::vector<double> out;
  auto bucket = buckets_.find(start);
  if (bucket == buckets_.end()) return out;
  for (double q : quantiles_) {
    const QuantileRanks ranks = RanksOf(bucket->second.count, q);
    out.push_back(Interpolate(bucket->second.targets.at(ranks.low).value,
                              bucket->second.targets.at(ranks.high).value, ranks));
  }
  return out;
}

}  // namespace das::query
