#include "storage/store_tables.h"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <limits>
#include <optional>
#include <string>
#include <system_error>

#include <spdlog/spdlog.h>

#include "storage/duckdb_util.h"

namespace das::storage {
namespace {

// Keys are VARCHAR: callers validate them as UTF-8.
constexpr const char* kCreate[] = {
    "CREATE TABLE IF NOT EXISTS replica_keys (replica UINTEGER NOT NULL, key VARCHAR NOT NULL, "
    "fingerprint UBIGINT NOT NULL, rows_written UBIGINT NOT NULL, "
    "committed_at TIMESTAMP NOT NULL, PRIMARY KEY (replica, key))",
    "CREATE TABLE IF NOT EXISTS replica_requests (replica UINTEGER NOT NULL, "
    "request_id UBIGINT NOT NULL, raft_index UBIGINT NOT NULL, outcomes VARCHAR NOT NULL)",
    "CREATE TABLE IF NOT EXISTS replica_applied (replica UINTEGER PRIMARY KEY, "
    "applied_index UBIGINT NOT NULL)",
};

// The name a copy is attached under: attached databases are shared by every connection of the
// database, so two copies read or written at once (on two reader threads) need names of their own.
std::string CopyAlias(const char* prefix) {
  static std::atomic<uint64_t> next{0};
  return std::string(prefix) + "_" + std::to_string(next.fetch_add(1));
}

std::string Id(uint32_t replica) { return std::to_string(replica); }

std::string CreateRowsSql(uint32_t replica) {
  return "CREATE TABLE IF NOT EXISTS " + RowsTable(replica) +
         " (partition_key VARCHAR NOT NULL, value DOUBLE NOT NULL, ingest_ts TIMESTAMP NOT NULL)";
}

Result<uint64_t> SingleUnsigned(duckdb_connection conn, const std::string& sql) {
  ASSIGN_OR_RETURN(duck::QueryResult result, duck::Query(conn, sql.c_str()));
  std::optional<duck::Chunk> chunk = result.NextChunk();
  return chunk && chunk->size() == 1 ? chunk->Get<uint64_t>(0, 0).value_or(0) : 0;
}

// The applied index of the copy attached as `alias` (the one-replica layout).
Result<uint64_t> CopyAppliedIndex(duckdb_connection conn, const std::string& alias) {
  return SingleUnsigned(conn, "SELECT greatest((SELECT coalesce(max(applied_index), 0) FROM " +
                                  alias +
                                  ".raft_applied), (SELECT coalesce(max(raft_index), 0) "
                                  "FROM " +
                                  alias + ".raft_requests))::UBIGINT");
}

// Runs `statements` in one transaction, rolled back if one fails.
Status InTransaction(duckdb_connection conn, const std::vector<std::string>& statements) {
  RETURN_IF_ERROR(duck::Exec(conn, "BEGIN TRANSACTION"));
  Status done = Status::Ok();
  for (const std::string& sql : statements) {
    done = duck::Exec(conn, sql.c_str());
    if (!done.ok()) break;
  }
  if (done.ok()) done = duck::Exec(conn, "COMMIT");
  if (!done.ok()) {
    if (Status rolled_back = duck::Exec(conn, "ROLLBACK"); !rolled_back.ok()) {
      spdlog::debug("store: {}", rolled_back.ToString());
    }
  }
  return done;
}

// Columns by name, never by position, so that a copy made by another version of this layout
// cannot mix them up.
std::vector<std::string> ExportStatements(uint32_t replica, const std::string& to) {
  const std::string where = " WHERE replica = " + Id(replica);
  return {
      "CREATE TABLE " + to + ".rows AS SELECT partition_key, value, ingest_ts FROM " +
          RowsTable(replica),
      "CREATE TABLE " + to +
          ".idempotency_keys AS SELECT key, fingerprint, rows_written, committed_at FROM "
          "replica_keys" +
          where,
      "CREATE TABLE " + to +
          ".raft_requests AS SELECT request_id, raft_index, outcomes FROM replica_requests" + where,
      "CREATE TABLE " + to + ".raft_applied AS SELECT 1 AS id, applied_index FROM replica_applied" +
          where,
  };
}

std::vector<std::string> DeleteStatements(uint32_t replica) {
  const std::string where = " WHERE replica = " + Id(replica);
  return {"DROP TABLE IF EXISTS " + RowsTable(replica), "DELETE FROM replica_keys" + where,
          "DELETE FROM replica_requests" + where, "DELETE FROM replica_applied" + where};
}

std::vector<std::string> ImportStatements(uint32_t replica, uint64_t applied_index,
                                          const std::string& from) {
  const std::string id = Id(replica);
  // The rows table is emptied, not dropped: the applier's insert into it stays prepared.
  const std::string where = " WHERE replica = " + id;
  std::vector<std::string> statements = {
      CreateRowsSql(replica), "DELETE FROM " + RowsTable(replica),
      "DELETE FROM replica_keys" + where, "DELETE FROM replica_requests" + where,
      "DELETE FROM replica_applied" + where};
  statements.push_back("INSERT INTO " + RowsTable(replica) +
                       " (partition_key, value, ingest_ts) SELECT partition_key, value, "
                       "ingest_ts FROM " +
                       from + ".rows");
  statements.push_back(
      "INSERT INTO replica_keys (replica, key, fingerprint, rows_written, committed_at) "
      "SELECT " +
      id + ", key, fingerprint, rows_written, committed_at FROM " + from + ".idempotency_keys");
  statements.push_back(
      "INSERT INTO replica_requests (replica, request_id, raft_index, outcomes) "
      "SELECT " +
      id + ", request_id, raft_index, outcomes FROM " + from + ".raft_requests");
  statements.push_back("INSERT INTO replica_applied (replica, applied_index) VALUES (" + id + ", " +
                       std::to_string(applied_index) + ")");
  return statements;
}

void RemoveFile(const std::string& path) {
  std::error_code error;
  std::filesystem::remove(path, error);
  std::filesystem::remove(path + ".wal", error);
}

}  // namespace

Status CreateStoreTables(duckdb_connection conn) {
  for (const char* sql : kCreate) RETURN_IF_ERROR(duck::Exec(conn, sql));
  return Status::Ok();
}

std::string RowsTable(uint32_t replica) { return "replica_rows_" + Id(replica); }

Status CreateRowsTable(duckdb_connection conn, uint32_t replica) {
  return duck::Exec(conn, CreateRowsSql(replica).c_str());
}

Result<uint64_t> ReadAppliedIndex(duckdb_connection conn, uint32_t replica) {
  const std::string where = " WHERE replica = " + Id(replica);
  return SingleUnsigned(
      conn, "SELECT greatest((SELECT coalesce(max(applied_index), 0) FROM replica_applied" + where +
                "), (SELECT coalesce(max(raft_index), 0) FROM replica_requests" + where +
                "))::UBIGINT");
}

Result<Aggregate> ScanReplica(duckdb_connection conn, uint32_t replica) {
  const std::string sql = "SELECT value FROM " + RowsTable(replica);
  ASSIGN_OR_RETURN(duck::QueryResult result, duck::Query(conn, sql.c_str()));
  Aggregate aggregate;
  double min = std::numeric_limits<double>::infinity();
  double max = -std::numeric_limits<double>::infinity();
  // The column is NOT NULL and every stored value finite (validated before it was written).
  while (std::optional<duck::Chunk> chunk = result.NextChunk()) {
    const double* values = chunk->Data<double>(0);
    const size_t n = chunk->size();
    for (size_t i = 0; i < n; ++i) {
      aggregate.sum.Add(values[i]);
      min = std::min(min, values[i]);
      max = std::max(max, values[i]);
    }
    aggregate.count += n;
  }
  if (aggregate.count > 0) {
    aggregate.min = min;
    aggregate.max = max;
  }
  return aggregate;
}

Result<uint64_t> ExportReplica(duckdb_connection conn, uint32_t replica, const std::string& path) {
  RemoveFile(path);
  const std::string alias = CopyAlias("das_copy_out");
  RETURN_IF_ERROR(duck::Exec(conn, ("ATTACH " + duck::Quote(path) + " AS " + alias).c_str()));
  auto copy = [&]() -> Result<uint64_t> {
    RETURN_IF_ERROR(InTransaction(conn, ExportStatements(replica, alias)));
    ASSIGN_OR_RETURN(const uint64_t index, CopyAppliedIndex(conn, alias));
    RETURN_IF_ERROR(duck::Exec(conn, ("CHECKPOINT " + alias).c_str()));
    return index;
  };
  Result<uint64_t> copied = copy();
  Status detached = duck::Exec(conn, ("DETACH " + alias).c_str());
  if (!copied.ok() || !detached.ok()) RemoveFile(path);
  if (!copied.ok()) return copied;
  RETURN_IF_ERROR(detached);
  // Checkpointed and closed: the file alone is the copy.
  std::error_code error;
  if (std::filesystem::exists(path + ".wal", error)) {
    return Internal("the copy " + path + " kept a write-ahead log after DETACH");
  }
  return copied;
}

Result<uint64_t> ImportReplica(duckdb_connection conn, uint32_t replica, const std::string& path,
                               uint64_t min_index) {
  const std::string alias = CopyAlias("das_copy_in");
  RETURN_IF_ERROR(
      duck::Exec(conn, ("ATTACH " + duck::Quote(path) + " AS " + alias + " (READ_ONLY)").c_str()));
  auto import = [&]() -> Result<uint64_t> {
    ASSIGN_OR_RETURN(const uint64_t index, CopyAppliedIndex(conn, alias));
    if (index < min_index) {
      return Unavailable("the copy holds the entries up to " + std::to_string(index) +
                         ", not up to " + std::to_string(min_index));
    }
    RETURN_IF_ERROR(InTransaction(conn, ImportStatements(replica, index, alias)));
    return index;
  };
  Result<uint64_t> imported = import();
  Status detached = duck::Exec(conn, ("DETACH " + alias).c_str());
  if (!imported.ok()) return imported;
  RETURN_IF_ERROR(detached);
  return imported;
}

Status DeleteReplica(duckdb_connection conn, uint32_t replica) {
  return InTransaction(conn, DeleteStatements(replica));
}

Result<std::vector<uint32_t>> ListReplicas(duckdb_connection conn) {
  ASSIGN_OR_RETURN(duck::QueryResult result,
                   duck::Query(conn, "SELECT replica FROM replica_applied ORDER BY replica"));
  std::vector<uint32_t> replicas;
  while (std::optional<duck::Chunk> chunk = result.NextChunk()) {
    const auto* ids = chunk->Data<uint32_t>(0);
    replicas.insert(replicas.end(), ids, ids + chunk->size());
  }
  return replicas;
}

}  // namespace das::storage
