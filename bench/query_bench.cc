// das-query-bench: the query API's benchmark (issue 9, bench/RESULTS.md): the same five questions
// asked of the cluster (POST /v1/query) and of in-process DuckDB over the very same rows.
//
//   das-query-bench cluster --port P -n 20     the cluster; prints the time range it used
//   das-query-bench duckdb --data-dir W -n 20 --from-ms F --to-ms T
//       in-process DuckDB (2 threads) over a table made from the shard files of one worker's
//       data directory W (every shard's replica: a worker of a 2-worker cluster with R = 3 holds
//       all of them), so the rows and their ingest times are the cluster's own.
//
// Each question runs --warmup times, then -n times one after the other; the output has one
// "SUMMARY mode=... query=... median_ms=... p90_ms=..." line per question and its last answer.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <duckdb.h>

#include <CLI/CLI.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include "http/client.h"

namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

struct Question {
  std::string name;
  std::string json;  // the cluster's das.v1.Query
  std::string sql;   // DuckDB's
};

std::vector<Question> Questions(int64_t from_ms, int64_t to_ms) {
  const std::string aggregates = "count(*), sum(value), avg(value), min(value), max(value)";
  const std::string from = std::to_string(from_ms), to = std::to_string(to_ms);
  return {
      {"key_prefix", R"({"key_prefix":"k1"})",
       "SELECT " + aggregates + " FROM rows WHERE starts_with(partition_key, 'k1')"},
      {"time_range", R"({"from":")" + from + R"(","to":")" + to + R"("})",
       "SELECT " + aggregates + " FROM rows WHERE ingest_ts >= make_timestamp(" + from +
           "000) AND ingest_ts < make_timestamp(" + to + "000)"},
      {"top10_by_sum", R"({"group_by":"key","order_by":"sum","limit":10})",
       "SELECT partition_key, " + aggregates +
           " FROM rows GROUP BY partition_key ORDER BY sum(value) DESC, partition_key LIMIT 10"},
      {"per_minute", R"({"granularity":"1m"})",
       "SELECT epoch_ms(ingest_ts) // 60000 * 60000 AS bucket, " + aggregates +
           " FROM rows GROUP BY bucket ORDER BY bucket"},
      {"quantiles", R"({"aggregates":["count"],"quantiles":[0.5,0.9,0.99]})",
       "SELECT count(*), quantile_cont(value, ['0.5'::DOUBLE, '0.9'::DOUBLE, "
       "'0.99'::DOUBLE])::VARCHAR FROM rows"},
  };
}

// Runs `once` warmup + n times; prints the SUMMARY line. `once` returns the answer's text.
void Measure(const char* mode, const Question& q, int warmup, int n,
             const std::function<std::string()>& once) {
  std::string answer;
  for (int i = 0; i < warmup; ++i) answer = once();
  std::vector<double> ms;
  for (int i = 0; i < n; ++i) {
    const Clock::time_point start = Clock::now();
    answer = once();
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
  }
  std::sort(ms.begin(), ms.end());
  std::printf("SUMMARY mode=%s query=%s n=%d median_ms=%.1f p90_ms=%.1f\n", mode, q.name.c_str(), n,
              ms[ms.size() / 2], ms[std::min(ms.size() - 1, ms.size() * 9 / 10)]);
  std::printf("ANSWER mode=%s query=%s %s\n", mode, q.name.c_str(), answer.c_str());
  std::fflush(stdout);
}

// --- the cluster ------------------------------------------------------------------------------

asio::awaitable<void> SendInto(das::http::Client& client, das::http::Request request,
                               std::optional<das::Result<das::http::Response>>* out) {
  asio::awaitable<das::Result<das::http::Response>> sent =
      client.Send(std::move(request), std::chrono::seconds(120));
  das::Result<das::http::Response> answer = co_await std::move(sent);
  out->emplace(std::move(answer));
}

class ClusterQueries {
 public:
  ClusterQueries(const std::string& host, uint16_t port)
      : client_(das::http::Client::Create(io_.get_executor(),
                                          das::http::ClientOptions{host, port, 1})) {}

  std::string Ask(const std::string& json) {
    das::http::Request request;
    request.method = "POST";
    request.target = "/v1/query";
    request.content_type = "application/json";
    request.has_content_type = true;
    request.body = json;
    std::optional<das::Result<das::http::Response>> answer;
    asio::co_spawn(io_, SendInto(*client_, std::move(request), &answer), asio::detached);
    io_.restart();
    io_.run();
    const das::Result<das::http::Response>& r = *answer;
    if (!r.ok()) return "ERROR " + r.status().ToString();
    if (r->status != 200) return "HTTP " + std::to_string(r->status) + " " + r->body;
    return r->body;
  }

 private:
  asio::io_context io_;
  std::unique_ptr<das::http::Client> client_;
};

// The bucket starts (ms) of "bucket_start_ms":"<n>" in a per-second series, first and last.
std::pair<int64_t, int64_t> Span(const std::string& series) {
  std::vector<int64_t> starts;
  const std::string field = "\"bucket_start_ms\":\"";
  for (size_t at = series.find(field); at != std::string::npos; at = series.find(field, at + 1)) {
    starts.push_back(std::stoll(series.substr(at + field.size())));
  }
  if (starts.empty()) return {0, 0};
  return {*std::min_element(starts.begin(), starts.end()),
          *std::max_element(starts.begin(), starts.end()) + 1000};
}

int RunCluster(const std::string& host, uint16_t port, int warmup, int n) {
  ClusterQueries cluster(host, port);
  const auto [first, end] = Span(cluster.Ask(R"({"granularity":"1s","aggregates":["count"]})"));
  // The middle half of the time the rows were loaded in.
  const int64_t from = first + (end - first) / 4, to = first + (end - first) * 3 / 4;
  std::printf("RANGE from_ms=%lld to_ms=%lld (rows ingested from %lld to %lld)\n",
              static_cast<long long>(from), static_cast<long long>(to),
              static_cast<long long>(first), static_cast<long long>(end));
  for (const Question& q : Questions(from, to)) {
    Measure("cluster", q, warmup, n, [&] { return cluster.Ask(q.json); });
  }
  return 0;
}

// --- in-process DuckDB ------------------------------------------------------------------------

bool Exec(duckdb_connection conn, const std::string& sql, std::string* text = nullptr) {
  duckdb_result result;
  if (duckdb_query(conn, sql.c_str(), &result) == DuckDBError) {
    std::fprintf(stderr, "%s: %s\n", sql.c_str(), duckdb_result_error(&result));
    duckdb_destroy_result(&result);
    return false;
  }
  if (text != nullptr) {
    text->clear();
    const idx_t rows = std::min<idx_t>(duckdb_row_count(&result), 3);
    for (idx_t r = 0; r < rows; ++r) {
      for (idx_t c = 0; c < duckdb_column_count(&result); ++c) {
        char* value = duckdb_value_varchar(&result, c, r);
        *text += (c == 0 ? (r == 0 ? "" : " | ") : ", ") + std::string(value ? value : "NULL");
        duckdb_free(value);
      }
    }
  }
  duckdb_destroy_result(&result);
  return true;
}

int RunDuckDb(const std::string& data_dir, int64_t from, int64_t to, int threads, int warmup,
              int n) {
  duckdb_database db;
  duckdb_config config;
  duckdb_create_config(&config);
  duckdb_set_config(config, "threads", std::to_string(threads).c_str());
  char* error = nullptr;
  if (duckdb_open_ext(nullptr, &db, config, &error) == DuckDBError) {
    std::fprintf(stderr, "duckdb: %s\n", error);
    return 1;
  }
  duckdb_destroy_config(&config);
  duckdb_connection conn;
  duckdb_connect(db, &conn);
  if (!Exec(conn, "CREATE TABLE rows (partition_key VARCHAR, value DOUBLE, ingest_ts TIMESTAMP)")) {
    return 1;
  }
  // A worker's store.duckdb in `data_dir`, or one in each of its folders: every replica's
  // rows, each row once (a replicated worker holds every shard of a two-worker cluster).
  std::vector<std::string> stores;
  if (std::filesystem::exists(data_dir + "/store.duckdb"))
    stores.push_back(data_dir + "/store.duckdb");
  for (const auto& entry : std::filesystem::directory_iterator(data_dir)) {
    const std::string file = (entry.path() / "store.duckdb").string();
    if (entry.is_directory() && std::filesystem::exists(file)) stores.push_back(file);
  }
  int files = 0;
  for (const std::string& file : stores) {
    const std::string alias = "s" + std::to_string(files++);
    std::string tables;
    if (!Exec(conn, "ATTACH '" + file + "' AS " + alias + " (READ_ONLY)") ||
        !Exec(conn,
              "SELECT string_agg(table_name, ',') FROM duckdb_tables() WHERE database_name = '" +
                  alias + "' AND table_name LIKE 'replica_rows_%'",
              &tables)) {
      return 1;
    }
    // Each replica's rows table of the worker's store (every shard, with two workers and R=3).
    for (size_t begin = 0; begin < tables.size();) {
      const size_t end = std::min(tables.find(',', begin), tables.size());
      const std::string table = tables.substr(begin, end - begin);
      begin = end + 1;
      if (!Exec(conn, "INSERT INTO rows SELECT partition_key, value, ingest_ts FROM " + alias +
                          "." + table)) {
        return 1;
      }
    }
    if (!Exec(conn, "DETACH " + alias)) return 1;
  }
  std::string count;
  Exec(conn, "SELECT count(*) FROM rows", &count);
  std::printf("TABLE %s rows from %d worker stores, DuckDB threads=%d\n", count.c_str(), files,
              threads);
  for (const Question& q : Questions(from, to)) {
    Measure("duckdb", q, warmup, n, [&] {
      std::string text;
      Exec(conn, q.sql, &text);
      return text;
    });
  }
  duckdb_disconnect(&conn);
  duckdb_close(&db);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"das-query-bench: the query API against in-process DuckDB over the same rows"};
  app.require_subcommand(1);
  std::string host = "127.0.0.1";
  uint16_t port = 8080;
  int warmup = 2, n = 20, threads = 2;
  std::string data_dir;
  int64_t from_ms = 0, to_ms = 0;
  CLI::App* cluster = app.add_subcommand("cluster", "POST /v1/query to the control node");
  cluster->add_option("--host", host)->capture_default_str();
  cluster->add_option("--port", port)->capture_default_str();
  CLI::App* duck = app.add_subcommand("duckdb", "In-process DuckDB over a worker's shard files");
  duck->add_option("--data-dir", data_dir, "A worker's --data-dir (stopped)")->required();
  duck->add_option("--from-ms", from_ms, "The time range (from the cluster run)")->required();
  duck->add_option("--to-ms", to_ms)->required();
  duck->add_option("--threads", threads)->capture_default_str();
  for (CLI::App* sub : {cluster, duck}) {
    sub->add_option("-n", n, "Timed runs of each question")->capture_default_str();
    sub->add_option("--warmup", warmup)->capture_default_str();
  }
  CLI11_PARSE(app, argc, argv);
  if (cluster->parsed()) return RunCluster(host, port, warmup, n);
  return RunDuckDb(data_dir, from_ms, to_ms, threads, warmup, n);
}
