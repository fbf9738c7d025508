// store-commit: the cost of one replica store transaction (bench/RESULTS.md). Applies `entries`
// raft entries of `rows` rows each to a fresh store, one at a time (each waits for the last:
// one entry per DuckDB transaction, as a replica under a trickle of small entries commits), or
// all queued at once (`--queued`: the writer groups them), and prints the entries and rows per
// second and the microseconds per transaction. `--copy` then times a catch-up from a copy of
// that store: ExportCopy (the source's tables into a new file) and ReplaceFromCopy into a
// second, empty store (the file's bytes are not sent over HTTP here).
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <future>
#include <string>
#include <vector>

#include <sys/resource.h>

#include <CLI/CLI.hpp>

#include "storage/store.h"

namespace {

// User and system CPU time of the whole process (the store's threads included).
double CpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"store-commit: the cost of a replica store's transactions"};
  size_t entries = 2000;
  size_t rows = 4;
  bool queued = false;
  bool copy = false;
  bool keyed = false;
  unsigned commit_interval_ms = 0;
  std::string dir = "/tmp/das-store-commit";
  app.add_option("--entries", entries)->capture_default_str();
  app.add_option("--rows", rows, "rows per entry")->capture_default_str();
  app.add_flag("--queued", queued, "queue every entry at once (the writer groups them)");
  app.add_option("--commit-interval-ms", commit_interval_ms)->capture_default_str();
  app.add_flag("--keyed", keyed, "each entry a client batch with its own idempotency key");
  app.add_flag("--copy", copy, "then time a copy of the store and its installation elsewhere");
  app.add_option("--dir", dir, "removed first")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  std::filesystem::remove_all(dir);

  das::storage::StoreOptions options;
  options.data_dir = dir;
  options.file_name = "shard.duckdb";
  options.duckdb_threads = 1;
  options.min_commit_interval = std::chrono::milliseconds(commit_interval_ms);
  auto store = das::storage::Store::Open(options);
  if (!store.ok()) {
    std::fprintf(stderr, "%s\n", store.status().ToString().c_str());
    return 1;
  }
  auto entry = [rows, keyed](uint64_t index) {
    das::storage::ReplicatedEntry e;
    e.index = index;
    e.ingest_ts_us = 1'700'000'000'000'000 + static_cast<int64_t>(index);
    e.request_id = 0x9e3779b97f4a7c15ULL * index;
    das::storage::SubBatch batch;
    for (size_t r = 0; r < rows; ++r) {
      batch.rows.push_back({"key-" + std::to_string(index) + "-" + std::to_string(r), 1.0});
    }
    if (keyed) {
      batch.idempotency_key = "batch-" + std::to_string(index);
      batch.fingerprint = index;
    }
    e.batches.push_back(std::move(batch));
    return e;
  };
  const auto started = std::chrono::steady_clock::now();
  const double cpu_started = CpuSeconds();
  if (queued) {
    std::vector<std::future<void>> done;
    for (uint64_t i = 1; i <= entries; ++i) {
      auto promise = std::make_shared<std::promise<void>>();
      done.push_back(promise->get_future());
      (*store)->Apply(entry(i), [promise](auto) { promise->set_value(); });
    }
    for (auto& d : done) d.get();
  } else {
    for (uint64_t i = 1; i <= entries; ++i) {
      std::promise<void> promise;
      (*store)->Apply(entry(i), [&promise](auto) { promise.set_value(); });
      promise.get_future().get();
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const double cpu_seconds = CpuSeconds() - cpu_started;
  std::printf(
      "SUMMARY entries=%zu rows_per_entry=%zu queued=%d keyed=%d entries_per_s=%.0f "
      "rows_per_s=%.0f us_per_entry=%.1f cpu_us_per_entry=%.1f\n",
      entries, rows, queued ? 1 : 0, keyed ? 1 : 0, entries / seconds, entries * rows / seconds,
      seconds * 1e6 / entries, cpu_seconds * 1e6 / entries);
  if (copy) {
    const std::string file = dir + "/copy.duckdb";
    const auto export_started = std::chrono::steady_clock::now();
    std::promise<das::Result<uint64_t>> exported;
    (*store)->ExportCopy(file, [&exported](das::Result<uint64_t> r) { exported.set_value(r); });
    das::Result<uint64_t> index = exported.get_future().get();
    const double export_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - export_started).count();
    if (!index.ok()) {
      std::fprintf(stderr, "export: %s\n", index.status().ToString().c_str());
      return 1;
    }
    const uint64_t bytes = std::filesystem::file_size(file);
    das::storage::StoreOptions target_options = options;
    target_options.data_dir = dir + "/target";
    auto target = das::storage::Store::Open(target_options);
    if (!target.ok()) return 1;
    const auto install_started = std::chrono::steady_clock::now();
    std::promise<das::Status> installed;
    (*target)->ReplaceFromCopy(
        *index, [&file](const std::atomic<bool>&) -> das::Result<std::string> { return file; },
        [&installed](das::Status status) { installed.set_value(status); });
    das::Status status = installed.get_future().get();
    const double install_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - install_started).count();
    if (!status.ok()) {
      std::fprintf(stderr, "install: %s\n", status.ToString().c_str());
      return 1;
    }
    std::printf("SUMMARY copy_rows=%zu copy_bytes=%llu export_s=%.3f install_s=%.3f\n",
                entries * rows, static_cast<unsigned long long>(bytes), export_s, install_s);
    (*target)->Stop();
  }
  (*store)->Stop();
  std::filesystem::remove_all(dir);
  return 0;
}
