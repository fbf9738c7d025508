// How a ShardQuery's metric ranks groups (common/group_order.h), named once for the shards that
// rank their groups and the control node that merges them: both must order alike.
#pragma once

#include "common/group_order.h"
#include "das/v1/internal.pb.h"

namespace das::rpc {

inline RankBy RankByOf(internal::v1::ShardQuery::Metric metric) {
  if (metric == internal::v1::ShardQuery::KEY) return RankBy::kKey;
  return metric == internal::v1::ShardQuery::COUNT ? RankBy::kCount : RankBy::kMetric;
}

}  // namespace das::rpc
