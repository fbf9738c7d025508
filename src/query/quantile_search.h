// QuantileSearch: exact quantiles of buckets whose rows are spread over many shards (README,
// "Queries"), found in rounds. Each quantile_cont needs the values at two ranks of the bucket's
// sorted rows. A round asks every shard, for each rank still unknown, about the rows of the
// bucket in a range of values [lo, hi] known to hold that rank: the shards count them in bins of
// equal width in OrderedBits' order (common/quantile.h), and the bin that holds the rank is the
// next round's range (its lowest and highest value, so no gap is searched); once a range holds
// few enough rows, the shards send those values and the rank is read off their merge. Each
// round narrows a range by a factor of `bins` at least, so even adversarial values need at most
// ceil(64 / log2(bins)) rounds of bins.
//
// The shards read one snapshot in every round (ShardQuery.as_of_us), so the counts agree from
// round to round; a merge that disagrees is kInternal, never a wrong answer.
// Thread-safety: a value type, not synchronized.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "common/quantile.h"
#include "common/status.h"
#include "das/v1/internal.pb.h"

namespace das::query {

struct BucketSummary {
  uint64_t count = 0;
  double min = 0;
  double max = 0;
};

class QuantileSearch {
 public:
  static constexpr uint32_t kBins = 1024;
  // A range with at most this many rows (over every shard) is fetched as values.
  static constexpr uint64_t kFetchValues = 16384;
  // The most values one round fetches over all its probes (the others are binned once more), so
  // that no shard's answer grows past a few MiB with many buckets.
  static constexpr uint64_t kFetchPerRound = 1 << 20;

  // `quantiles` in [0, 1]; `buckets` by bucket start, with count > 0.
  QuantileSearch(const std::map<int64_t, BucketSummary>& buckets, std::vector<double> quantiles,
                 uint32_t bins = kBins, uint64_t fetch_values = kFetchValues);

  bool done() const { return pending_ == 0; }
  // The probes of the next round, the same for every shard. REQUIRES: !done().
  std::vector<internal::v1::QuantileProbe> Probes() const;
  // Every shard's answers to Probes() (each in probe order). kInternal when they do not add
  // up to what the previous round found.
  Status Feed(const std::vector<const internal::v1::ShardQueryResponse*>& answers);
  // The bucket's quantiles, in the order asked. REQUIRES: done().
  std::vector<double> Values(int64_t bucket) const;

 private:
  struct Target {
    uint64_t rank = 0;   // 0-based, in the bucket's sorted rows
    uint64_t lo = 0;     // OrderedBits of the lowest value of the range holding it
    uint64_t hi = 0;     // and of the highest
    uint64_t below = 0;  // rows of the bucket below lo
    uint64_t count = 0;  // rows in [lo, hi]
    bool found = false;
    double value = 0;
  };
  struct Bucket {
    uint64_t count = 0;
    std::map<uint64_t, Target> targets;  // by rank
  };

  const uint32_t bins_;
  const uint64_t fetch_values_;
  const std::vector<double> quantiles_;
  std::map<int64_t, Bucket> buckets_;
  size_t pending_ = 0;  // targets not found yet
};

}  // namespace das::query
