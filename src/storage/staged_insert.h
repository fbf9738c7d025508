// Rows for one table, staged in memory and inserted in the connection's open transaction by a
// statement prepared once: `INSERT INTO t (...) SELECT * FROM <a table function of ours>()`.
//
// Why not DuckDB's Appender: in DuckDB 1.4 every Appender flush builds, parses, binds, plans
// and optimizes an INSERT statement anew (ClientContext::Append), about half of a small
// replica transaction's CPU (bench/RESULTS.md). The statement here is parsed once, and the
// table function hands DuckDB the staged columns a vector (2,048 rows) at a time. DuckDB still
// binds and plans it again at every Flush() (a profile shows RebindPreparedStatement each
// time; a prepared INSERT ... VALUES with parameters is rebound too), which is why the
// writer's connection runs without DuckDB's optimizer (Writer::SetOptimizer).
//
// Not thread-safe: a StagedInsert belongs to the thread that owns its connection.
#pragma once

#include <duckdb.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "storage/duckdb_util.h"

namespace das::storage::duck {

enum class ColumnType { kVarchar, kDouble, kUBigInt, kTimestamp };

struct StagedColumn {
  std::string name;
  ColumnType type;
};

class StagedInsert {
 public:
  // Registers the table function (a name of its own in this database) and prepares the insert
  // into `table`'s `columns`, which must be NOT NULL columns of these types.
  static Result<StagedInsert> Create(duckdb_connection conn, std::string table,
                                     std::vector<StagedColumn> columns);

  // One value per column, in the columns' order, then EndRow(). Strings must be valid UTF-8.
  void Add(std::string_view text);
  void Add(double value);
  void Add(uint64_t value);
  void AddTimestamp(int64_t micros);
  void EndRow();

  size_t rows() const;
  // Inserts the staged rows in the connection's open transaction (nothing when none is staged)
  // and forgets them; the error is DuckDB's (a constraint, for one). After a failure the rows
  // are forgotten too: the caller rolls the transaction back.
  Status Flush();
  // Forgets the staged rows.
  void Clear();

 private:
  struct Buffers;
  StagedInsert(std::shared_ptr<Buffers> buffers, PreparedHandle insert, std::string table);

  std::shared_ptr<Buffers> buffers_;  // shared with the registered table function
  PreparedHandle insert_;
  std::string table_;
};

}  // namespace das::storage::duck
