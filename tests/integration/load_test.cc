// das-load (DESIGN.md section 9) through the real binaries: CSV and Parquet files made by DuckDB
// here, loaded into a real cluster and counted; a load killed (SIGKILL) mid-way and run again
// stores every row exactly once; bad rows are named with their row and line and store nothing;
// a missing column and an unreachable cluster are clear errors.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/api.h"
#include "support/cluster.h"
#include "support/process.h"
#include "worker/duckdb_util.h"

namespace das::it {
namespace {

namespace duck = das::worker::duck;

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

TEST_F(LoadTest, ALoadKilledMidwayAndRunAgainStoresEveryRowExactlyOnce) {
  ASSERT_TRUE(cluster_.Start());
  constexpr uint64_t kRows = 100'000;
  MakeFile(Path("big.csv"), kRows, "csv");
  const std::vector<std::string> args = {"--url",         Url(), "--batch-rows", "1000",
                                         "--concurrency", "1",   Path("big.csv")};
  std::unique_ptr<Process> first = Start(args, "killed.log");
  ASSERT_NE(first, nullptr);
  // Once some batches are acknowledged (the cluster counts rows), the loader is killed: its 100
  // batches, one at a time, take far longer than this poll's step.
  std::optional<uint64_t> count;
  for (int i = 0; i < 12'000; ++i) {
    count = CurrentCount(port());
    if (count && *count > 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_TRUE(count && *count > 0) << "the loader stored nothing";
  ASSERT_TRUE(first->Signal(SIGKILL));
  first->KillAndReap();
  const std::pair<uint64_t, double> interrupted = Totals();
  ASSERT_GT(interrupted.first, 0u);
  ASSERT_LT(interrupted.first, kRows) << "the load finished before it was killed";

  LoadRun second = Load(args);
  ASSERT_EQ(second.exit_code, 0) << second.output;
  EXPECT_EQ(Totals(), std::make_pair(kRows, SumOf(kRows)));
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
