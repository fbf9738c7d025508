// das-load (README, "Loading files") through the real binaries: CSV and Parquet files made by
// DuckDB here, loaded into a real cluster and counted; a load killed (SIGKILL) mid-way and run
// again stores every row exactly once; bad rows are named with their row and line and store
// nothing; a missing column and an unreachable cluster are clear errors.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "storage/duckdb_util.h"
#include "support/api.h"
#include "support/cluster.h"
#include "support/http_client.h"
#include "support/process.h"
#include "support/prometheus_text.h"

namespace das::it {
namespace {

namespace duck = das::storage::duck;

std::string LoadBinary() {
  const char* env = std::getenv("DAS_LOAD_BIN");
  return env != nullptr ? env : DAS_LOAD_BIN;
}

// Writes rows i = 0..n-1, key 'k' || (i % 1000), value i * 0.25, with DuckDB's COPY in `format`
// (CSV with a header, or PARQUET), naming the columns `key` and `value`.
void MakeFile(const std::string& path, uint64_t n, const std::string& format,
              const std::string& key = "partition_key", const std::string& value = "value") {
  auto db = duck::OpenDatabase(":memory:", 1);
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  auto conn = duck::Connect(db->get());
  ASSERT_TRUE(conn.ok());
  const std::string options = format == "csv" ? "(HEADER, DELIMITER ',')" : "(FORMAT PARQUET)";
  const std::string sql = "COPY (SELECT 'k' || (i % 1000) AS " + key + ", i * 0.25 AS " + value +
                          " FROM range(" + std::to_string(n) + ") t(i)) TO " + duck::Quote(path) +
                          " " + options;
  ASSERT_TRUE(duck::Exec(conn->get(), sql.c_str()).ok()) << sql;
}

// The sum of i * 0.25 for i < n: exact in a double for the sizes used here.
double SumOf(uint64_t n) { return 0.25 * static_cast<double>(n) * static_cast<double>(n - 1) / 2; }

struct LoadRun {
  int exit_code = -1;
  std::string output;
};

class LoadTest : public ClusterTest {
 protected:
  std::string Path(const std::string& name) const { return cluster_.dir() + "/" + name; }
  std::string Url() const { return "http://127.0.0.1:" + std::to_string(port()); }

  std::unique_ptr<Process> Start(std::vector<std::string> args, const std::string& log) {
    std::string error;
    std::unique_ptr<Process> process = Process::Start(LoadBinary(), args, Path(log), &error);
    EXPECT_NE(process, nullptr) << error;
    return process;
  }

  LoadRun Load(std::vector<std::string> args) {
    const std::string log = "load-" + std::to_string(++runs_) + ".log";
    std::unique_ptr<Process> process = Start(std::move(args), log);
    LoadRun run;
    if (!process) return run;
    std::optional<int> status = process->Wait(std::chrono::seconds(120));
    EXPECT_TRUE(status.has_value()) << "das-load did not finish";
    if (status && WIFEXITED(*status)) run.exit_code = WEXITSTATUS(*status);
    std::ifstream in(Path(log));
    std::stringstream text;
    text << in.rdbuf();
    run.output = text.str();
    return run;
  }

  // The complete analytics answer's count and sum.
  std::pair<uint64_t, double> Totals() {
    Result<Analytics> got = GetAnalytics(port());
    EXPECT_TRUE(got.ok()) << got.status().ToString();
    if (!got.ok()) return {0, 0};
    EXPECT_EQ(got->http_status, 200);
    EXPECT_FALSE(got->body.is_partial());
    return {got->body.count(), got->body.sum()};
  }

  int runs_ = 0;
};

TEST_F(LoadTest, CsvAndParquetFilesAreLoadedExactly) {
  ASSERT_TRUE(cluster_.Start());
  MakeFile(Path("rows.csv"), 50'000, "csv");
  LoadRun csv = Load({"--url", Url(), "--progress", "lines", Path("rows.csv")});
  ASSERT_EQ(csv.exit_code, 0) << csv.output;
  EXPECT_NE(csv.output.find("50000 rows in 5 batches loaded"), std::string::npos) << csv.output;
  EXPECT_NE(csv.output.find("50000/50000 rows (100.0%)"), std::string::npos) << csv.output;
  EXPECT_EQ(Totals(), std::make_pair(uint64_t{50'000}, SumOf(50'000)));

  // Other column names, chosen by flag; the format from the name.
  MakeFile(Path("rows.parquet"), 30'000, "parquet", "k", "v");
  LoadRun parquet = Load({"--url", Url(), "--key-column", "k", "--value-column", "v",
                          "--batch-rows", "7000", Path("rows.parquet")});
  ASSERT_EQ(parquet.exit_code, 0) << parquet.output;
  EXPECT_NE(parquet.output.find("30000 rows in 5 batches loaded"), std::string::npos)
      << parquet.output;
  EXPECT_EQ(Totals(), std::make_pair(uint64_t{80'000}, SumOf(50'000) + SumOf(30'000)));

  // The same file again: every batch is a duplicate, nothing is stored twice.
  LoadRun again = Load({"--url", Url(), Path("rows.csv")});
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_EQ(Totals(), std::make_pair(uint64_t{80'000}, SumOf(50'000) + SumOf(30'000)));
}

// The load is stopped at a known point, not raced: with --replication-factor 1 and the second
// worker killed first, the loader (one batch at a time) stores batches until the first whose
// rows or idempotency key's home shard are on the second worker (the file's first half has its
// keys on the first worker: the 11th batch at the latest); that one is refused with 503, stores
// nothing, and is retried; the loader is killed there with SIGKILL. Once the worker is back,
// the same load again stores every row exactly once: the stored batches are answered as
// duplicates, and the others are stored once.
TEST_F(LoadTest, ALoadKilledMidwayAndRunAgainStoresEveryRowExactlyOnce) {
  ASSERT_TRUE(cluster_.Start(Unreplicated()));
  constexpr uint64_t kHalf = 5'000;
  constexpr uint64_t kBatchRows = 500;
  {
    std::ofstream csv(Path("halves.csv"));
    csv << "partition_key,value\n";
    uint64_t i = 0;
    for (int worker : {0, 1}) {
      for (const std::string& key :
           KeysOnWorker(worker, 2, kHalf, "half" + std::to_string(worker))) {
        csv << key << "," << JsonNumber(static_cast<double>(i++) * 0.25) << "\n";
      }
    }
  }
  ASSERT_TRUE(cluster_.KillWorker(1));
  const std::vector<std::string> args = {
      "--url",         Url(), "--batch-rows",    std::to_string(kBatchRows),
      "--concurrency", "1",   Path("halves.csv")};
  std::unique_ptr<Process> first = Start(args, "killed.log");
  ASSERT_NE(first, nullptr);
  // Until the control node answered a batch 503: the loader is stuck on it, every batch before
  // it stored.
  ASSERT_TRUE(cluster_.PollControlHealth(
      std::chrono::seconds(60),
      [&](const v1::HealthResponse&) {
        Result<HttpResponse> metrics = HttpGet(port(), "/metrics");
        if (!metrics.ok()) return false;
        Result<MetricsText> text = MetricsText::Parse(metrics->body);
        return text.ok() && text->Sum("das_http_requests_total",
                                      {{"route", "/insert/batch"}, {"code", "503"}}) > 0;
      },
      "a batch refused"));
  Result<Analytics> partial = GetAnalytics(port());  // partial: the second worker is down
  ASSERT_TRUE(partial.ok()) << partial.status().ToString();
  const uint64_t stored = partial->body.count();
  EXPECT_EQ(stored % kBatchRows, 0u) << "a batch was stored in part";
  EXPECT_LE(stored, kHalf);
  // It keeps retrying that batch (a 503 is not final), so it is still running.
  EXPECT_FALSE(first->Wait(std::chrono::milliseconds(0)).has_value());
  ASSERT_TRUE(first->Signal(SIGKILL));
  first->KillAndReap();

  ASSERT_TRUE(cluster_.RestartWorker(1));
  EXPECT_EQ(Totals(), std::make_pair(stored, SumOf(stored)));
  LoadRun second = Load(args);
  ASSERT_EQ(second.exit_code, 0) << second.output;
  EXPECT_EQ(Totals(), std::make_pair(2 * kHalf, SumOf(2 * kHalf)));
}

TEST_F(LoadTest, BadRowsAreNamedWithTheirLinesAndNothingIsStored) {
  ASSERT_TRUE(cluster_.Start());
  std::ofstream(Path("bad.csv")) << "partition_key,value\n"
                                    "a,1\n"
                                    "b,abc\n"
                                    "c,2.5\n"
                                    ",3\n"
                                    "d,inf\n"
                                    "e,\n";
  LoadRun run = Load({"--url", Url(), Path("bad.csv")});
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_NE(run.output.find("4 bad rows in " + Path("bad.csv") + ", nothing was sent"),
            std::string::npos)
      << run.output;
  EXPECT_NE(run.output.find("row 2 (line 3): value 'abc' is not a number"), std::string::npos)
      << run.output;
  EXPECT_NE(run.output.find("row 4 (line 5): partition_key is empty (NULL)"), std::string::npos)
      << run.output;
  EXPECT_NE(run.output.find("row 5 (line 6): value 'inf' is not finite"), std::string::npos)
      << run.output;
  EXPECT_NE(run.output.find("row 6 (line 7): value is missing (NULL)"), std::string::npos)
      << run.output;
  EXPECT_EQ(Totals(), std::make_pair(uint64_t{0}, 0.0));
}

// With --auth-tokens-file, the loader's --token is sent; a refusal (a 4xx) is final, with the
// control node's own message, and stores nothing.
TEST_F(LoadTest, ATokenIsSentAndARefusalIsFinalWithItsMessage) {
  std::ofstream(cluster_.dir() + "/tokens") << "w-2b7c loader write\nr-91ad dashboard read\n";
  ClusterOptions options;
  options.control_flags = {"--auth-tokens-file", cluster_.dir() + "/tokens"};
  ASSERT_TRUE(cluster_.Start(options));
  MakeFile(Path("rows.csv"), 300, "csv");
  auto count = [&] {
    Result<HttpResponse> r =
        HttpGet(port(), "/analytics?format=json", {{"Authorization", "Bearer r-91ad"}});
    return r.ok() ? r->body : std::string();
  };

  LoadRun none = Load({"--url", Url(), Path("rows.csv")});
  EXPECT_EQ(none.exit_code, 3) << none.output;
  EXPECT_NE(none.output.find("batch 1: HTTP 401: this API requires a token"), std::string::npos)
      << none.output;
  LoadRun reader = Load({"--url", Url(), "--token", "r-91ad", Path("rows.csv")});
  EXPECT_EQ(reader.exit_code, 3) << reader.output;
  EXPECT_NE(reader.output.find("batch 1: HTTP 403: token 'dashboard' has role read, which may "
                               "not POST /insert/batch"),
            std::string::npos)
      << reader.output;
  EXPECT_NE(count().find("\"count\":\"0\""), std::string::npos) << count();

  LoadRun writer = Load({"--url", Url(), "--token", "w-2b7c", Path("rows.csv")});
  EXPECT_EQ(writer.exit_code, 0) << writer.output;
  EXPECT_NE(count().find("\"count\":\"300\""), std::string::npos) << count();
}

TEST_F(LoadTest, AMissingColumnOrAnUnreachableClusterIsAClearError) {
  ASSERT_TRUE(cluster_.Start(Unreplicated()));
  MakeFile(Path("rows.csv"), 100, "csv");
  LoadRun missing = Load({"--url", Url(), "--key-column", "user", Path("rows.csv")});
  EXPECT_EQ(missing.exit_code, 1) << missing.output;
  EXPECT_NE(missing.output.find("has no column 'user' (its columns: partition_key, value)"),
            std::string::npos)
      << missing.output;

  LoadRun unreachable = Load({"--url", "http://127.0.0.1:" + std::to_string(FreePort()),
                              "--retry-for-s", "1", Path("rows.csv")});
  EXPECT_EQ(unreachable.exit_code, 3) << unreachable.output;
  EXPECT_NE(unreachable.output.find("took no batch for 1 s"), std::string::npos)
      << unreachable.output;

  LoadRun no_file = Load({"--url", Url(), Path("nope.csv")});
  EXPECT_EQ(no_file.exit_code, 1) << no_file.output;
  EXPECT_NE(no_file.output.find("cannot open " + Path("nope.csv")), std::string::npos)
      << no_file.output;
  EXPECT_EQ(Totals().first, 0u);
}

}  // namespace
}  // namespace das::it
