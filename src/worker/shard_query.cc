#include "worker/shard_query.h"

#include <duckdb.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "common/exact_sum.h"
#include "common/group_order.h"
#include "common/quantile.h"
#include "worker/duckdb_util.h"

namespace das::worker {
namespace {

using internal::v1::ProbeAnswer;
using internal::v1::QuantileProbe;
using internal::v1::ShardQuery;
using internal::v1::ShardQueryResponse;
using internal::v1::ShardQueryRow;

// NULL for an empty table.
constexpr const char* kNewestIngest = "SELECT epoch_us(max(ingest_ts)) FROM rows";

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
template <typename V>
using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;
using StringSet = std::unordered_set<std::string, StringHash, std::equal_to<>>;

int64_t FloorDiv(int64_t a, int64_t b) {
  const int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

// floor(ts_ms / width) * width, with ts_ms the ingest time in whole milliseconds (floored).
int64_t BucketOf(int64_t ts_us, int64_t width_ms) {
  if (width_ms == 0) return 0;
  return FloorDiv(FloorDiv(ts_us, 1000), width_ms) * width_ms;
}

// The rows of one bucket or group. min and max are kept in OrderedBits' order, so that -0.0
// sorts below +0.0 here exactly as in the quantile probes.
struct Acc {
  uint64_t count = 0;
  ExactSum sum;
  uint64_t min = std::numeric_limits<uint64_t>::max();
  uint64_t max = 0;

  void Add(double value) {
    ++count;
    sum.Add(value);
    const uint64_t key = OrderedBits(value);
    min = std::min(min, key);
    max = std::max(max, key);
  }
};

void FillRow(const Acc& acc, int64_t bucket, ShardQueryRow& row) {
  row.set_bucket_start_ms(bucket);
  row.set_count(acc.count);
  row.set_exact_sum(acc.sum.ToBytes());
  row.set_min(FromOrderedBits(acc.min));
  row.set_max(FromOrderedBits(acc.max));
}

// The columns a scan reads: value always, then the ingest time and the key when needed.
struct Columns {
  bool ts = false;
  bool key = false;
  size_t ts_col() const { return 1; }
  size_t key_col() const { return ts ? 2 : 1; }
};

// One pass over the rows the query's filters select, up to the snapshot `as_of_us`.
class Scan {
 public:
  static Result<Scan> Start(duckdb_connection conn, const ShardQuery& query, int64_t as_of_us,
                            Columns columns);

  // Calls `row(value, ts_us, key)` for every row (ts 0 and key empty when not read).
  template <typename RowFn>
  void ForEach(RowFn&& row) {
    while (std::optional<duck::Chunk> chunk = result_.NextChunk()) {
      const size_t n = chunk->size();
      const double* values = chunk->Data<double>(0);
      const duckdb_timestamp* ts =
          columns_.ts ? chunk->Data<duckdb_timestamp>(columns_.ts_col()) : nullptr;
      for (size_t i = 0; i < n; ++i) {
        row(values[i], ts != nullptr ? ts[i].micros : 0,
            columns_.key ? chunk->String(columns_.key_col(), i) : std::string_view());
      }
    }
  }

 private:
  Scan(duck::PreparedHandle stmt, Columns columns) : stmt_(std::move(stmt)), columns_(columns) {}

  duck::PreparedHandle stmt_;  // outlives result_, which streams from it
  Columns columns_;
  duck::QueryResult result_;
};

std::string ScanSql(const ShardQuery& query, Columns columns) {
  std::string sql = "SELECT value";
  if (columns.ts) sql += ", ingest_ts";
  if (columns.key) sql += ", partition_key";
  sql += " FROM rows WHERE ingest_ts <= ?";
  if (query.has_from_us()) sql += " AND ingest_ts >= ?";
  if (query.has_to_us()) sql += " AND ingest_ts < ?";
  if (query.keys_size() > 0) {
    sql += " AND partition_key IN (?";
    for (int i = 1; i < query.keys_size(); ++i) sql += ", ?";
    sql += ")";
  }
  if (!query.key_prefix().empty()) sql += " AND starts_with(partition_key, ?)";
  return sql;
}

Status BindScan(duckdb_prepared_statement stmt, const ShardQuery& query, int64_t as_of_us) {
  idx_t param = 1;
  bool ok = duckdb_bind_timestamp(stmt, param++, duck::Timestamp(as_of_us)) == DuckDBSuccess;
  if (query.has_from_us()) {
    ok = ok &&
         duckdb_bind_timestamp(stmt, param++, duck::Timestamp(query.from_us())) == DuckDBSuccess;
  }
  if (query.has_to_us()) {
    ok =
        ok && duckdb_bind_timestamp(stmt, param++, duck::Timestamp(query.to_us())) == DuckDBSuccess;
  }
  for (const std::string& key : query.keys()) {
    ok = ok && duckdb_bind_varchar_length(stmt, param++, key.data(), key.size()) == DuckDBSuccess;
  }
  if (!query.key_prefix().empty()) {
    const std::string& prefix = query.key_prefix();
    ok = ok &&
         duckdb_bind_varchar_length(stmt, param++, prefix.data(), prefix.size()) == DuckDBSuccess;
  }
  return ok ? Status::Ok() : duck::Error("bind the query's filters", "invalid parameter");
}

Result<Scan> Scan::Start(duckdb_connection conn, const ShardQuery& query, int64_t as_of_us,
                         Columns columns) {
  const std::string sql = ScanSql(query, columns);
  ASSIGN_OR_RETURN(duck::PreparedHandle stmt, duck::Prepare(conn, sql.c_str()));
  RETURN_IF_ERROR(BindScan(stmt.get(), query, as_of_us));
  Scan scan(std::move(stmt), columns);
  ASSIGN_OR_RETURN(scan.result_, duck::ExecuteStreaming(scan.stmt_.get(), "scan for a query"));
  return scan;
}

Status TooManyRows(uint32_t cap) {
  return InvalidArgument("the answer would have more than " + std::to_string(cap) +
                         " rows (--query-max-rows)");
}

// --- one row per bucket -------------------------------------------------------------------

Status Ungrouped(duckdb_connection conn, const ShardQuery& query, int64_t as_of_us,
                 ShardQueryResponse& response) {
  struct Bucket {
    Acc acc;
    StringSet keys;  // distinct_keys only
  };
  const Columns columns{query.width_ms() != 0, query.distinct_keys()};
  ASSIGN_OR_RETURN(Scan scan, Scan::Start(conn, query, as_of_us, columns));
  std::map<int64_t, Bucket> buckets;
  Bucket* last = nullptr;
  int64_t last_start = 0;
  scan.ForEach([&](double value, int64_t ts_us, std::string_view key) {
    const int64_t start = BucketOf(ts_us, query.width_ms());
    if (last == nullptr || start != last_start) {
      last = &buckets[start];
      last_start = start;
    }
    last->acc.Add(value);
    if (columns.key && last->keys.find(key) == last->keys.end()) last->keys.emplace(key);
  });
  if (query.max_rows() != 0 && buckets.size() > query.max_rows()) {
    return TooManyRows(query.max_rows());
  }
  for (const auto& [start, bucket] : buckets) {
    ShardQueryRow& row = *response.add_rows();
    FillRow(bucket.acc, start, row);
    if (query.distinct_keys()) row.set_distinct_keys(bucket.keys.size());
  }
  return Status::Ok();
}

// --- the top groups of each bucket ----------------------------------------------------------

struct Ranked {
  const std::string* key;
  const Acc* acc;
  double metric;  // sum, avg, min or max (RankBy::kMetric)
};

double MetricOf(ShardQuery::Metric metric, const Acc& acc) {
  switch (metric) {
    case ShardQuery::SUM:
      return acc.sum.Value();
    case ShardQuery::AVG:
      return acc.sum.Divide(acc.count);
    case ShardQuery::MIN:
      return FromOrderedBits(acc.min);
    case ShardQuery::MAX:
      return FromOrderedBits(acc.max);
    default:
      return 0;
  }
}

RankBy RankByOf(ShardQuery::Metric metric) {
  if (metric == ShardQuery::KEY) return RankBy::kKey;
  return metric == ShardQuery::COUNT ? RankBy::kCount : RankBy::kMetric;
}

using Groups = StringMap<Acc>;

// The selected groups' values, for their quantiles: bucket -> key -> values.
using Selected = std::map<int64_t, StringMap<std::vector<double>>>;

Status GroupQuantiles(duckdb_connection conn, const ShardQuery& query, int64_t as_of_us,
                      Selected& selected, ShardQueryResponse& response) {
  ASSIGN_OR_RETURN(Scan scan,
                   Scan::Start(conn, query, as_of_us, Columns{query.width_ms() != 0, true}));
  scan.ForEach([&](double value, int64_t ts_us, std::string_view key) {
    auto bucket = selected.find(BucketOf(ts_us, query.width_ms()));
    if (bucket == selected.end()) return;
    auto group = bucket->second.find(key);
    if (group != bucket->second.end()) group->second.push_back(value);
  });
  for (ShardQueryRow& row : *response.mutable_rows()) {
    std::vector<double>& values = selected[row.bucket_start_ms()][row.key()];
    std::sort(values.begin(), values.end(),
              [](double a, double b) { return OrderedBits(a) < OrderedBits(b); });
    if (values.size() != row.count()) return Internal("a group's rows changed between two scans");
    for (double q : query.quantiles()) {
      const QuantileRanks ranks = RanksOf(values.size(), q);
      row.add_quantiles(Interpolate(values[ranks.low], values[ranks.high], ranks));
    }
  }
  return Status::Ok();
}

Status Grouped(duckdb_connection conn, const ShardQuery& query, int64_t as_of_us,
               ShardQueryResponse& response) {
  ASSIGN_OR_RETURN(Scan scan,
                   Scan::Start(conn, query, as_of_us, Columns{query.width_ms() != 0, true}));
  std::map<int64_t, Groups> buckets;
  Groups* last = nullptr;
  int64_t last_start = 0;
  scan.ForEach([&](double value, int64_t ts_us, std::string_view key) {
    const int64_t start = BucketOf(ts_us, query.width_ms());
    if (last == nullptr || start != last_start) {
      last = &buckets[start];
      last_start = start;
    }
    auto group = last->find(key);
    if (group == last->end()) group = last->emplace(std::string(key), Acc{}).first;
    group->second.Add(value);
  });
  const size_t limit = query.limit() == 0 ? 1 : query.limit();
  size_t rows = 0;
  for (const auto& [start, groups] : buckets) rows += std::min(limit, groups.size());
  if (query.max_rows() != 0 && rows > query.max_rows()) return TooManyRows(query.max_rows());
  Selected selected;
  for (const auto& [start, groups] : buckets) {
    std::vector<Ranked> ranked;
    ranked.reserve(groups.size());
    for (const auto& [key, acc] : groups) {
      ranked.push_back(Ranked{&key, &acc, MetricOf(query.order_by(), acc)});
    }
    const size_t keep = std::min(limit, ranked.size());
    const RankBy by = RankByOf(query.order_by());
    std::partial_sort(ranked.begin(), ranked.begin() + static_cast<std::ptrdiff_t>(keep),
                      ranked.end(), [&](const Ranked& a, const Ranked& b) {
                        return RanksBefore(by, query.descending(),
                                           GroupRank{a.acc->count, a.metric, *a.key},
                                           GroupRank{b.acc->count, b.metric, *b.key});
                      });
    for (size_t i = 0; i < keep; ++i) {
      ShardQueryRow& row = *response.add_rows();
      FillRow(*ranked[i].acc, start, row);
      row.set_key(*ranked[i].key);
      if (query.quantiles_size() > 0)
        selected[start].emplace(*ranked[i].key, std::vector<double>());
    }
  }
  if (query.quantiles_size() == 0) return Status::Ok();
  return GroupQuantiles(conn, query, as_of_us, selected, response);
}

// --- a round of global quantiles ----------------------------------------------------------

Status Probes(duckdb_connection conn, const ShardQuery& query, int64_t as_of_us,
              ShardQueryResponse& response) {
  struct Bin {
    uint64_t count = 0;
    uint64_t min = std::numeric_limits<uint64_t>::max();
    uint64_t max = 0;
  };
  struct State {
    const QuantileProbe* probe;
    std::vector<Bin> bins;
    std::vector<double> values;
  };
  std::vector<State> states;
  std::unordered_map<int64_t, std::vector<size_t>> of_bucket;
  for (const QuantileProbe& probe : query.probes()) {
    of_bucket[probe.bucket_start_ms()].push_back(states.size());
    states.push_back(State{&probe, std::vector<Bin>(probe.bins()), {}});
  }
  ASSIGN_OR_RETURN(Scan scan,
                   Scan::Start(conn, query, as_of_us, Columns{query.width_ms() != 0, false}));
  scan.ForEach([&](double value, int64_t ts_us, std::string_view) {
    auto found = of_bucket.find(BucketOf(ts_us, query.width_ms()));
    if (found == of_bucket.end()) return;
    const uint64_t key = OrderedBits(value);
    for (size_t index : found->second) {
      State& state = states[index];
      const QuantileProbe& probe = *state.probe;
      if (key < probe.lo() || key > probe.hi()) continue;
      if (probe.bins() == 0) {
        state.values.push_back(value);
        continue;
      }
      Bin& bin = state.bins[BinOf(key, probe.lo(), probe.hi(), probe.bins())];
      ++bin.count;
      bin.min = std::min(bin.min, key);
      bin.max = std::max(bin.max, key);
    }
  });
  for (State& state : states) {
    ProbeAnswer& answer = *response.add_probes();
    for (size_t b = 0; b < state.bins.size(); ++b) {
      if (state.bins[b].count == 0) continue;
      answer.add_bin(static_cast<uint32_t>(b));
      answer.add_count(state.bins[b].count);
      answer.add_min(FromOrderedBits(state.bins[b].min));
      answer.add_max(FromOrderedBits(state.bins[b].max));
    }
    std::sort(state.values.begin(), state.values.end(),
              [](double a, double b) { return OrderedBits(a) < OrderedBits(b); });
    for (double value : state.values) answer.add_values(value);
  }
  return Status::Ok();
}

Result<std::optional<int64_t>> NewestIngest(duckdb_connection conn) {
  ASSIGN_OR_RETURN(duck::QueryResult result, duck::Query(conn, kNewestIngest));
  std::optional<duck::Chunk> chunk = result.NextChunk();
  if (!chunk || chunk->size() != 1) return std::optional<int64_t>();
  return chunk->Get<int64_t>(0, 0);
}

}  // namespace

Result<ShardQueryResponse> RunShardQuery(duckdb_connection conn, const ShardQuery& query) {
  ShardQueryResponse response;
  response.set_shard(query.shard());
  std::optional<int64_t> as_of;
  if (query.has_as_of_us()) {
    as_of = query.as_of_us();
  } else {
    ASSIGN_OR_RETURN(as_of, NewestIngest(conn));
  }
  if (!as_of) return response;  // no row at all
  response.set_as_of_us(*as_of);
  if (query.probes_size() > 0) {
    RETURN_IF_ERROR(Probes(conn, query, *as_of, response));
  } else if (query.group_by_key()) {
    RETURN_IF_ERROR(Grouped(conn, query, *as_of, response));
  } else {
    RETURN_IF_ERROR(Ungrouped(conn, query, *as_of, response));
  }
  return response;
}

void QueryStore(Store& store, ShardQuery query, ShardQueryCallback done) {
  store.RunOnReader(
      [query = std::move(query), done = std::move(done)](Result<_duckdb_connection*> conn) {
        if (!conn.ok()) return done(std::move(conn).status());
        done(RunShardQuery(*conn, query));
      });
}

}  // namespace das::worker
