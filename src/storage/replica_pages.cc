#include "storage/replica_pages.h"

#include <optional>

#include "storage/duckdb_util.h"
#include "storage/store_tables.h"

namespace das::storage {
namespace {

Result<uint64_t> Count(duckdb_connection conn, const std::string& sql) {
  ASSIGN_OR_RETURN(duck::QueryResult result, duck::Query(conn, sql.c_str()));
  std::optional<duck::Chunk> chunk = result.NextChunk();
  if (!chunk || chunk->size() != 1) return Internal("no count from: " + sql);
  return static_cast<uint64_t>(chunk->Get<int64_t>(0, 0).value_or(0));
}

}  // namespace

Result<RowsPage> ReadRowsPage(duckdb_connection conn, uint32_t replica, uint64_t from,
                              uint32_t limit, size_t max_bytes) {
  const std::string table = RowsTable(replica);
  RowsPage page;
  ASSIGN_OR_RETURN(page.total, Count(conn, "SELECT count(*) FROM " + table));
  const std::string sql = "SELECT rowid, partition_key, value, epoch_us(ingest_ts) FROM " + table +
                          " WHERE rowid >= " + std::to_string(from) + " ORDER BY rowid LIMIT " +
                          std::to_string(limit);
  ASSIGN_OR_RETURN(duck::QueryResult result, duck::Query(conn, sql.c_str()));
  page.next = from;
  size_t bytes = 0;
  bool cut = false;
  while (std::optional<duck::Chunk> chunk = result.NextChunk()) {
    for (size_t r = 0; r < chunk->size() && !cut; ++r) {
      PagedRow& row = page.rows.emplace_back();
      row.partition_key = std::string(chunk->String(1, r));
      row.value = chunk->Data<double>(2)[r];
      row.ingest_us = chunk->Data<int64_t>(3)[r];
      page.next = static_cast<uint64_t>(chunk->Data<int64_t>(0)[r]) + 1;
      bytes += row.partition_key.size() + 24;
      cut = bytes >= max_bytes;
    }
  }
  RETURN_IF_ERROR(result.Error("read the rows of replica " + std::to_string(replica)));
  page.done = !cut && page.rows.size() < limit;
  return page;
}

Result<KeysPage> ReadKeysPage(duckdb_connection conn, uint32_t replica, uint64_t from,
                              uint32_t limit, size_t max_bytes) {
  const std::string where = " WHERE replica = " + std::to_string(replica);
  KeysPage page;
  ASSIGN_OR_RETURN(page.total, Count(conn, "SELECT count(*) FROM replica_keys" + where));
  const std::string sql = "SELECT key, fingerprint FROM replica_keys" + where +
                          " ORDER BY key LIMIT " + std::to_string(limit) + " OFFSET " +
                          std::to_string(from);
  ASSIGN_OR_RETURN(duck::QueryResult result, duck::Query(conn, sql.c_str()));
  size_t bytes = 0;
  bool cut = false;
  while (std::optional<duck::Chunk> chunk = result.NextChunk()) {
    for (size_t r = 0; r < chunk->size() && !cut; ++r) {
      page.keys.push_back({std::string(chunk->String(0, r)), chunk->Data<uint64_t>(1)[r]});
      bytes += page.keys.back().key.size() + 8;
      cut = bytes >= max_bytes;
    }
  }
  RETURN_IF_ERROR(result.Error("read the keys of replica " + std::to_string(replica)));
  page.next = from + page.keys.size();
  page.done = !cut && page.keys.size() < limit;
  return page;
}

}  // namespace das::storage
