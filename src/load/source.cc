#include "load/source.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <utility>

#include "common/validation.h"
#include "storage/duckdb_util.h"

namespace das::load {
namespace {

namespace duck = das::storage::duck;

std::string QuoteIdentifier(std::string_view name) {
  std::string quoted = "\"";
  for (char c : name) {
    if (c == '"') quoted += '"';
    quoted += c;
  }
  quoted += '"';
  return quoted;
}

std::string Where(const SourceOptions& o, uint64_t row) {
  std::string where = "row ";
  where += std::to_string(row);
  if (o.format == FileFormat::kCsv) {
    where += " (line ";
    where += std::to_string(row + 1);
    where += ")";
  }
  return where;
}

// Shows a value in an error: quoted, cut at 64 bytes.
std::string Shown(std::string_view text) {
  std::string shown = "'";
  shown += text.substr(0, 64);
  if (text.size() > 64) shown += "...";
  shown += "'";
  return shown;
}

class DuckRowSource final : public RowSource {
 public:
  DuckRowSource(SourceOptions options, duck::DatabaseHandle db, duck::ConnectionHandle conn,
                duck::PreparedHandle statement, duck::QueryResult result)
      : options_(std::move(options)),
        db_(std::move(db)),
        conn_(std::move(conn)),
        statement_(std::move(statement)),
        result_(std::move(result)) {}

  Result<bool> Next(size_t max_rows, std::vector<LoadRow>& out) override {
    size_t appended = 0;
    while (appended < max_rows) {
      if (!chunk_ || next_in_chunk_ == chunk_->size()) {
        chunk_ = result_.NextChunk();
        next_in_chunk_ = 0;
        if (!chunk_) {
          RETURN_IF_ERROR(result_.Error(options_.path));
          return appended > 0;
        }
        continue;
      }
      // A bad row is passed over before it is reported: the next call goes on after it.
      const size_t i = next_in_chunk_++;
      const uint64_t row = ++rows_read_;
      if (!chunk_->IsValid(0, i)) {
        return InvalidArgument(Where(options_, row) + ": " + options_.key_column +
                               " is empty (NULL)");
      }
      const std::string_view key = chunk_->String(0, i);
      if (Status valid = ValidateRow(key, 0.0); !valid.ok()) {
        std::string message = Where(options_, row) + ": " + valid.message();
        if (options_.key_column != "partition_key") {
          message += " (column '" + options_.key_column + "')";
        }
        return InvalidArgument(std::move(message));
      }
      if (!chunk_->IsValid(1, i)) {
        return InvalidArgument(Where(options_, row) + ": " + options_.value_column +
                               " is missing (NULL)");
      }
      const std::optional<double> value = chunk_->Get<double>(2, i);
      if (!value) {
        return InvalidArgument(Where(options_, row) + ": " + options_.value_column + " " +
                               Shown(chunk_->String(1, i)) + " is not a number");
      }
      if (!std::isfinite(*value)) {
        return InvalidArgument(Where(options_, row) + ": " + options_.value_column + " " +
                               Shown(chunk_->String(1, i)) + " is not finite");
      }
      out.push_back(LoadRow{std::string(key), *value});
      ++appended;
    }
    return true;
  }

  uint64_t rows_read() const override { return rows_read_; }

 private:
  const SourceOptions options_;
  duck::DatabaseHandle db_;
  duck::ConnectionHandle conn_;
  duck::PreparedHandle statement_;  // the streaming result reads through it
  duck::QueryResult result_;
  std::optional<duck::Chunk> chunk_;
  size_t next_in_chunk_ = 0;
  uint64_t rows_read_ = 0;
};

}  // namespace

Result<FileFormat> FormatOfPath(const std::string& path) {
  for (std::string_view ext : {".csv", ".tsv", ".csv.gz", ".tsv.gz", ".txt"}) {
    if (path.ends_with(ext)) return FileFormat::kCsv;
  }
  for (std::string_view ext : {".parquet", ".pq"}) {
    if (path.ends_with(ext)) return FileFormat::kParquet;
  }
  return InvalidArgument("cannot tell the format of " + path +
                         " from its name (.csv or .parquet): give --format csv or parquet");
}

Result<std::unique_ptr<RowSource>> RowSource::Open(SourceOptions options) {
  ASSIGN_OR_RETURN(duck::DatabaseHandle db, duck::OpenDatabase(":memory:", 0));
  ASSIGN_OR_RETURN(duck::ConnectionHandle conn, duck::Connect(db.get()));
  // The file's own order (DuckDB keeps it for a plain scan), every value as the file wrote it
  // for the messages, and the value as a double where it is one.
  std::string reader = options.format == FileFormat::kCsv ? "read_csv(" : "read_parquet(";
  reader += duck::Quote(options.path);
  reader += options.format == FileFormat::kCsv ? ", header = true, all_varchar = true)" : ")";
  const std::string key = QuoteIdentifier(options.key_column);
  const std::string value = QuoteIdentifier(options.value_column);
  // Names the columns the file has when one of ours is missing.
  {
    const std::string describe = "DESCRIBE SELECT * FROM " + reader;
    Result<duck::QueryResult> described = duck::Query(conn.get(), describe.c_str());
    if (!described.ok()) {
      return InvalidArgument("cannot read " + options.path + ": " + described.status().message());
    }
    std::vector<std::string> columns;
    while (std::optional<duck::Chunk> chunk = described->NextChunk()) {
      for (size_t i = 0; i < chunk->size(); ++i) columns.emplace_back(chunk->String(0, i));
    }
    for (const std::string* wanted : {&options.key_column, &options.value_column}) {
      if (std::find(columns.begin(), columns.end(), *wanted) == columns.end()) {
        std::string have;
        for (const std::string& c : columns) {
          if (!have.empty()) have += ", ";
          have += c;
        }
        return InvalidArgument(options.path + " has no column '" + *wanted + "' (its columns: " +
                               have + "); choose one with --key-column / --value-column");
      }
    }
  }
  const std::string sql = "SELECT CAST(" + key + " AS VARCHAR), CAST(" + value +
                          " AS VARCHAR), TRY_CAST(" + value + " AS DOUBLE) FROM " + reader;
  ASSIGN_OR_RETURN(duck::PreparedHandle statement, duck::Prepare(conn.get(), sql.c_str()));
  Result<duck::QueryResult> result = duck::ExecuteStreaming(statement.get(), options.path);
  if (!result.ok()) {
    return InvalidArgument("cannot read " + options.path + ": " + result.status().message());
  }
  return std::unique_ptr<RowSource>(
      std::make_unique<DuckRowSource>(std::move(options), std::move(db), std::move(conn),
                                      std::move(statement), std::move(result).value()));
}

}  // namespace das::load
