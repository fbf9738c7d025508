// das-load: loads a CSV or Parquet file into the cluster (src/load/loader.h): every row checked
// first, then batches with idempotency keys derived from the file, so that a load interrupted
// at any point and run again stores every row exactly once.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

#include "load/loader.h"
#include "load/source.h"

namespace {

struct Flags {
  std::string file;
  std::string url = "http://127.0.0.1:8080";
  std::string format = "auto";
  std::string key_column = "partition_key";
  std::string value_column = "value";
  size_t batch_rows = 10'000;
  size_t concurrency = 4;
  unsigned retry_for_s = 60;
  std::string token;
  std::string tls_ca;
  std::string progress = "auto";
};

double Seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

// The progress display: a bar redrawn in place on a terminal, plain lines every 5 s otherwise.
class Progress {
 public:
  explicit Progress(bool bar) : bar_(bar) {}

  void Show(const das::load::LoadProgress& p) {
    const auto now = std::chrono::steady_clock::now();
    const bool done = p.rows_done == p.rows_total;
    if (!done && p.rows_done != 0 && now - last_ < (bar_ ? kBarEvery : kLineEvery)) return;
    last_ = now;
    const double seconds = Seconds(p.elapsed);
    const double rate = seconds > 0 ? static_cast<double>(p.rows_done) / seconds : 0;
    const double fraction =
        p.rows_total > 0 ? static_cast<double>(p.rows_done) / static_cast<double>(p.rows_total) : 1;
    std::string eta = "-";
    if (rate > 0 && !done) {
      eta = std::to_string(static_cast<long long>(
                static_cast<double>(p.rows_total - p.rows_done) / rate + 0.5)) +
            " s";
    }
    if (bar_) {
      constexpr int kWidth = 30;
      const int filled = static_cast<int>(fraction * kWidth);
      std::string bar(static_cast<size_t>(filled), '#');
      bar.append(static_cast<size_t>(kWidth - filled), '.');
      std::fprintf(stderr, "\r[%s] %5.1f%%  %llu/%llu rows  %.0f rows/s  ETA %s   ", bar.c_str(),
                   fraction * 100, static_cast<unsigned long long>(p.rows_done),
                   static_cast<unsigned long long>(p.rows_total), rate, eta.c_str());
      if (done) std::fputc('\n', stderr);
    } else {
      std::fprintf(stderr, "das-load: %llu/%llu rows (%.1f%%), %.0f rows/s, ETA %s\n",
                   static_cast<unsigned long long>(p.rows_done),
                   static_cast<unsigned long long>(p.rows_total), fraction * 100, rate,
                   eta.c_str());
    }
    std::fflush(stderr);
  }

 private:
  static constexpr std::chrono::milliseconds kBarEvery{200};
  static constexpr std::chrono::milliseconds kLineEvery{5000};
  const bool bar_;
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "das-load: loads a CSV or Parquet file into the distributed analytics system.\n"
      "Every row is checked first (a bad row stores nothing); batches carry idempotency keys\n"
      "derived from the file's bytes, the columns and the batch size, so a load interrupted at\n"
      "any point and run again with the same flags stores every row exactly once."};
  Flags f;
  app.add_option("FILE", f.file, "The CSV (with a header line) or Parquet file")->required();
  app.add_option("--url", f.url, "The control node")->envname("DAS_URL")->capture_default_str();
  app.add_option("--format", f.format, "csv, parquet, or auto (from the file name)")
      ->check(CLI::IsMember({"auto", "csv", "parquet"}))
      ->capture_default_str();
  app.add_option("--key-column", f.key_column, "The column of partition keys")
      ->capture_default_str();
  app.add_option("--value-column", f.value_column, "The column of values")->capture_default_str();
  app.add_option("--batch-rows", f.batch_rows, "Rows per batch (a re-run must use the same)")
      ->check(CLI::Range(1, 1'000'000))
      ->capture_default_str();
  app.add_option("--concurrency", f.concurrency, "Batches in flight at once")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  app.add_option("--retry-for-s", f.retry_for_s,
                 "Give up when no batch was acknowledged for this long (5xx and no answer are "
                 "retried; a 4xx is final)")
      ->check(CLI::Range(1, 86400))
      ->capture_default_str();
  app.add_option("--token", f.token, "Bearer token of role write (--auth-tokens-file)")
      ->envname("DAS_TOKEN");
  app.add_option("--tls-ca", f.tls_ca, "https: the CA file that verifies the control node")
      ->envname("DAS_TLS_CA");
  app.add_option("--progress", f.progress,
                 "bar (redrawn in place), lines (every 5 s), none, or auto (bar on a terminal)")
      ->check(CLI::IsMember({"auto", "bar", "lines", "none"}))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  das::load::LoadOptions options;
  options.source.path = f.file;
  options.source.key_column = f.key_column;
  options.source.value_column = f.value_column;
  if (f.format == "auto") {
    das::Result<das::load::FileFormat> format = das::load::FormatOfPath(f.file);
    if (!format.ok()) {
      std::fprintf(stderr, "das-load: %s\n", format.status().message().c_str());
      return 2;
    }
    options.source.format = *format;
  } else {
    options.source.format =
        f.format == "csv" ? das::load::FileFormat::kCsv : das::load::FileFormat::kParquet;
  }
  das::Result<das::load::Target> target = das::load::ParseUrl(f.url);
  if (!target.ok()) {
    std::fprintf(stderr, "das-load: %s\n", target.status().message().c_str());
    return 2;
  }
  options.target = *target;
  options.tls_ca_file = f.tls_ca;
  options.token = f.token;
  options.batch_rows = f.batch_rows;
  options.concurrency = f.concurrency;
  options.retry_for = std::chrono::seconds(f.retry_for_s);

  const bool bar = f.progress == "bar" || (f.progress == "auto" && isatty(STDERR_FILENO));
  Progress progress(bar);
  das::load::ProgressFn show;
  if (f.progress != "none")
    show = [&progress](const das::load::LoadProgress& p) { progress.Show(p); };
  bool sending = false;
  das::Result<das::load::LoadSummary> summary = das::load::Load(options, show, &sending);
  if (!summary.ok()) {
    if (bar) std::fputc('\n', stderr);
    std::fprintf(stderr, "das-load: %s\n", summary.status().message().c_str());
    // 1: the file (a bad row, a missing column: nothing was sent); 3: the cluster refused a
    // batch or took none in time (a re-run with the same flags resumes: stored batches are
    // answered as duplicates).
    return sending ? 3 : 1;
  }
  const double seconds = Seconds(summary->load_time);
  std::printf(
      "das-load: %llu rows in %llu batch%s loaded from %s in %.2f s (%.0f rows/s; checked in "
      "%.2f s; %llu retries); file id %s\n",
      static_cast<unsigned long long>(summary->rows),
      static_cast<unsigned long long>(summary->batches), summary->batches == 1 ? "" : "es",
      f.file.c_str(), seconds, seconds > 0 ? static_cast<double>(summary->rows) / seconds : 0,
      Seconds(summary->validate_time), static_cast<unsigned long long>(summary->retries),
      summary->file_id.c_str());
  return 0;
}
