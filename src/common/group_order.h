// The order of a grouped query's groups (README, "Queries"): by a metric in the requested
// direction, ties broken by key ascending; or by key alone. The shards rank their groups by it
// and the control node merges their top groups by it, so that the global top N is exact.
// Thread-safety: a pure function.
#pragma once

#include <cstdint>
#include <string_view>

namespace das {

enum class RankBy { kCount, kMetric, kKey };

struct GroupRank {
  uint64_t count = 0;
  double metric = 0;  // sum, avg, min or max: the double the answer shows
  std::string_view key;
};

inline bool RanksBefore(RankBy by, bool descending, const GroupRank& a, const GroupRank& b) {
  switch (by) {
    case RankBy::kKey:
      return descending ? a.key > b.key : a.key < b.key;
    case RankBy::kCount:
      if (a.count != b.count) return descending ? a.count > b.count : a.count < b.count;
      return a.key < b.key;
    case RankBy::kMetric:
      break;
  }
  if (a.metric != b.metric) return descending ? a.metric > b.metric : a.metric < b.metric;
  return a.key < b.key;
}

}  // namespace das
