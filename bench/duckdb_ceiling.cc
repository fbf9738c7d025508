// duckdb-ceiling: what DuckDB alone does on this machine, in process, through the C API, on a
// file in a fresh temporary directory, with the worker's schema. The ceiling the distributed
// system is compared against (bench/RESULTS.md):
//   (a) Appender throughput: --rows rows appended in transactions of --commit-rows rows, each
//       transaction as the worker's writer does it (BEGIN, appender, close, COMMIT);
//   (b) single-row transactions per second for --tx-seconds (bounded by --max-tx): a prepared
//       INSERT in autocommit, and BEGIN + one-row appender + COMMIT (the worker's path);
//   (c) latency of SELECT avg(value), of the worker's aggregate query (kahan_sum) and of the same
//       query with a plain sum(), at --small-rows rows
//       and at --rows rows (the first is loaded, measured, then the rest is appended).
// The last line is "SUMMARY key=value ...", for scripts.
#include <duckdb.h>
#include <stdlib.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

#include "bench/latency.h"
#include "bench/workload.h"

namespace {

using das::bench::Clock;

constexpr const char* kCreateRows =
    "CREATE TABLE IF NOT EXISTS rows (partition_key VARCHAR NOT NULL, value DOUBLE NOT NULL, "
    "ingest_ts TIMESTAMP NOT NULL)";
constexpr const char* kAvgSql = "SELECT avg(value) FROM rows";
constexpr const char* kWorkerSql =
    "SELECT count(*), kahan_sum(value), min(value), max(value) FROM rows";
// The worker's query with a plain (uncompensated) sum: what the compensation costs.
constexpr const char* kPlainSumSql =
    "SELECT count(*), sum(value), min(value), max(value) FROM rows";

struct Flags {
  uint64_t rows = 10'000'000;
  uint64_t small_rows = 1'000'000;
  uint64_t commit_rows = 10'000;
  uint64_t key_space = 1'000'000;
  double tx_seconds = 3;
  uint64_t max_tx = 1'000'000;
  uint64_t query_runs = 20;
  uint64_t warmup = 3;
  unsigned threads = 0;
  std::vector<std::string> extra_sql;
  std::string dir;
  bool keep = false;
};

// Any failure here ends the benchmark: it measures, it does not recover.
[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "duckdb-ceiling: %s\n", what.c_str());
  std::exit(1);
}

void Check(duckdb_state state, const std::string& what) {
  if (state == DuckDBError) Die(what);
}

// Owns one database file and one connection to it.
class Db {
 public:
  Db(const std::string& path, unsigned threads) {
    duckdb_config config = nullptr;
    Check(duckdb_create_config(&config), "create config");
    if (threads != 0) {
      Check(duckdb_set_config(config, "threads", std::to_string(threads).c_str()), "threads");
    }
    char* error = nullptr;
    const duckdb_state opened = duckdb_open_ext(path.c_str(), &db_, config, &error);
    duckdb_destroy_config(&config);
    if (opened == DuckDBError) Die("open " + path + ": " + (error ? error : "?"));
    Check(duckdb_connect(db_, &conn_), "connect");
    Exec(kCreateRows);
  }
  ~Db() {
    duckdb_disconnect(&conn_);
    duckdb_close(&db_);
  }
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  duckdb_connection conn() const { return conn_; }

  void Exec(const char* sql) {
    duckdb_result result;
    const duckdb_state state = duckdb_query(conn_, sql, &result);
    std::string error = state == DuckDBError ? duckdb_result_error(&result) : "";
    duckdb_destroy_result(&result);
    if (state == DuckDBError) Die(std::string(sql) + ": " + error);
  }

  // Runs `sql` and returns the first row's columns as doubles (BIGINT or DOUBLE columns).
  std::vector<double> QueryRow(const char* sql) {
    duckdb_result result;
    if (duckdb_query(conn_, sql, &result) == DuckDBError) {
      std::string error = duckdb_result_error(&result);
      duckdb_destroy_result(&result);
      Die(std::string(sql) + ": " + error);
    }
    std::vector<double> row;
    duckdb_data_chunk chunk = duckdb_fetch_chunk(result);
    for (idx_t c = 0; chunk != nullptr && c < duckdb_data_chunk_get_column_count(chunk); ++c) {
      duckdb_vector vector = duckdb_data_chunk_get_vector(chunk, c);
      duckdb_logical_type type = duckdb_vector_get_column_type(vector);
      const void* data = duckdb_vector_get_data(vector);
      row.push_back(duckdb_get_type_id(type) == DUCKDB_TYPE_BIGINT
                        ? static_cast<double>(static_cast<const int64_t*>(data)[0])
                        : static_cast<const double*>(data)[0]);
      duckdb_destroy_logical_type(&type);
    }
    if (chunk != nullptr) duckdb_destroy_data_chunk(&chunk);
    duckdb_destroy_result(&result);
    return row;
  }

 private:
  duckdb_database db_ = nullptr;
  duckdb_connection conn_ = nullptr;
};

duckdb_timestamp NowTimestamp() {
  return duckdb_timestamp{std::chrono::duration_cast<std::chrono::microseconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count()};
}

// One transaction as the worker's writer commits it: BEGIN, a fresh appender, `rows` rows, close
// the appender, COMMIT.
void AppendTransaction(Db& db, uint64_t rows, uint64_t key_space, std::mt19937_64& rng) {
  const duckdb_timestamp now = NowTimestamp();
  db.Exec("BEGIN TRANSACTION");
  duckdb_appender appender = nullptr;
  Check(duckdb_appender_create(db.conn(), nullptr, "rows", &appender), "appender");
  for (uint64_t i = 0; i < rows; ++i) {
    const std::string key = das::bench::RandomKey(rng, key_space);
    if (duckdb_append_varchar_length(appender, key.data(), key.size()) == DuckDBError ||
        duckdb_append_double(appender, das::bench::RandomValue(rng)) == DuckDBError ||
        duckdb_append_timestamp(appender, now) == DuckDBError ||
        duckdb_appender_end_row(appender) == DuckDBError) {
      Die(std::string("append: ") + duckdb_appender_error(appender));
    }
  }
  Check(duckdb_appender_close(appender), "appender close");
  duckdb_appender_destroy(&appender);
  db.Exec("COMMIT");
}

// Appends `rows` rows in transactions of `commit_rows`; returns the seconds it took.
double AppendRows(Db& db, const Flags& flags, uint64_t rows, std::mt19937_64& rng) {
  const Clock::time_point start = Clock::now();
  for (uint64_t done = 0; done < rows; done += flags.commit_rows) {
    AppendTransaction(db, std::min(flags.commit_rows, rows - done), flags.key_space, rng);
  }
  return das::bench::Seconds(Clock::now() - start);
}

das::bench::LatencySummary TimeQuery(Db& db, const Flags& flags, const char* sql,
                                     uint64_t expect_rows) {
  for (uint64_t i = 0; i < flags.warmup; ++i) (void)db.QueryRow(sql);
  std::vector<int64_t> ns;
  for (uint64_t i = 0; i < flags.query_runs; ++i) {
    const Clock::time_point start = Clock::now();
    const std::vector<double> row = db.QueryRow(sql);
    ns.push_back(das::bench::ElapsedNanos(start));
    if (row.empty() || ((sql == kWorkerSql || sql == kPlainSumSql) &&
                        row[0] != static_cast<double>(expect_rows))) {
      Die(std::string(sql) + ": unexpected answer");
    }
  }
  return das::bench::Summarize(ns);
}

struct QueryFigures {
  uint64_t rows = 0;
  das::bench::LatencySummary avg;
  das::bench::LatencySummary worker;
  das::bench::LatencySummary plain_sum;
};

QueryFigures MeasureQueries(Db& db, const Flags& flags, uint64_t rows) {
  QueryFigures q{rows, TimeQuery(db, flags, kAvgSql, rows), TimeQuery(db, flags, kWorkerSql, rows),
                 TimeQuery(db, flags, kPlainSumSql, rows)};
  std::printf("(c) at %" PRIu64 " rows:\n", rows);
  das::bench::PrintLatency("    SELECT avg(value)", q.avg);
  das::bench::PrintLatency("    worker aggregate ", q.worker);
  das::bench::PrintLatency("    same, plain sum  ", q.plain_sum);
  return q;
}

// Runs `one` (one committed single-row transaction) for tx_seconds or max_tx times; returns tx/s.
template <typename Fn>
double TransactionsPerSecond(const Flags& flags, Fn one) {
  const Clock::time_point start = Clock::now();
  const auto budget = std::chrono::duration<double>(flags.tx_seconds);
  uint64_t n = 0;
  while (n < flags.max_tx && Clock::now() - start < budget) {
    one();
    ++n;
  }
  return static_cast<double>(n) / das::bench::Seconds(Clock::now() - start);
}

std::pair<double, double> MeasureSingleRowTransactions(const std::string& path,
                                                       const Flags& flags) {
  Db db(path, flags.threads);
  duckdb_prepared_statement insert = nullptr;
  Check(duckdb_prepare(db.conn(), "INSERT INTO rows VALUES ($1, $2, $3)", &insert), "prepare");
  std::mt19937_64 rng(7);
  const double insert_tps = TransactionsPerSecond(flags, [&] {
    const std::string key = das::bench::RandomKey(rng, flags.key_space);
    duckdb_result result;
    if (duckdb_bind_varchar_length(insert, 1, key.data(), key.size()) == DuckDBError ||
        duckdb_bind_double(insert, 2, 1.5) == DuckDBError ||
        duckdb_bind_timestamp(insert, 3, NowTimestamp()) == DuckDBError ||
        duckdb_execute_prepared(insert, &result) == DuckDBError) {
      Die("single-row INSERT failed");
    }
    duckdb_destroy_result(&result);
  });
  duckdb_destroy_prepare(&insert);
  const double appender_tps =
      TransactionsPerSecond(flags, [&] { AppendTransaction(db, 1, flags.key_space, rng); });
  std::printf(
      "(b) single-row transactions/s: prepared INSERT (autocommit) %.0f, "
      "BEGIN + appender + COMMIT %.0f\n",
      insert_tps, appender_tps);
  return {insert_tps, appender_tps};
}

std::string MakeTempDir(const Flags& flags) {
  if (!flags.dir.empty()) {
    std::filesystem::create_directories(flags.dir);
    return flags.dir;
  }
  std::string pattern = (std::filesystem::temp_directory_path() / "duckdb-ceiling-XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) Die("mkdtemp failed");
  return pattern;
}

void AddFlags(CLI::App& app, Flags& f) {
  app.add_option("--rows", f.rows, "Rows to append in (a), and the large size in (c)")
      ->capture_default_str();
  app.add_option("--small-rows", f.small_rows, "The small size in (c)")->capture_default_str();
  app.add_option("--commit-rows", f.commit_rows, "Rows per transaction in (a)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--keys", f.key_space, "Size of the random key space")->capture_default_str();
  app.add_option("--tx-seconds", f.tx_seconds, "Seconds of each single-row test in (b)")
      ->capture_default_str();
  app.add_option("--max-tx", f.max_tx, "Upper bound on transactions per test in (b)")
      ->capture_default_str();
  app.add_option("-n,--query-runs", f.query_runs, "Measured runs of each query in (c)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--warmup", f.warmup, "Unmeasured runs of each query first")
      ->capture_default_str();
  app.add_option("--threads", f.threads, "DuckDB threads (0: DuckDB's default, as the worker)")
      ->capture_default_str();
  app.add_option("--sql", f.extra_sql, "More queries to time at --rows rows (repeatable)");
  app.add_option("--dir", f.dir, "Directory for the database files (default: a new temp dir)");
  app.add_flag("--keep", f.keep, "Keep the database files");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"duckdb-ceiling: in-process DuckDB figures with the worker's schema"};
  Flags flags;
  AddFlags(app, flags);
  CLI11_PARSE(app, argc, argv);
  if (flags.small_rows > flags.rows) flags.small_rows = flags.rows;

  const std::string dir = MakeTempDir(flags);
  std::printf("duckdb-ceiling: DuckDB %s, files in %s, threads %s\n", duckdb_library_version(),
              dir.c_str(), flags.threads == 0 ? "default" : std::to_string(flags.threads).c_str());
  std::mt19937_64 rng(42);
  QueryFigures small;
  QueryFigures large;
  double append_s = 0;
  {
    Db db(dir + "/rows.duckdb", flags.threads);
    append_s += AppendRows(db, flags, flags.small_rows, rng);
    small = MeasureQueries(db, flags, flags.small_rows);
    append_s += AppendRows(db, flags, flags.rows - flags.small_rows, rng);
    std::printf("(a) appended %" PRIu64 " rows in commits of %" PRIu64 ": %.2f s, %.0f rows/s\n",
                flags.rows, flags.commit_rows, append_s,
                static_cast<double>(flags.rows) / append_s);
    large = MeasureQueries(db, flags, flags.rows);
    for (const std::string& sql : flags.extra_sql) {
      das::bench::LatencySummary extra = TimeQuery(db, flags, sql.c_str(), flags.rows);
      das::bench::PrintLatency(("    " + sql).c_str(), extra);
    }
  }
  const auto [insert_tps, appender_tps] =
      MeasureSingleRowTransactions(dir + "/single.duckdb", flags);
  if (!flags.keep) std::filesystem::remove_all(dir);

  std::printf("SUMMARY append_rows=%" PRIu64
              " append_rows_per_s=%.0f insert_tps=%.0f "
              "appender_tps=%.0f small_rows=%" PRIu64
              " small_avg_p50_ms=%.3f "
              "small_worker_p50_ms=%.3f large_rows=%" PRIu64
              " large_avg_p50_ms=%.3f "
              "large_avg_min_ms=%.3f large_avg_max_ms=%.3f large_worker_p50_ms=%.3f "
              "large_plain_sum_p50_ms=%.3f\n",
              flags.rows, static_cast<double>(flags.rows) / append_s, insert_tps, appender_tps,
              small.rows, small.avg.p50_ms, small.worker.p50_ms, large.rows, large.avg.p50_ms,
              large.avg.min_ms, large.avg.max_ms, large.worker.p50_ms, large.plain_sum.p50_ms);
  return 0;
}
