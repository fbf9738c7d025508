#include "query/shard_groups.h"

#include <duckdb.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/group_order.h"
#include "rpc/group_rank.h"
#include "storage/store_tables.h"

namespace das::query {
namespace {

using internal::v1::ShardQuery;
using internal::v1::ShardQueryRow;

// Candidates up to this many are read back by key (an IN list); more, by the whole scan.
constexpr size_t kMaxKeysRead = 1000;

// One group as DuckDB aggregated it.
struct Group {
  std::string key;
  uint64_t count = 0;
  double min = 0;
  double max = 0;
  double metric = 0;  // exact for count, min, max; for sum and avg DuckDB's, within `error`
  double error = 0;
  Acc exact;  // the candidates' exact figures, from the second read
};

bool Approximate(const ShardQuery& query) {
  return query.order_by() == ShardQuery::SUM || query.order_by() == ShardQuery::AVG;
}

// The metric and its error bound from DuckDB's figures. A rounded sum of n terms in any order
// is within n * 2^-53 * sum(|v|) of the exact one (the doubling covers the rounding of the
// sum of magnitudes and of the bound itself).
void SetMetric(const ShardQuery& query, double sum, double magnitudes, Group& group) {
  const double n = static_cast<double>(group.count);
  const double sum_error = 2.0 * n * std::ldexp(magnitudes, -53);
  switch (query.order_by()) {
    case ShardQuery::SUM:
      group.metric = sum;
      group.error = sum_error;
      break;
    case ShardQuery::AVG:
      group.metric = sum / n;
      group.error = sum_error / n + std::ldexp(std::fabs(group.metric), -51) +
                    std::numeric_limits<double>::denorm_min() * 4;
      break;
    case ShardQuery::MIN:
      group.metric = group.min;
      break;
    case ShardQuery::MAX:
      group.metric = group.max;
      break;
    default:
      break;
  }
  if (std::isnan(group.metric) || std::isnan(group.error)) {
    group.error = std::numeric_limits<double>::infinity();
  }
}

// Every group of every bucket, aggregated by DuckDB.
Status Aggregate(const ScanContext& context, std::map<int64_t, std::vector<Group>>& buckets) {
  const ShardQuery& query = *context.query;
  const int where_params = 1 + (query.has_from_us() ? 1 : 0) + (query.has_to_us() ? 1 : 0) +
                           query.keys_size() + (query.key_prefix().empty() ? 0 : 1);
  // Appended piece by piece: GCC 12 at -O3 warns falsely on "literal" + std::string&&.
  const std::string width = std::string("$").append(std::to_string(where_params + 1));
  std::string sql = "SELECT partition_key, ";
  if (query.width_ms() == 0) {
    sql += "0::BIGINT";
  } else {
    sql.append("(epoch_us(ingest_ts) // 1000 // ").append(width).append(") * ").append(width);
  }
  sql.append(" AS bucket, count(*), min(value), max(value), sum(value), sum(abs(value)) FROM ")
      .append(storage::RowsTable(context.replica))
      .append(" WHERE ")
      .append(WhereSql(query))
      .append(" GROUP BY ALL");
  ASSIGN_OR_RETURN(storage::duck::PreparedHandle stmt,
                   storage::duck::Prepare(context.conn, sql.c_str()));
  RETURN_IF_ERROR(BindWhere(stmt.get(), query, context.as_of_us));
  if (query.width_ms() != 0 &&
      duckdb_bind_int64(stmt.get(), where_params + 1, query.width_ms()) == DuckDBError) {
    return storage::duck::Error("bind the bucket width", "invalid parameter");
  }
  ASSIGN_OR_RETURN(storage::duck::QueryResult result,
                   storage::duck::ExecuteStreaming(stmt.get(), "group a query's rows"));
  while (std::optional<storage::duck::Chunk> chunk = result.NextChunk()) {
    RETURN_IF_ERROR(CheckDeadline(context));
    const int64_t* starts = chunk->Data<int64_t>(1);
    const int64_t* counts = chunk->Data<int64_t>(2);
    const double* mins = chunk->Data<double>(3);
    const double* maxs = chunk->Data<double>(4);
    const double* sums = chunk->Data<double>(5);
    const double* magnitudes = chunk->Data<double>(6);
    for (size_t i = 0; i < chunk->size(); ++i) {
      auto [it, fresh] = buckets.try_emplace(starts[i]);
      if (fresh && query.max_rows() != 0 && buckets.size() > query.max_rows()) {
        return TooManyRows(query.max_rows());
      }
      Group& group = it->second.emplace_back();
      group.key = std::string(chunk->String(0, i));
      group.count = static_cast<uint64_t>(counts[i]);
      group.min = mins[i];
      group.max = maxs[i];
      SetMetric(query, sums[i], magnitudes[i], group);
    }
  }
  return result.Error("group a query's rows");
}

bool Before(const ShardQuery& query, const Group& a, const Group& b) {
  return RanksBefore(rpc::RankByOf(query.order_by()), query.descending(),
                     GroupRank{a.count, a.metric, a.key}, GroupRank{b.count, b.metric, b.key});
}

// The groups that may be in the bucket's top `limit`: all of them in the requested order's
// first `limit` when the metric is exact; else those whose bound reaches the limit-th one's.
std::vector<Group*> Candidates(const ShardQuery& query, std::vector<Group>& groups) {
  std::vector<Group*> out;
  for (Group& group : groups) out.push_back(&group);
  const size_t limit = std::max<uint32_t>(query.limit(), 1);
  if (out.size() <= limit) return out;
  if (!Approximate(query)) {
    std::partial_sort(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(limit), out.end(),
                      [&](const Group* a, const Group* b) { return Before(query, *a, *b); });
    out.resize(limit);
    return out;
  }
  // Descending: a group whose highest possible value is below the limit-th highest lowest
  // possible value cannot be in the top; ascending, the mirror image.
  const bool desc = query.descending();
  std::vector<double> reach;
  for (const Group* g : out) reach.push_back(desc ? g->metric - g->error : g->metric + g->error);
  std::nth_element(reach.begin(), reach.begin() + static_cast<std::ptrdiff_t>(limit - 1),
                   reach.end(), [desc](double a, double b) { return desc ? a > b : a < b; });
  const double threshold = reach[limit - 1];
  std::erase_if(out, [&](const Group* g) {
    return desc ? g->metric + g->error < threshold : g->metric - g->error > threshold;
  });
  return out;
}

// The candidates' exact sums (and, with quantiles, their values), in one more read.
Status ReadExact(const ScanContext& context, std::map<int64_t, std::vector<Group*>>& candidates,
                 std::map<int64_t, std::unordered_map<std::string_view, std::vector<double>,
                                                      StringHash, std::equal_to<>>>& values) {
  const ShardQuery& query = *context.query;
  std::map<int64_t, std::unordered_map<std::string_view, Group*, StringHash, std::equal_to<>>>
      wanted;
  std::vector<std::string> keys;
  for (auto& [start, groups] : candidates) {
    for (Group* group : groups) {
      wanted[start].emplace(group->key, group);
      keys.push_back(group->key);
    }
  }
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  ShardQuery narrowed = query;
  if (keys.size() <= kMaxKeysRead) *narrowed.mutable_keys() = {keys.begin(), keys.end()};
  ScanContext read = context;
  read.query = &narrowed;
  ASSIGN_OR_RETURN(Scan scan, Scan::Start(read, Scan::Columns{query.width_ms() != 0, true}));
  const bool with_values = query.quantiles_size() > 0;
  Result<bool> done = scan.ForEach([&](double value, int64_t ts_us, std::string_view key) {
    const int64_t start = BucketOf(ts_us, query.width_ms());
    auto bucket = wanted.find(start);
    if (bucket == wanted.end()) return true;
    auto group = bucket->second.find(key);
    if (group == bucket->second.end()) return true;
    group->second->exact.Add(value);
    if (with_values) values[start][group->second->key].push_back(value);
    return true;
  });
  return done.ok() ? Status::Ok() : done.status();
}

}  // namespace

Status Grouped(const ScanContext& context, internal::v1::ShardQueryResponse& response) {
  const ShardQuery& query = *context.query;
  std::map<int64_t, std::vector<Group>> buckets;
  RETURN_IF_ERROR(Aggregate(context, buckets));
  std::map<int64_t, std::vector<Group*>> candidates;
  size_t rows = 0;
  for (auto& [start, groups] : buckets) {
    candidates[start] = Candidates(query, groups);
    rows += std::min<size_t>(std::max<uint32_t>(query.limit(), 1), groups.size());
  }
  if (query.max_rows() != 0 && rows > query.max_rows()) return TooManyRows(query.max_rows());
  std::map<int64_t,
           std::unordered_map<std::string_view, std::vector<double>, StringHash, std::equal_to<>>>
      values;
  RETURN_IF_ERROR(ReadExact(context, candidates, values));
  const size_t limit = std::max<uint32_t>(query.limit(), 1);
  for (auto& [start, groups] : candidates) {
    for (Group* group : groups) {
      if (group->exact.count != group->count) {
        return Internal("a group's rows changed between two reads of one snapshot");
      }
      if (query.order_by() == ShardQuery::SUM) group->metric = group->exact.sum.Value();
      if (query.order_by() == ShardQuery::AVG) {
        group->metric = group->exact.sum.Divide(group->count);
      }
    }
    const size_t keep = std::min(limit, groups.size());
    std::partial_sort(groups.begin(), groups.begin() + static_cast<std::ptrdiff_t>(keep),
                      groups.end(),
                      [&](const Group* a, const Group* b) { return Before(query, *a, *b); });
    for (size_t i = 0; i < keep; ++i) {
      const Group& group = *groups[i];
      ShardQueryRow& row = *response.add_rows();
      row.set_bucket_start_ms(start);
      row.set_key(group.key);
      row.set_count(group.count);
      row.set_exact_sum(group.exact.sum.ToBytes());
      row.set_min(group.min);
      row.set_max(group.max);
      if (query.quantiles_size() == 0) continue;
      std::vector<double>& sorted = values[start][group.key];
      std::sort(sorted.begin(), sorted.end(),
                [](double a, double b) { return OrderedBits(a) < OrderedBits(b); });
      for (double q : query.quantiles()) {
        const QuantileRanks ranks = RanksOf(sorted.size(), q);
        row.add_quantiles(Interpolate(sorted[ranks.low], sorted[ranks.high], ranks));
      }
    }
  }
  return Status::Ok();
}

}  // namespace das::query
