#include "query/shard_query.h"

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
#include "common/quantile.h"
#include "query/plan.h"
#include "query/shard_groups.h"
#include "query/shard_scan.h"
#include "storage/duckdb_util.h"

namespace das::query {
namespace {

using internal::v1::ProbeAnswer;
using internal::v1::QuantileProbe;
using internal::v1::ShardQuery;
using internal::v1::ShardQueryResponse;
using internal::v1::ShardQueryRow;

using StringSet = std::unordered_set<std::string, StringHash, std::equal_to<>>;

// The most an answer may carry: well within the control node's 64 MiB answer limit.
constexpr size_t kMaxAnswerBytes = 32 << 20;

void FillRow(const Acc& acc, int64_t bucket, ShardQueryRow& row) {
  row.set_bucket_start_ms(bucket);
  row.set_count(acc.count);
  row.set_exact_sum(acc.sum.ToBytes());
  row.set_min(FromOrderedBits(acc.min));
  row.set_max(FromOrderedBits(acc.max));
}

// --- one row per bucket -------------------------------------------------------------------

Status Ungrouped(const ScanContext& context, ShardQueryResponse& response) {
  const ShardQuery& query = *context.query;
  struct Bucket {
    Acc acc;
    StringSet keys;  // distinct_keys only
  };
  const Scan::Columns columns{query.width_ms() != 0, query.distinct_keys()};
  ASSIGN_OR_RETURN(Scan scan, Scan::Start(context, columns));
  std::map<int64_t, Bucket> buckets;
  Bucket* last = nullptr;
  int64_t last_start = 0;
  Result<bool> all = scan.ForEach([&](double value, int64_t ts_us, std::string_view key) {
    const int64_t start = BucketOf(ts_us, query.width_ms());
    if (last == nullptr || start != last_start) {
      last = &buckets[start];
      last_start = start;
      // Every bucket is a row: stop as soon as there are too many of them.
      if (query.max_rows() != 0 && buckets.size() > query.max_rows()) return false;
    }
    last->acc.Add(value);
    if (columns.key && last->keys.find(key) == last->keys.end()) last->keys.emplace(key);
    return true;
  });
  if (!all.ok()) return all.status();
  if (!*all) return TooManyRows(query.max_rows());
  for (const auto& [start, bucket] : buckets) {
    ShardQueryRow& row = *response.add_rows();
    FillRow(bucket.acc, start, row);
    if (query.distinct_keys()) row.set_distinct_keys(bucket.keys.size());
  }
  return Status::Ok();
}

// --- a round of global quantiles ----------------------------------------------------------

Status Probes(const ScanContext& context, ShardQueryResponse& response) {
  const ShardQuery& query = *context.query;
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
  ASSIGN_OR_RETURN(Scan scan, Scan::Start(context, Scan::Columns{query.width_ms() != 0, false}));
  Result<bool> all = scan.ForEach([&](double value, int64_t ts_us, std::string_view) {
    auto found = of_bucket.find(BucketOf(ts_us, query.width_ms()));
    if (found == of_bucket.end()) return true;
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
    return true;
  });
  if (!all.ok()) return all.status();
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

}  // namespace

Result<ShardQueryResponse> RunShardQuery(duckdb_connection conn, uint32_t replica,
                                         const ShardQuery& query, int64_t newest_ingest_us,
                                         std::chrono::steady_clock::time_point deadline) {
  ShardQueryResponse response;
  response.set_shard(query.shard());
  const int64_t as_of = query.has_as_of_us() ? query.as_of_us() : newest_ingest_us;
  if (as_of == std::numeric_limits<int64_t>::min()) return response;  // no row at all
  response.set_as_of_us(as_of);
  const ScanContext context{conn, replica, &query, as_of, deadline};
  RETURN_IF_ERROR(CheckDeadline(context));  // it waited too long in the queue
  if (query.probes_size() > 0) {
    RETURN_IF_ERROR(Probes(context, response));
  } else if (query.group_by_key()) {
    RETURN_IF_ERROR(Grouped(context, response));
  } else {
    RETURN_IF_ERROR(Ungrouped(context, response));
  }
  if (const size_t bytes = response.ByteSizeLong(); bytes > kMaxAnswerBytes) {
    return InvalidArgument("this shard's answer would be " + std::to_string(bytes >> 20) +
                           " MiB, over the " + std::to_string(kMaxAnswerBytes >> 20) +
                           " MiB an answer may carry: narrow the query, or ask for fewer rows or "
                           "quantiles");
  }
  return response;
}

namespace {

// The answer a scan would give, from the store's running aggregate: one row over every row
// (bucket 0, granularity "all"), none when the shard holds no row.
ShardQueryResponse FromRunningAggregate(uint32_t shard, const storage::Aggregate& aggregate,
                                        int64_t newest_ingest_us) {
  ShardQueryResponse response;
  response.set_shard(shard);
  response.set_applied_index(aggregate.applied_index);
  if (aggregate.count == 0) return response;
  response.set_as_of_us(newest_ingest_us);
  ShardQueryRow& row = *response.add_rows();
  row.set_bucket_start_ms(0);
  row.set_count(aggregate.count);
  row.set_exact_sum(aggregate.sum.ToBytes());
  if (aggregate.min) row.set_min(*aggregate.min);
  if (aggregate.max) row.set_max(*aggregate.max);
  return response;
}

}  // namespace

void QueryStore(storage::Store& store, ShardQuery query, ShardQueryCallback done) {
  if (RunningAggregateAnswers(query)) {
    const uint32_t shard = query.shard();
    const int64_t newest = store.newest_ingest_us();
    store.ComputeAggregate(
        [shard, newest, done = std::move(done)](Result<storage::Aggregate> aggregate) {
          if (!aggregate.ok()) return done(std::move(aggregate).status());
          done(FromRunningAggregate(shard, *aggregate, newest));
        });
    return;
  }
  const auto deadline = query.timeout_ms() == 0 ? std::chrono::steady_clock::time_point::max()
                                                : std::chrono::steady_clock::now() +
                                                      std::chrono::milliseconds(query.timeout_ms());
  storage::Store* target = &store;
  store.RunOnReader([target, deadline, query = std::move(query),
                     done = std::move(done)](Result<_duckdb_connection*> conn) {
    if (!conn.ok()) return done(std::move(conn).status());
    // Read before the scan starts: every row it may see committed after is later than this.
    done(RunShardQuery(*conn, target->replica(), query, target->newest_ingest_us(), deadline));
  });
}

}  // namespace das::query
