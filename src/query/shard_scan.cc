#include "query/shard_scan.h"

#include <duckdb.h>

#include <utility>

#include "storage/store_tables.h"

namespace das::query {
namespace {

int64_t FloorDiv(int64_t a, int64_t b) {
  const int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

// Built by appending: GCC 12 at -O3 warns falsely on "literal" + std::string&&.
std::string Param(int n) {
  std::string out = "$";
  out += std::to_string(n);
  return out;
}

}  // namespace

int64_t BucketOf(int64_t ts_us, int64_t width_ms) {
  if (width_ms == 0) return 0;
  return FloorDiv(FloorDiv(ts_us, 1000), width_ms) * width_ms;
}

Status CheckDeadline(const ScanContext& context) {
  if (std::chrono::steady_clock::now() <= context.deadline) return Status::Ok();
  return DeadlineExceeded("the query's deadline passed while this shard read its rows");
}

Status TooManyRows(uint32_t cap) {
  std::string message = "the answer would have more than ";
  message.append(std::to_string(cap)).append(" rows (--query-max-rows)");
  return InvalidArgument(std::move(message));
}

std::string WhereSql(const internal::v1::ShardQuery& query, int first) {
  int n = first;
  std::string sql = "ingest_ts <= ";
  sql += Param(n++);
  if (query.has_from_us()) sql.append(" AND ingest_ts >= ").append(Param(n++));
  if (query.has_to_us()) sql.append(" AND ingest_ts < ").append(Param(n++));
  if (query.keys_size() > 0) {
    sql += " AND partition_key IN (";
    for (int i = 0; i < query.keys_size(); ++i) sql.append(i == 0 ? "" : ", ").append(Param(n++));
    sql += ")";
  }
  if (!query.key_prefix().empty()) {
    sql.append(" AND starts_with(partition_key, ").append(Param(n++)).append(")");
  }
  return sql;
}

Status BindWhere(duckdb_prepared_statement stmt, const internal::v1::ShardQuery& query,
                 int64_t as_of_us, int first) {
  idx_t param = static_cast<idx_t>(first);
  auto bind_ts = [&](int64_t us) {
    return duckdb_bind_timestamp(stmt, param++, storage::duck::Timestamp(us)) == DuckDBSuccess;
  };
  auto bind_text = [&](const std::string& text) {
    return duckdb_bind_varchar_length(stmt, param++, text.data(), text.size()) == DuckDBSuccess;
  };
  bool ok = bind_ts(as_of_us);
  if (query.has_from_us()) ok = ok && bind_ts(query.from_us());
  if (query.has_to_us()) ok = ok && bind_ts(query.to_us());
  for (const std::string& key : query.keys()) ok = ok && bind_text(key);
  if (!query.key_prefix().empty()) ok = ok && bind_text(query.key_prefix());
  return ok ? Status::Ok() : storage::duck::Error("bind the query's filters", "invalid parameter");
}

Result<Scan> Scan::Start(const ScanContext& context, Columns columns) {
  std::string sql = "SELECT value";
  if (columns.ts) sql += ", ingest_ts";
  if (columns.key) sql += ", partition_key";
  sql.append(" FROM ")
      .append(storage::RowsTable(context.replica))
      .append(" WHERE ")
      .append(WhereSql(*context.query));
  ASSIGN_OR_RETURN(storage::duck::PreparedHandle stmt,
                   storage::duck::Prepare(context.conn, sql.c_str()));
  RETURN_IF_ERROR(BindWhere(stmt.get(), *context.query, context.as_of_us));
  Scan scan(context, std::move(stmt), columns);
  ASSIGN_OR_RETURN(scan.result_,
                   storage::duck::ExecuteStreaming(scan.stmt_.get(), "scan for a query"));
  return scan;
}

}  // namespace das::query
