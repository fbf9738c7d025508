#include "query/merge.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "common/group_order.h"
#include "common/quantile.h"
#include "rpc/group_rank.h"

namespace das::query {
namespace {

using internal::v1::ShardQuery;

}  // namespace

Status QueryMerge::Add(const internal::v1::ShardQueryResponse& shard) {
  for (const internal::v1::ShardQueryRow& row : shard.rows()) {
    if (row.count() == 0) continue;
    std::optional<ExactSum> sum = ExactSum::FromBytes(row.exact_sum());
    if (!sum) return Internal("shard " + std::to_string(shard.shard()) + " sent a bad exact sum");
    if (plan_.grouped) {
      std::vector<Group>& groups = groups_[row.bucket_start_ms()];
      groups.push_back(Group{row.key(), row.count(), *sum, row.min(), row.max(),
                             std::vector<double>(row.quantiles().begin(), row.quantiles().end()),
                             0});
      // Only the top `limit` of a bucket can be answered: keep at most twice that.
      const size_t limit = plan_.shard_query.limit();
      if (groups.size() > 2 * limit) SortTop(groups, limit);
      continue;
    }
    auto [it, fresh] = buckets_.try_emplace(row.bucket_start_ms());
    Bucket& bucket = it->second;
    const uint64_t min = OrderedBits(row.min()), max = OrderedBits(row.max());
    bucket.min = fresh ? min : std::min(bucket.min, min);
    bucket.max = fresh ? max : std::max(bucket.max, max);
    bucket.count += row.count();
    bucket.sum.Merge(*sum);
    bucket.distinct += row.distinct_keys();
  }
  return Status::Ok();
}

std::map<int64_t, BucketSummary> QueryMerge::Summaries() const {
  std::map<int64_t, BucketSummary> out;
  for (const auto& [start, bucket] : buckets_) {
    out[start] =
        BucketSummary{bucket.count, FromOrderedBits(bucket.min), FromOrderedBits(bucket.max)};
  }
  return out;
}

void QueryMerge::Fill(das::v1::QueryRow& row, uint64_t count, const ExactSum& sum, double min,
                      double max) const {
  if (plan_.want_count) row.set_count(count);
  if (plan_.want_sum) row.set_sum(sum.Value());
  if (count == 0) return;
  if (plan_.want_avg) row.set_average(sum.Divide(count));
  if (plan_.want_min) row.set_min(min);
  if (plan_.want_max) row.set_max(max);
}

void QueryMerge::SortTop(std::vector<Group>& groups, size_t keep) const {
  const ShardQuery& query = plan_.shard_query;
  const RankBy by = rpc::RankByOf(query.order_by());
  auto metric = [&query](const Group& group) {
    switch (query.order_by()) {
      case ShardQuery::SUM:
        return group.sum.Value();
      case ShardQuery::AVG:
        return group.sum.Divide(group.count);
      case ShardQuery::MIN:
        return group.min;
      case ShardQuery::MAX:
        return group.max;
      default:
        return 0.0;
    }
  };
  for (Group& group : groups) group.metric = metric(group);
  keep = std::min(keep, groups.size());
  std::partial_sort(groups.begin(), groups.begin() + static_cast<std::ptrdiff_t>(keep),
                    groups.end(), [&](const Group& a, const Group& b) {
                      return RanksBefore(by, query.descending(),
                                         GroupRank{a.count, a.metric, a.key},
                                         GroupRank{b.count, b.metric, b.key});
                    });
  groups.resize(keep);
}

std::vector<das::v1::QueryRow> QueryMerge::FinishGrouped() {
  std::vector<das::v1::QueryRow> rows;
  for (auto& [start, groups] : groups_) {
    SortTop(groups, plan_.shard_query.limit());
    for (const Group& group : groups) {
      das::v1::QueryRow& row = rows.emplace_back();
      if (plan_.width_ms != 0) row.set_bucket_start_ms(start);
      row.set_key(group.key);
      Fill(row, group.count, group.sum, group.min, group.max);
      if (plan_.want_distinct) row.set_count_distinct_keys(1);
      for (double q : group.quantiles) row.add_quantiles(q);
    }
  }
  return rows;
}

Result<std::vector<das::v1::QueryRow>> QueryMerge::Finish(const QuantileSearch* quantiles) {
  std::vector<das::v1::QueryRow> rows;
  if (plan_.grouped) {
    rows = FinishGrouped();
  } else {
    for (const auto& [start, bucket] : buckets_) {
      das::v1::QueryRow& row = rows.emplace_back();
      if (plan_.width_ms != 0) row.set_bucket_start_ms(start);
      Fill(row, bucket.count, bucket.sum, FromOrderedBits(bucket.min), FromOrderedBits(bucket.max));
      if (plan_.want_distinct) row.set_count_distinct_keys(bucket.distinct);
      if (quantiles != nullptr) {
        for (double value : quantiles->Values(start)) row.add_quantiles(value);
      }
    }
    // Granularity "all" without grouping: exactly one row, also over no rows.
    if (plan_.width_ms == 0 && rows.empty()) {
      das::v1::QueryRow& row = rows.emplace_back();
      Fill(row, 0, ExactSum(), 0, 0);
      if (plan_.want_distinct) row.set_count_distinct_keys(0);
    }
  }
  if (rows.size() > plan_.max_rows) {
    return InvalidArgument("the answer has more than " + std::to_string(plan_.max_rows) +
                           " rows (--query-max-rows); narrow the query or lower its limit");
  }
  return rows;
}

}  // namespace das::query
