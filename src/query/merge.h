// QueryMerge: the shards' rows of one query merged into its answer (README, "Queries").
// Ungrouped, a bucket's figures add up over the shards exactly (counts, ExactSums, min, max,
// and distinct keys, since a key lives in one shard). Grouped, a group lives in one shard, so
// the global top N of a bucket is the top N of the union of the shards' top N, in the very
// order the shards ranked by (common/group_order.h).
// Thread-safety: a value type, not synchronized.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/exact_sum.h"
#include "common/status.h"
#include "das/v1/das.pb.h"
#include "das/v1/internal.pb.h"
#include "query/plan.h"
#include "query/quantile_search.h"

namespace das::query {

class QueryMerge {
 public:
  explicit QueryMerge(const QueryPlan& plan) : plan_(plan) {}

  // One shard's answer to the first round. kInternal for a malformed one (a bad exact sum).
  Status Add(const internal::v1::ShardQueryResponse& shard);

  // The merged buckets, for the quantile rounds (ungrouped).
  std::map<int64_t, BucketSummary> Summaries() const;

  // The answer's rows (the quantiles from `quantiles`, when the plan has ungrouped ones):
  // kInvalidArgument when there are more than plan.max_rows.
  Result<std::vector<das::v1::QueryRow>> Finish(const QuantileSearch* quantiles);

 private:
  struct Bucket {
    uint64_t count = 0;
    ExactSum sum;
    uint64_t min = 0;  // OrderedBits
    uint64_t max = 0;
    uint64_t distinct = 0;
  };
  struct Group {
    std::string key;
    uint64_t count = 0;
    ExactSum sum;
    double min = 0;
    double max = 0;
    std::vector<double> quantiles;
    double metric = 0;  // the order's metric (SortTop)
  };

  void Fill(das::v1::QueryRow& row, uint64_t count, const ExactSum& sum, double min,
            double max) const;
  // Orders `groups` as the shards ranked them and keeps the first `keep`.
  void SortTop(std::vector<Group>& groups, size_t keep) const;
  std::vector<das::v1::QueryRow> FinishGrouped();

  const QueryPlan& plan_;
  std::map<int64_t, Bucket> buckets_;
  std::map<int64_t, std::vector<Group>> groups_;
};

}  // namespace das::query
