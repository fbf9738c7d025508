#include "query/plan.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <optional>
#include <set>

#include "common/validation.h"

namespace das::query {
namespace {

using internal::v1::ShardQuery;

ApiError Unprocessable(std::string message) { return ApiError{422, std::move(message)}; }

// 'text' (built by appending: GCC 12 at -O3 warns falsely on "literal" + std::string&&).
std::string Quoted(std::string_view text) {
  std::string out = "'";
  out.append(text);
  out += '\'';
  return out;
}

// Years 0000-9999: what RFC 3339 can write, and far inside DuckDB's TIMESTAMP range.
constexpr int64_t kMinInstantMs = -62'167'219'200'000;  // 0000-01-01T00:00:00Z
constexpr int64_t kMaxInstantMs = 253'402'300'799'999;  // 9999-12-31T23:59:59.999Z

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2 ? 1 : 0;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

unsigned DaysInMonth(int64_t y, unsigned m) {
  static constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : kDays[m - 1];
}

// Reads exactly `n` digits at `pos`.
std::optional<unsigned> Digits(std::string_view text, size_t pos, size_t n) {
  if (pos + n > text.size()) return std::nullopt;
  unsigned value = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (text[i] < '0' || text[i] > '9') return std::nullopt;
    value = value * 10 + static_cast<unsigned>(text[i] - '0');
  }
  return value;
}

Result<int64_t> ParseEpochMs(std::string_view text) {
  int64_t ms = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), ms);
  if (error != std::errc() || end != text.data() + text.size() || ms < kMinInstantMs ||
      ms > kMaxInstantMs) {
    return InvalidArgument(Quoted(text) + " is not epoch milliseconds of a year 0000-9999");
  }
  return ms * 1000;
}

Result<int64_t> ParseRfc3339(std::string_view t) {
  const Status bad = InvalidArgument(
      Quoted(t) + " is neither RFC 3339 (2026-12-01T08:00:00Z) nor epoch milliseconds");
  auto year = Digits(t, 0, 4), month = Digits(t, 5, 2), day = Digits(t, 8, 2);
  auto hour = Digits(t, 11, 2), minute = Digits(t, 14, 2), second = Digits(t, 17, 2);
  if (!year || !month || !day || !hour || !minute || !second || t[4] != '-' || t[7] != '-' ||
      (t[10] != 'T' && t[10] != 't' && t[10] != ' ') || t[13] != ':' || t[16] != ':') {
    return bad;
  }
  if (*month < 1 || *month > 12 || *day < 1 || *day > DaysInMonth(*year, *month) || *hour > 23 ||
      *minute > 59 || *second > 59) {
    return InvalidArgument(Quoted(t) + " is not a valid date and time");
  }
  size_t pos = 19;
  int64_t micros = 0;
  if (pos < t.size() && t[pos] == '.') {
    size_t digits = 0;
    for (++pos; pos < t.size() && t[pos] >= '0' && t[pos] <= '9'; ++pos, ++digits) {
      if (digits < 6) micros = micros * 10 + (t[pos] - '0');
    }
    if (digits == 0 || digits > 9) return bad;
    for (size_t i = digits; i < 6; ++i) micros *= 10;
  }
  int64_t offset_s = 0;
  if (pos < t.size() && (t[pos] == 'Z' || t[pos] == 'z')) {
    ++pos;
  } else if (pos < t.size() && (t[pos] == '+' || t[pos] == '-')) {
    auto oh = Digits(t, pos + 1, 2), om = Digits(t, pos + 4, 2);
    if (!oh || !om || pos + 3 >= t.size() || t[pos + 3] != ':' || *oh > 23 || *om > 59) return bad;
    offset_s = (t[pos] == '-' ? -1 : 1) * static_cast<int64_t>(*oh * 3600 + *om * 60);
    pos += 6;
  } else {
    return bad;  // RFC 3339 requires the offset
  }
  if (pos != t.size()) return bad;
  const int64_t seconds =
      DaysFromCivil(*year, *month, *day) * 86400 + *hour * 3600 + *minute * 60 + *second - offset_s;
  return seconds * 1'000'000 + micros;
}

std::optional<ShardQuery::Metric> MetricNamed(std::string_view name) {
  if (name == "count") return ShardQuery::COUNT;
  if (name == "sum") return ShardQuery::SUM;
  if (name == "avg") return ShardQuery::AVG;
  if (name == "min") return ShardQuery::MIN;
  if (name == "max") return ShardQuery::MAX;
  if (name == "key") return ShardQuery::KEY;
  return std::nullopt;
}

std::optional<ApiError> PlanFilters(const das::v1::Query& query, QueryPlan& plan) {
  ShardQuery& shard = plan.shard_query;
  std::optional<int64_t> from_us, to_us;
  if (!query.from().empty()) {
    Result<int64_t> from = ParseInstant(query.from());
    if (!from.ok()) return Unprocessable("from: " + from.status().message());
    from_us = *from;
    shard.set_from_us(*from);
  }
  if (!query.to().empty()) {
    Result<int64_t> to = ParseInstant(query.to());
    if (!to.ok()) return Unprocessable("to: " + to.status().message());
    to_us = *to;
    shard.set_to_us(*to);
  }
  if (from_us && to_us && *from_us > *to_us) {
    return Unprocessable("from (" + query.from() + ") is after to (" + query.to() + ")");
  }
  const int filters = (query.key().empty() ? 0 : 1) + (query.key_prefix().empty() ? 0 : 1) +
                      (query.keys().empty() ? 0 : 1);
  if (filters > 1) return Unprocessable("key, key_prefix and keys: give at most one of them");
  if (!query.key().empty()) {
    if (Status s = ValidateRow(query.key(), 0.0); !s.ok())
      return Unprocessable("key: " + s.message());
    plan.keys.push_back(query.key());
    plan.single_key = true;
  }
  if (!query.key_prefix().empty()) {
    if (query.key_prefix().size() > kMaxPartitionKeyBytes) {
      return Unprocessable("key_prefix: longer than a key may be (1024 bytes)");
    }
    shard.set_key_prefix(query.key_prefix());
  }
  if (query.keys_size() > kMaxQueryKeys) {
    return Unprocessable("keys: at most " + std::to_string(kMaxQueryKeys) + " keys, not " +
                         std::to_string(query.keys_size()));
  }
  std::set<std::string> distinct;
  for (int i = 0; i < query.keys_size(); ++i) {
    if (Status s = ValidateRow(query.keys(i), 0.0); !s.ok()) {
      return Unprocessable("keys[" + std::to_string(i) + "]: " + s.message());
    }
    if (distinct.insert(query.keys(i)).second) plan.keys.push_back(query.keys(i));
  }
  return std::nullopt;
}

std::optional<ApiError> PlanGrouping(const das::v1::Query& query, QueryPlan& plan) {
  ShardQuery& shard = plan.shard_query;
  Result<int64_t> width = ParseGranularity(query.granularity());
  if (!width.ok()) return Unprocessable("granularity: " + width.status().message());
  plan.width_ms = *width;
  shard.set_width_ms(*width);
  if (!query.group_by().empty() && query.group_by() != "key") {
    return Unprocessable("group_by: must be key (or absent), not " + Quoted(query.group_by()));
  }
  plan.grouped = query.group_by() == "key";
  shard.set_group_by_key(plan.grouped);
  if (!plan.grouped) {
    if (!query.order_by().empty()) return Unprocessable("order_by: only with group_by: key");
    if (!query.order().empty()) return Unprocessable("order: only with group_by: key");
    if (query.has_limit()) return Unprocessable("limit: only with group_by: key");
    return std::nullopt;
  }
  std::optional<ShardQuery::Metric> metric = ShardQuery::COUNT;
  if (!query.order_by().empty()) metric = MetricNamed(query.order_by());
  if (!metric) {
    return Unprocessable("order_by: must be count, sum, avg, min, max or key, not " +
                         Quoted(query.order_by()));
  }
  shard.set_order_by(*metric);
  bool descending = *metric != ShardQuery::KEY;
  if (query.order() == "asc") {
    descending = false;
  } else if (query.order() == "desc") {
    descending = true;
  } else if (!query.order().empty()) {
    return Unprocessable("order: must be asc or desc, not " + Quoted(query.order()));
  }
  shard.set_descending(descending);
  const uint32_t limit = query.has_limit() ? query.limit() : kDefaultQueryLimit;
  if (limit < 1 || limit > kMaxQueryLimit) {
    return Unprocessable("limit: must be 1 to " + std::to_string(kMaxQueryLimit) + ", not " +
                         std::to_string(limit));
  }
  shard.set_limit(limit);
  return std::nullopt;
}

std::optional<ApiError> PlanAggregates(const das::v1::Query& query, QueryPlan& plan) {
  if (query.aggregates_size() > 0) {
    plan.want_count = plan.want_sum = plan.want_avg = plan.want_min = plan.want_max = false;
  }
  for (const std::string& name : query.aggregates()) {
    if (name == "count") {
      plan.want_count = true;
    } else if (name == "sum") {
      plan.want_sum = true;
    } else if (name == "avg") {
      plan.want_avg = true;
    } else if (name == "min") {
      plan.want_min = true;
    } else if (name == "max") {
      plan.want_max = true;
    } else if (name == "count_distinct_keys") {
      plan.want_distinct = true;
    } else {
      return Unprocessable("aggregates: " + Quoted(name) +
                           " is not one of count, sum, avg, min, max, count_distinct_keys");
    }
  }
  plan.shard_query.set_distinct_keys(plan.want_distinct && !plan.grouped);
  if (query.quantiles_size() > kMaxQuantiles) {
    return Unprocessable("quantiles: at most " + std::to_string(kMaxQuantiles) + ", not " +
                         std::to_string(query.quantiles_size()));
  }
  for (int i = 0; i < query.quantiles_size(); ++i) {
    const double q = query.quantiles(i);
    if (!(q >= 0.0 && q <= 1.0)) {
      std::string shown = std::isnan(q) ? "NaN" : std::to_string(q);
      return Unprocessable("quantiles[" + std::to_string(i) + "]: must be in [0, 1], not " + shown);
    }
    plan.quantiles.push_back(q);
    if (plan.grouped) plan.shard_query.add_quantiles(q);
  }
  return std::nullopt;
}

}  // namespace

Result<int64_t> ParseInstant(std::string_view text) {
  const bool epoch =
      !text.empty() && std::all_of(text.begin() + (text.front() == '-' ? 1 : 0), text.end(),
                                   [](char c) { return c >= '0' && c <= '9'; });
  if (epoch) return ParseEpochMs(text);
  return ParseRfc3339(text);
}

Result<int64_t> ParseGranularity(std::string_view text) {
  if (text.empty() || text == "all") return int64_t{0};
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  const std::string_view unit = text.substr(digits);
  int64_t n = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + digits, n);
  int64_t unit_ms = 0;
  if (unit == "ms") unit_ms = 1;
  if (unit == "s") unit_ms = 1000;
  if (unit == "m") unit_ms = 60'000;
  if (unit == "h") unit_ms = 3'600'000;
  if (unit == "d") unit_ms = 86'400'000;
  if (digits == 0 || error != std::errc() || unit_ms == 0 || n < 1 ||
      n > kMaxBucketWidthMs / unit_ms) {
    return InvalidArgument(
        "must be all or a width such as 1s, 1m, 1h, 1d (<n> then ms, s, m, h or d; 1 ms to 366 "
        "days), not " +
        Quoted(text));
  }
  return n * unit_ms;
}

Decoded<das::v1::Query> QueryFromParams(const std::vector<http::QueryParam>& params) {
  das::v1::Query query;
  std::set<std::string> seen;
  for (const http::QueryParam& param : params) {
    if (param.name == "format") continue;
    if (!seen.insert(param.name).second) {
      return ApiError{400, "query parameter '" + param.name + "' is given more than once"};
    }
    // Unlike a protobuf field, a parameter can be present and empty: that is no filter at all.
    if (param.value.empty()) {
      return ApiError{422, param.name + ": empty; leave the parameter out for no filter"};
    }
    if (param.name == "key") query.set_key(param.value);
    if (param.name == "key_prefix") query.set_key_prefix(param.value);
    if (param.name == "from") query.set_from(param.value);
    if (param.name == "to") query.set_to(param.value);
  }
  return query;
}

Decoded<QueryPlan> PlanQuery(const das::v1::Query& query, uint32_t max_rows) {
  QueryPlan plan;
  plan.max_rows = max_rows;
  plan.shard_query.set_max_rows(max_rows);
  if (auto error = PlanFilters(query, plan)) return *error;
  if (auto error = PlanGrouping(query, plan)) return *error;
  if (auto error = PlanAggregates(query, plan)) return *error;
  plan.allow_partial = !query.has_allow_partial() || query.allow_partial();
  return plan;
}

bool RunningAggregateAnswers(const internal::v1::ShardQuery& query) {
  return !query.has_from_us() && !query.has_to_us() && query.keys_size() == 0 &&
         query.key_prefix().empty() && query.width_ms() == 0 && !query.group_by_key() &&
         !query.distinct_keys() && query.quantiles_size() == 0 && query.probes_size() == 0 &&
         !query.has_as_of_us();
}

}  // namespace das::query
