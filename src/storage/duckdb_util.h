// The store's edge to DuckDB: RAII owners of DuckDB C API handles, and the one place where a
// DuckDB error becomes a das::Status (kUnavailable when a database cannot be opened, e.g. its
// file is locked by another process; kInternal for every other failure).
//
// Only duckdb.h (the stable C API) is used. Every type here is move-only and not thread-safe:
// a connection, and everything created from it, belongs to one thread at a time.
#pragma once

#include <duckdb.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "common/status.h"

namespace das::storage::duck {

// kInternal "<what>: <duckdb_message>", logged as an error.
Status Error(std::string_view what, std::string_view duckdb_message);

// Owns one handle of a DuckDB C type; `Destroy` is the C API's destroy function.
template <typename Handle, void (*Destroy)(Handle*)>
class UniqueHandle {
 public:
  UniqueHandle() = default;
  explicit UniqueHandle(Handle handle) : handle_(handle) {}
  ~UniqueHandle() { reset(); }
  UniqueHandle(UniqueHandle&& other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
  UniqueHandle& operator=(UniqueHandle&& other) noexcept {
    if (this != &other) {
      reset();
      handle_ = std::exchange(other.handle_, nullptr);
    }
    return *this;
  }

  Handle get() const { return handle_; }
  explicit operator bool() const { return handle_ != nullptr; }
  void reset() {
    if (handle_ != nullptr) Destroy(&handle_);
    handle_ = nullptr;
  }

 private:
  Handle handle_ = nullptr;
};

using DatabaseHandle = UniqueHandle<duckdb_database, &duckdb_close>;
using ConnectionHandle = UniqueHandle<duckdb_connection, &duckdb_disconnect>;
using PreparedHandle = UniqueHandle<duckdb_prepared_statement, &duckdb_destroy_prepare>;
using ChunkHandle = UniqueHandle<duckdb_data_chunk, &duckdb_destroy_data_chunk>;

// Opens (or creates) the database file at `path`. `threads` is DuckDB's per-query thread count,
// 0 for DuckDB's default. Fails with kUnavailable.
// `checkpoint_threshold_bytes`: DuckDB's WAL size that starts a checkpoint (0: its default).
// `memory_limit_bytes`: DuckDB's memory_limit for the database (0: its default, 80 % of RAM).
Result<DatabaseHandle> OpenDatabase(const std::string& path, size_t threads,
                                    uint64_t checkpoint_threshold_bytes = 0,
                                    uint64_t memory_limit_bytes = 0);
Result<ConnectionHandle> Connect(duckdb_database db);

// One data chunk of a query result, read column by column.
class Chunk {
 public:
  explicit Chunk(ChunkHandle chunk) : chunk_(std::move(chunk)) {}
  size_t size() const { return duckdb_data_chunk_get_size(chunk_.get()); }
  // REQUIRES: T is the C type of column `col` (int64_t for BIGINT, double for DOUBLE, ...).
  template <typename T>
  const T* Data(size_t col) const {
    return static_cast<const T*>(duckdb_vector_get_data(Vector(col)));
  }
  bool IsValid(size_t col, size_t row) const;
  template <typename T>
  std::optional<T> Get(size_t col, size_t row) const {
    if (!IsValid(col, row)) return std::nullopt;
    return Data<T>(col)[row];
  }
  // REQUIRES: column `col` is VARCHAR and valid at `row`. Points into the chunk.
  std::string_view String(size_t col, size_t row) const;

 private:
  duckdb_vector Vector(size_t col) const { return duckdb_data_chunk_get_vector(chunk_.get(), col); }

  ChunkHandle chunk_;
};

// A materialized query result.
class QueryResult {
 public:
  QueryResult() = default;
  ~QueryResult();
  QueryResult(QueryResult&& other) noexcept;
  QueryResult& operator=(QueryResult&& other) noexcept;

  // The next chunk, or nullopt after the last one (or a failure: see Error).
  std::optional<Chunk> NextChunk();
  // Why the rows stopped early (a streaming result can fail while it is read), else OK.
  Status Error(std::string_view what);

 private:
  friend Result<QueryResult> Query(duckdb_connection conn, const char* sql);
  friend Result<QueryResult> Execute(duckdb_prepared_statement stmt, std::string_view what);
  // The same, but the rows come chunk by chunk as NextChunk() asks for them, never all held at
  // once (a scan of a whole table). The statement must outlive the result.
  Result<QueryResult> ExecuteStreaming(duckdb_prepared_statement stmt, std::string_view what);
  friend Result<QueryResult> ExecuteStreaming(duckdb_prepared_statement stmt,
                                              std::string_view what);
  void Reset();

  duckdb_result result_{};
  bool owned_ = false;
};

// Runs `sql` and returns its rows.
Result<QueryResult> Query(duckdb_connection conn, const char* sql);
// Runs `sql` and discards its rows.
Status Exec(duckdb_connection conn, const char* sql);

Result<PreparedHandle> Prepare(duckdb_connection conn, const char* sql);
// Runs a prepared statement whose parameters are bound; `what` names it in errors.
Result<QueryResult> Execute(duckdb_prepared_statement stmt, std::string_view what);
// The same, but the rows come chunk by chunk as NextChunk() asks for them, never all held at
// once (a scan of a whole table). The statement must outlive the result.
Result<QueryResult> ExecuteStreaming(duckdb_prepared_statement stmt, std::string_view what);

inline duckdb_timestamp Timestamp(int64_t micros) { return duckdb_timestamp{micros}; }

// `text` as a SQL string literal ('it''s'), for the statements that take no parameters (ATTACH
// of a file path); never for what a client sent.
std::string Quote(std::string_view text);

}  // namespace das::storage::duck
