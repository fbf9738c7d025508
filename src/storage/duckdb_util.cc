#include "storage/duckdb_util.h"

#include <memory>

#include <spdlog/spdlog.h>

namespace das::storage::duck {
namespace {

const char* OrUnknown(const char* message) { return message != nullptr ? message : "unknown"; }

// Frees a string the C API allocated.
struct DuckFree {
  void operator()(char* p) const { duckdb_free(p); }
};

}  // namespace

Status Error(std::string_view what, std::string_view duckdb_message) {
  spdlog::error("duckdb: {}: {}", what, duckdb_message);
  return Internal(std::string(what) + ": " + std::string(duckdb_message));
}

Result<DatabaseHandle> OpenDatabase(const std::string& path, size_t threads,
                                    uint64_t checkpoint_threshold_bytes,
                                    uint64_t memory_limit_bytes) {
  duckdb_config raw_config = nullptr;
  if (duckdb_create_config(&raw_config) == DuckDBError) {
    return Unavailable("duckdb: cannot create a config for " + path);
  }
  UniqueHandle<duckdb_config, &duckdb_destroy_config> config(raw_config);
  if (threads != 0 &&
      duckdb_set_config(config.get(), "threads", std::to_string(threads).c_str()) == DuckDBError) {
    return Unavailable("duckdb: invalid threads=" + std::to_string(threads));
  }
  const std::string threshold = std::to_string(checkpoint_threshold_bytes / 1024) + "KiB";
  if (checkpoint_threshold_bytes != 0 &&
      duckdb_set_config(config.get(), "checkpoint_threshold", threshold.c_str()) == DuckDBError) {
    return Unavailable("duckdb: invalid checkpoint_threshold=" + threshold);
  }
  const std::string memory = std::to_string(memory_limit_bytes / 1024) + "KiB";
  if (memory_limit_bytes != 0 &&
      duckdb_set_config(config.get(), "memory_limit", memory.c_str()) == DuckDBError) {
    return Unavailable("duckdb: invalid memory_limit=" + memory);
  }
  duckdb_database db = nullptr;
  char* raw_error = nullptr;
  if (duckdb_open_ext(path.c_str(), &db, config.get(), &raw_error) == DuckDBError) {
    std::unique_ptr<char, DuckFree> error(raw_error);
    std::string message = "cannot open " + path + ": " + OrUnknown(raw_error);
    spdlog::error("duckdb: {}", message);
    return Unavailable(std::move(message));
  }
  return DatabaseHandle(db);
}

Result<ConnectionHandle> Connect(duckdb_database db) {
  duckdb_connection conn = nullptr;
  if (duckdb_connect(db, &conn) == DuckDBError) return Error("connect", "no connection");
  return ConnectionHandle(conn);
}

bool Chunk::IsValid(size_t col, size_t row) const {
  // A null validity mask means every row is valid.
  uint64_t* validity = duckdb_vector_get_validity(Vector(col));
  return validity == nullptr || duckdb_validity_row_is_valid(validity, row);
}

std::string_view Chunk::String(size_t col, size_t row) const {
  // duckdb_string_t_data must see the element in place: short strings are stored inline.
  auto* s = const_cast<duckdb_string_t*>(Data<duckdb_string_t>(col) + row);
  return {duckdb_string_t_data(s), duckdb_string_t_length(*s)};
}

QueryResult::~QueryResult() { Reset(); }

QueryResult::QueryResult(QueryResult&& other) noexcept
    : result_(other.result_), owned_(std::exchange(other.owned_, false)) {}

QueryResult& QueryResult::operator=(QueryResult&& other) noexcept {
  if (this != &other) {
    Reset();
    result_ = other.result_;
    owned_ = std::exchange(other.owned_, false);
  }
  return *this;
}

void QueryResult::Reset() {
  if (owned_) duckdb_destroy_result(&result_);
  owned_ = false;
}

std::optional<Chunk> QueryResult::NextChunk() {
  if (!owned_) return std::nullopt;
  duckdb_data_chunk chunk = duckdb_fetch_chunk(result_);
  if (chunk == nullptr) return std::nullopt;
  return Chunk(ChunkHandle(chunk));
}

Status QueryResult::Error(std::string_view what) {
  if (!owned_) return Status::Ok();
  const char* message = duckdb_result_error(&result_);
  return message == nullptr ? Status::Ok() : das::storage::duck::Error(what, message);
}

Result<QueryResult> Query(duckdb_connection conn, const char* sql) {
  QueryResult out;
  // The result must be destroyed even when the query failed.
  const duckdb_state state = duckdb_query(conn, sql, &out.result_);
  out.owned_ = true;
  if (state == DuckDBError) return Error(sql, OrUnknown(duckdb_result_error(&out.result_)));
  return out;
}

Status Exec(duckdb_connection conn, const char* sql) {
  Result<QueryResult> result = Query(conn, sql);
  return result.ok() ? Status::Ok() : std::move(result).status();
}

Result<PreparedHandle> Prepare(duckdb_connection conn, const char* sql) {
  duckdb_prepared_statement raw = nullptr;
  const duckdb_state state = duckdb_prepare(conn, sql, &raw);
  PreparedHandle stmt(raw);  // destroyed even when the prepare failed
  if (state == DuckDBError) {
    return Error(std::string("prepare ") + sql, OrUnknown(duckdb_prepare_error(raw)));
  }
  return stmt;
}

Result<QueryResult> Execute(duckdb_prepared_statement stmt, std::string_view what) {
  QueryResult out;
  const duckdb_state state = duckdb_execute_prepared(stmt, &out.result_);
  out.owned_ = true;
  if (state == DuckDBError) return Error(what, OrUnknown(duckdb_result_error(&out.result_)));
  return out;
}

Result<QueryResult> ExecuteStreaming(duckdb_prepared_statement stmt, std::string_view what) {
  duckdb_pending_result raw = nullptr;
  const duckdb_state prepared = duckdb_pending_prepared_streaming(stmt, &raw);
  UniqueHandle<duckdb_pending_result, &duckdb_destroy_pending> pending(raw);  // destroyed always
  if (prepared == DuckDBError) return Error(what, OrUnknown(duckdb_pending_error(raw)));
  QueryResult out;
  const duckdb_state state = duckdb_execute_pending(raw, &out.result_);
  out.owned_ = true;
  if (state == DuckDBError) return Error(what, OrUnknown(duckdb_result_error(&out.result_)));
  return out;
}

std::string Quote(std::string_view text) {
  std::string out = "'";
  for (char c : text) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

}  // namespace das::storage::duck
