// RowSource: the rows of a CSV or Parquet file, read through DuckDB's own readers (read_csv,
// read_parquet) in an in-memory database, in file order, validated as the API would (a key of
// 1 to 1024 bytes, a finite value) with the row's number for every error.
//
// Rows are numbered from 1 in file order; a CSV file's row N is on line N + 1 (after the header)
// unless a quoted field spans lines.
// Thread-safety: one thread uses a source.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace das::load {

enum class FileFormat { kCsv, kParquet };

struct SourceOptions {
  std::string path;
  FileFormat format = FileFormat::kCsv;
  std::string key_column = "partition_key";
  std::string value_column = "value";
};

struct LoadRow {
  std::string key;
  double value = 0;
};

// The format a path's extension names (.csv, .tsv, .csv.gz, .parquet, .pq); kInvalidArgument
// for another.
Result<FileFormat> FormatOfPath(const std::string& path);

class RowSource {
 public:
  // Opens the file and checks that both columns exist (kInvalidArgument naming what is
  // missing, or DuckDB's own message for a file it cannot read).
  static Result<std::unique_ptr<RowSource>> Open(SourceOptions options);
  virtual ~RowSource() = default;
  RowSource(const RowSource&) = delete;
  RowSource& operator=(const RowSource&) = delete;

  // Appends up to `max_rows` rows to `out`; false once the file is exhausted (nothing appended).
  // kInvalidArgument for a bad row ("row 17 (line 18): value 'abc' is not a number"); the rows
  // before it were appended, and the next call goes on after it.
  virtual Result<bool> Next(size_t max_rows, std::vector<LoadRow>& out) = 0;
  // The number of the last row read, good or bad (0: none yet).
  virtual uint64_t rows_read() const = 0;

 protected:
  RowSource() = default;
};

}  // namespace das::load
