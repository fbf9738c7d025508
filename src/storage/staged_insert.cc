#include "storage/staged_insert.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cassert>
#include <cstring>
#include <utility>

namespace das::storage::duck {

struct StagedInsert::Buffers {
  struct Column {
    ColumnType type;
    std::vector<uint64_t> fixed;  // DOUBLE (its bits), UBIGINT, TIMESTAMP (microseconds)
    std::string bytes;            // VARCHAR: the strings back to back
    std::vector<size_t> ends;     // VARCHAR: where each string ends in `bytes`
  };
  std::vector<Column> columns;
  size_t next_column = 0;  // the column the next Add() fills
  size_t rows = 0;         // complete rows (EndRow() called)
};

namespace {

// Rows whose buffers a StagedInsert keeps between transactions.
constexpr size_t kKeptRows = 16384;

duckdb_type CType(ColumnType type) {
  switch (type) {
    case ColumnType::kVarchar:
      return DUCKDB_TYPE_VARCHAR;
    case ColumnType::kDouble:
      return DUCKDB_TYPE_DOUBLE;
    case ColumnType::kUBigInt:
      return DUCKDB_TYPE_UBIGINT;
    case ColumnType::kTimestamp:
      return DUCKDB_TYPE_TIMESTAMP;
  }
  return DUCKDB_TYPE_INVALID;
}

// A name no other table function in this process has: registering a taken name fails, and
// nothing stops two StagedInserts into one table of one database.
std::string FunctionName(const std::string& table) {
  static std::atomic<uint64_t> next{0};
  std::string name = "das_staged_";
  name.append(table).append("_").append(std::to_string(next.fetch_add(1)));
  return name;
}

}  // namespace

StagedInsert::StagedInsert(std::shared_ptr<Buffers> buffers, PreparedHandle insert,
                           std::string table)
    : buffers_(std::move(buffers)), insert_(std::move(insert)), table_(std::move(table)) {}

Result<StagedInsert> StagedInsert::Create(duckdb_connection conn, std::string table,
                                          std::vector<StagedColumn> columns) {
  // The table function's extra info: the buffers, shared with the StagedInsert. Its init data,
  // per execution: the next row to emit.
  using SharedBuffers = std::shared_ptr<Buffers>;
  auto buffers = std::make_shared<Buffers>();
  for (const StagedColumn& column : columns) buffers->columns.push_back({column.type, {}, {}, {}});

  duckdb_table_function function = duckdb_create_table_function();
  const std::string name = FunctionName(table);
  duckdb_table_function_set_name(function, name.c_str());
  duckdb_table_function_set_extra_info(function, new SharedBuffers(buffers), [](void* info) {
    delete static_cast<SharedBuffers*>(info);
  });
  duckdb_table_function_set_bind(function, [](duckdb_bind_info info) {
    const auto& staged = **static_cast<SharedBuffers*>(duckdb_bind_get_extra_info(info));
    for (size_t i = 0; i < staged.columns.size(); ++i) {
      duckdb_logical_type type = duckdb_create_logical_type(CType(staged.columns[i].type));
      const std::string column = std::to_string(i);  // a name DuckDB quotes for us
      duckdb_bind_add_result_column(info, column.c_str(), type);
      duckdb_destroy_logical_type(&type);
    }
  });
  duckdb_table_function_set_init(function, [](duckdb_init_info info) {
    duckdb_init_set_max_threads(info, 1);
    duckdb_init_set_init_data(info, new size_t{0},
                              [](void* cursor) { delete static_cast<size_t*>(cursor); });
  });
  duckdb_table_function_set_function(
      function, [](duckdb_function_info info, duckdb_data_chunk output) {
        const auto& staged = **static_cast<SharedBuffers*>(duckdb_function_get_extra_info(info));
        size_t& cursor = *static_cast<size_t*>(duckdb_function_get_init_data(info));
        const size_t count = std::min<size_t>(staged.rows - cursor, duckdb_vector_size());
        for (size_t c = 0; c < staged.columns.size(); ++c) {
          const Buffers::Column& column = staged.columns[c];
          duckdb_vector vector = duckdb_data_chunk_get_vector(output, c);
          if (column.type != ColumnType::kVarchar) {
            // DOUBLE, UBIGINT and TIMESTAMP vectors hold 8-byte values, as `fixed` does.
            std::memcpy(duckdb_vector_get_data(vector), column.fixed.data() + cursor,
                        count * sizeof(uint64_t));
            continue;
          }
          for (size_t r = 0; r < count; ++r) {
            const size_t row = cursor + r;
            const size_t begin = row == 0 ? 0 : column.ends[row - 1];
            duckdb_vector_assign_string_element_len(vector, r, column.bytes.data() + begin,
                                                    column.ends[row] - begin);
          }
        }
        duckdb_data_chunk_set_size(output, count);
        cursor += count;
      });
  const duckdb_state registered = duckdb_register_table_function(conn, function);
  duckdb_destroy_table_function(&function);
  if (registered == DuckDBError) {
    return Error("register the staged insert into " + table, "table function refused");
  }

  std::string sql = "INSERT INTO " + table + " (";
  for (size_t i = 0; i < columns.size(); ++i) {
    if (i != 0) sql += ", ";
    sql += columns[i].name;
  }
  sql += ") SELECT * FROM " + name + "()";
  ASSIGN_OR_RETURN(PreparedHandle insert, Prepare(conn, sql.c_str()));
  return StagedInsert(std::move(buffers), std::move(insert), std::move(table));
}

void StagedInsert::Add(std::string_view text) {
  Buffers::Column& column = buffers_->columns[buffers_->next_column++];
  assert(column.type == ColumnType::kVarchar);
  column.bytes.append(text);
  column.ends.push_back(column.bytes.size());
}

void StagedInsert::Add(double value) {
  Buffers::Column& column = buffers_->columns[buffers_->next_column++];
  assert(column.type == ColumnType::kDouble);
  column.fixed.push_back(std::bit_cast<uint64_t>(value));
}

void StagedInsert::Add(uint64_t value) {
  Buffers::Column& column = buffers_->columns[buffers_->next_column++];
  assert(column.type == ColumnType::kUBigInt);
  column.fixed.push_back(value);
}

void StagedInsert::AddTimestamp(int64_t micros) {
  Buffers::Column& column = buffers_->columns[buffers_->next_column++];
  assert(column.type == ColumnType::kTimestamp);
  column.fixed.push_back(std::bit_cast<uint64_t>(micros));
}

void StagedInsert::EndRow() {
  assert(buffers_->next_column == buffers_->columns.size());
  buffers_->next_column = 0;
  ++buffers_->rows;
}

size_t StagedInsert::rows() const { return buffers_->rows; }

Status StagedInsert::Flush() {
  if (buffers_->rows == 0) return Status::Ok();
  Result<QueryResult> inserted = Execute(insert_.get(), "insert into " + table_);
  Clear();
  return inserted.ok() ? Status::Ok() : std::move(inserted).status();
}

void StagedInsert::Clear() {
  // The buffers keep their memory for the next transaction, unless a large one (a group of up
  // to a million rows) grew them: a worker has many stores, each with its StagedInserts.
  const bool release = buffers_->rows > kKeptRows;
  for (Buffers::Column& column : buffers_->columns) {
    if (release) {
      column = Buffers::Column{column.type, {}, {}, {}};
      continue;
    }
    column.fixed.clear();
    column.bytes.clear();
    column.ends.clear();
  }
  buffers_->next_column = 0;
  buffers_->rows = 0;
}

}  // namespace das::storage::duck
