// das-bench: a load generator for the control node's public API (README, "API").
//
// Speaks the real protocol (protobuf bodies, Content-Type application/x-protobuf) over kept-alive
// connections: one das::http::Client with max_connections = C, and C coroutines that each send
// one request at a time. Every loop is bounded by a request count and by a duration. Each
// latency is recorded; percentiles are exact (sorted at the end). Exits 1 if any request failed
// (transport error, a status other than 200, or an answer that does not match the request).
//
//   das-bench insert    --port P -c 64 -d 10          single-row POST /insert
//   das-bench batch     --port P -c 4 -b 10000 -d 10  POST /insert/batch, one idempotency key each
//                                                     (--unkeyed: none)
//   das-bench load      --port P --rows 1000000       bulk load (batches of 10,000 rows)
//   das-bench analytics --port P -n 50 --warmup 5     sequential GET /analytics
//
// The last line of every run is "SUMMARY mode=... key=value ...", for scripts.
#include <sys/resource.h>

#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include "bench/latency.h"
#include "bench/workload.h"
#include "das/v1/das.pb.h"
#include "http/client.h"

namespace {

namespace asio = boost::asio;
namespace v1 = das::v1;
using das::bench::Clock;
using das::bench::RandomKey;
using das::bench::RandomValue;

constexpr const char* kProtobuf = "application/x-protobuf";

struct Flags {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;
  std::string tls_ca = {};  // set: HTTPS, the server's certificate verified against this CA file
  size_t connections = 1;
  unsigned threads = 1;
  double duration_s = 10;
  uint64_t max_requests = 10'000'000;
  uint64_t max_rows = UINT64_MAX;
  uint64_t key_space = 1'000'000;
  size_t batch_rows = 10'000;
  size_t distinct_batches = 4;
  bool unkeyed = false;  // batch: no idempotency key (the key's check and record skipped)
  unsigned timeout_ms = 10'000;
  uint64_t seed = 42;
  bool http_only = false;  // any 2xx acknowledges the request (an HTTP ceiling such as nginx)
  // analytics
  uint64_t requests = 50;
  uint64_t warmup = 5;
  int64_t expect_count = -1;
};

// What one sending coroutine saw. Owned by that coroutine while it runs; merged at the end.
struct Stats {
  std::vector<int64_t> latencies_ns;
  uint64_t ok_requests = 0;
  uint64_t ok_rows = 0;
  std::map<std::string, uint64_t> errors;  // "HTTP 503", "transport UNAVAILABLE", ...
  std::string first_error;

  void Fail(const std::string& kind, const std::string& detail) {
    ++errors[kind];
    if (first_error.empty()) first_error = kind + ": " + detail;
  }
  void Merge(Stats& other) {
    latencies_ns.insert(latencies_ns.end(), other.latencies_ns.begin(), other.latencies_ns.end());
    ok_requests += other.ok_requests;
    ok_rows += other.ok_rows;
    for (const auto& [kind, n] : other.errors) errors[kind] += n;
    if (first_error.empty()) first_error = other.first_error;
  }
  uint64_t failed() const {
    uint64_t n = 0;
    for (const auto& [kind, count] : errors) n += count;
    return n;
  }
};

// State shared by the sending coroutines of one run.
struct Shared {
  const Flags& flags;
  das::http::Client& client;
  Clock::time_point deadline;
  std::atomic<uint64_t> requests_issued{0};
  std::atomic<uint64_t> rows_issued{0};

  // Claims the right to send one more request of `rows` rows, within every bound of the run.
  bool TakeTicket(uint64_t rows) {
    if (Clock::now() >= deadline) return false;
    if (requests_issued.fetch_add(1) >= flags.max_requests) return false;
    return rows_issued.fetch_add(rows) + rows <= flags.max_rows;
  }
};

std::string ErrorDetail(const das::http::Response& response) {
  v1::ErrorResponse error;
  if (error.ParseFromString(response.body) && !error.error().empty()) return error.error();
  return response.body.substr(0, 200);
}

// Checks one insert answer and counts it in `stats`.
void RecordInsert(const das::Result<das::http::Response>& answer, uint64_t rows, bool http_only,
                  Stats& stats) {
  if (!answer.ok()) {
    stats.Fail("transport " + std::string(das::StatusCodeName(answer.status().code())),
               answer.status().message());
    return;
  }
  if (http_only && answer->status / 100 == 2) {
    ++stats.ok_requests;
    stats.ok_rows += rows;
    return;
  }
  if (answer->status != 200) {
    stats.Fail("HTTP " + std::to_string(answer->status), ErrorDetail(*answer));
    return;
  }
  v1::InsertResponse response;
  if (!response.ParseFromString(answer->body)) {
    stats.Fail("undecodable InsertResponse", answer->body.substr(0, 200));
  } else if (response.rows_written() != rows) {
    stats.Fail("rows_written mismatch",
               std::to_string(response.rows_written()) + " of " + std::to_string(rows));
  } else {
    ++stats.ok_requests;
    stats.ok_rows += rows;
  }
}

das::http::Request Post(const char* target, std::string body) {
  das::http::Request request;
  request.method = "POST";
  request.target = target;
  request.content_type = kProtobuf;
  request.has_content_type = true;
  request.body = std::move(body);
  return request;
}

asio::awaitable<void> InsertLoop(Shared& shared, Stats& stats, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const std::chrono::milliseconds timeout(shared.flags.timeout_ms);
  v1::InsertRequest message;
  while (shared.TakeTicket(1)) {
    message.set_partition_key(RandomKey(rng, shared.flags.key_space));
    message.set_value(RandomValue(rng));
    das::http::Request request = Post("/insert", message.SerializeAsString());
    const Clock::time_point start = Clock::now();
    das::Result<das::http::Response> answer =
        co_await shared.client.Send(std::move(request), timeout);
    stats.latencies_ns.push_back(das::bench::ElapsedNanos(start));
    RecordInsert(answer, 1, shared.flags.http_only, stats);
  }
}

// `count` serialized InsertBatch messages of `rows` random rows each, without an idempotency
// key: a request appends its own key as a trailing field 2 (protobuf merges concatenated
// encodings), so the load generator does not spend its CPU re-encoding 10,000 rows per request.
std::vector<std::string> MakeBatchBodies(size_t count, size_t rows, uint64_t key_space,
                                         std::mt19937_64& rng) {
  std::vector<std::string> bodies;
  for (size_t i = 0; i < count; ++i) {
    v1::InsertBatch batch;
    batch.mutable_rows()->Reserve(static_cast<int>(rows));
    for (size_t r = 0; r < rows; ++r) {
      v1::Row* row = batch.add_rows();
      row->set_partition_key(RandomKey(rng, key_space));
      row->set_value(RandomValue(rng));
    }
    bodies.push_back(batch.SerializeAsString());
  }
  return bodies;
}

asio::awaitable<void> BatchLoop(Shared& shared, Stats& stats, uint64_t seed, std::string run_id) {
  std::mt19937_64 rng(seed);
  const Flags& flags = shared.flags;
  const std::chrono::milliseconds timeout(flags.timeout_ms);
  const std::vector<std::string> bodies = MakeBatchBodies(
      std::max<size_t>(flags.distinct_batches, 1), flags.batch_rows, flags.key_space, rng);
  v1::InsertBatch key_only;
  for (uint64_t seq = 0; shared.TakeTicket(flags.batch_rows); ++seq) {
    key_only.set_idempotency_key(run_id + "-" + std::to_string(seq));
    std::string body = bodies[seq % bodies.size()];
    if (!flags.unkeyed) key_only.AppendToString(&body);
    das::http::Request request = Post("/insert/batch", std::move(body));
    const Clock::time_point start = Clock::now();
    das::Result<das::http::Response> answer =
        co_await shared.client.Send(std::move(request), timeout);
    stats.latencies_ns.push_back(das::bench::ElapsedNanos(start));
    RecordInsert(answer, flags.batch_rows, flags.http_only, stats);
  }
}

// Runs `loop(shared, stats_i, i)` on `flags.connections` coroutines over `flags.threads` threads
// until all return, and gives back the merged stats and the wall time they took.
template <typename LoopFn>
std::pair<Stats, double> RunLoops(const Flags& flags, LoopFn loop) {
  asio::io_context io(static_cast<int>(flags.threads));
  das::http::ClientOptions options;
  options.host = flags.host;
  options.port = flags.port;
  options.max_connections = flags.connections;
  options.tls = !flags.tls_ca.empty();
  options.tls_ca_file = flags.tls_ca;
  std::unique_ptr<das::http::Client> client = das::http::Client::Create(io.get_executor(), options);
  const Clock::time_point start = Clock::now();
  Shared shared{flags, *client,
                start + std::chrono::duration_cast<Clock::duration>(
                            std::chrono::duration<double>(flags.duration_s))};
  std::vector<Stats> stats(flags.connections);
  std::atomic<size_t> remaining{flags.connections};
  std::mutex mu;
  Clock::time_point end = start;  // GUARDED_BY(mu)
  std::string exception;          // GUARDED_BY(mu)
  for (size_t i = 0; i < flags.connections; ++i) {
    asio::co_spawn(io, loop(shared, stats[i], i), [&](std::exception_ptr e) {
      std::lock_guard lock(mu);
      if (e) {
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          exception = ex.what();
        }
      }
      end = std::max(end, Clock::now());
      if (--remaining == 0) client->Close();
    });
  }
  std::vector<std::thread> threads;
  for (unsigned i = 1; i < flags.threads; ++i) threads.emplace_back([&io] { io.run(); });
  io.run();
  for (std::thread& t : threads) t.join();
  Stats total;
  for (Stats& s : stats) total.Merge(s);
  if (!exception.empty()) total.Fail("exception", exception);
  return {std::move(total), das::bench::Seconds(end - start)};
}

double CpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

// Prints the errors; returns the exit code.
int ReportErrors(const Stats& stats) {
  if (stats.failed() == 0 && stats.ok_requests > 0) return 0;
  for (const auto& [kind, n] : stats.errors)
    std::printf("errors: %s: %" PRIu64 "\n", kind.c_str(), n);
  if (!stats.first_error.empty()) std::printf("first error: %s\n", stats.first_error.c_str());
  if (stats.ok_requests == 0) std::printf("no request succeeded\n");
  return 1;
}

int RunInserts(const char* mode, const Flags& flags, bool batched) {
  const std::string run_id = "bench-" + std::to_string(flags.seed) + "-" +
                             std::to_string(Clock::now().time_since_epoch().count());
  auto [stats, seconds] = RunLoops(flags, [&](Shared& shared, Stats& s, size_t i) {
    const uint64_t seed = flags.seed * 1000003 + i;
    return batched ? BatchLoop(shared, s, seed, run_id + "-" + std::to_string(i))
                   : InsertLoop(shared, s, seed);
  });
  const das::bench::LatencySummary lat = das::bench::Summarize(stats.latencies_ns);
  const double rows_per_s = static_cast<double>(stats.ok_rows) / seconds;
  const double requests_per_s = static_cast<double>(stats.ok_requests) / seconds;
  std::printf("%s: %zu connections, %u client threads, %.2f s, %" PRIu64
              " requests acknowledged, %" PRIu64 " failed\n",
              mode, flags.connections, flags.threads, seconds, stats.ok_requests, stats.failed());
  std::printf("acknowledged rows: %" PRIu64
              "  rows/s: %.0f  requests/s: %.0f  client CPU: %.2f s\n",
              stats.ok_rows, rows_per_s, requests_per_s, CpuSeconds());
  das::bench::PrintLatency(mode, lat);
  const int code = ReportErrors(stats);
  std::printf("SUMMARY mode=%s connections=%zu batch_rows=%zu seconds=%.3f ok_rows=%" PRIu64
              " ok_requests=%" PRIu64 " failed=%" PRIu64
              " rows_per_s=%.0f requests_per_s=%.0f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f "
              "max_ms=%.3f client_cpu_s=%.2f\n",
              mode, flags.connections, batched ? flags.batch_rows : 1, seconds, stats.ok_rows,
              stats.ok_requests, stats.failed(), rows_per_s, requests_per_s, lat.p50_ms, lat.p90_ms,
              lat.p99_ms, lat.max_ms, CpuSeconds());
  return code;
}

// What the analytics loop saw beyond latencies.
struct AnalyticsSeen {
  uint64_t min_count = UINT64_MAX;
  uint64_t max_count = 0;
  uint64_t partial = 0;
  double last_average = 0;
};

void RecordAnalytics(const das::Result<das::http::Response>& answer, const Flags& flags,
                     Stats& stats, AnalyticsSeen& seen) {
  if (!answer.ok()) {
    stats.Fail("transport " + std::string(das::StatusCodeName(answer.status().code())),
               answer.status().message());
    return;
  }
  v1::AnalyticsResponse response;
  if (answer->status != 200) {
    stats.Fail("HTTP " + std::to_string(answer->status), answer->body.substr(0, 200));
  } else if (!response.ParseFromString(answer->body)) {
    stats.Fail("undecodable AnalyticsResponse", answer->body.substr(0, 200));
  } else if (response.is_partial()) {
    ++seen.partial;
    stats.Fail("partial answer", std::to_string(response.responding_nodes()) + " of " +
                                     std::to_string(response.total_nodes()) + " nodes");
  } else if (flags.expect_count >= 0 &&
             response.count() != static_cast<uint64_t>(flags.expect_count)) {
    stats.Fail("unexpected count", std::to_string(response.count()));
  } else {
    ++stats.ok_requests;
    seen.min_count = std::min<uint64_t>(seen.min_count, response.count());
    seen.max_count = std::max<uint64_t>(seen.max_count, response.count());
    seen.last_average = response.average();
  }
}

int RunAnalytics(const Flags& flags) {
  Flags one = flags;
  one.connections = 1;
  one.max_requests = flags.warmup + flags.requests;
  AnalyticsSeen seen;
  auto [stats, seconds] = RunLoops(one, [&](Shared& shared, Stats& s, size_t) {
    return [](Shared& shared, Stats& s, AnalyticsSeen& seen) -> asio::awaitable<void> {
      const std::chrono::milliseconds timeout(shared.flags.timeout_ms);
      for (uint64_t i = 0; shared.TakeTicket(0); ++i) {
        das::http::Request request;
        request.method = "GET";
        request.target = "/analytics";
        request.accept = kProtobuf;
        const Clock::time_point start = Clock::now();
        das::Result<das::http::Response> answer =
            co_await shared.client.Send(std::move(request), timeout);
        const int64_t ns = das::bench::ElapsedNanos(start);
        if (i >= shared.flags.warmup) s.latencies_ns.push_back(ns);
        RecordAnalytics(answer, shared.flags, s, seen);
      }
    }(shared, s, seen);
  });
  const das::bench::LatencySummary lat = das::bench::Summarize(stats.latencies_ns);
  const uint64_t count = stats.ok_requests > 0 ? seen.max_count : 0;
  std::printf("analytics: %" PRIu64 " warm-up + %zu measured requests in %.2f s; count %" PRIu64
              " (min seen %" PRIu64 "), average %.6f\n",
              std::min(flags.warmup, stats.ok_requests), lat.samples, seconds, count,
              stats.ok_requests > 0 ? seen.min_count : 0, seen.last_average);
  das::bench::PrintLatency("analytics", lat);
  const int code = ReportErrors(stats);
  std::printf("SUMMARY mode=analytics count=%" PRIu64 " samples=%zu failed=%" PRIu64
              " min_ms=%.3f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f mean_ms=%.3f\n",
              count, lat.samples, stats.failed(), lat.min_ms, lat.p50_ms, lat.p90_ms, lat.p99_ms,
              lat.max_ms, lat.mean_ms);
  return code;
}

void AddCommonFlags(CLI::App& app, Flags& f) {
  app.add_option("--host", f.host, "Control node address")->capture_default_str();
  app.add_option("--port", f.port, "Control node port")->capture_default_str();
  app.add_option("--tls-ca", f.tls_ca,
                 "HTTPS: verify the control node's certificate against this CA file (PEM)");
  app.add_option("--threads", f.threads, "Threads running the client's io_context")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  app.add_option("--timeout-ms", f.timeout_ms, "Deadline of one request")->capture_default_str();
  app.add_option("--seed", f.seed, "Random seed")->capture_default_str();
}

void AddWriteFlags(CLI::App& app, Flags& f) {
  AddCommonFlags(app, f);
  app.add_option("-c,--connections", f.connections, "Connections = concurrent senders")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  app.add_option("-d,--duration", f.duration_s, "Seconds to run (upper bound)")
      ->capture_default_str();
  app.add_option("--max-requests", f.max_requests, "Upper bound on requests")
      ->capture_default_str();
  app.add_option("--keys", f.key_space, "Size of the random key space")->capture_default_str();
  app.add_flag("--http-only", f.http_only,
               "Count any 2xx as acknowledged, body unchecked (for an HTTP-only ceiling)");
}

void AddBatchFlags(CLI::App& app, Flags& f) {
  AddWriteFlags(app, f);
  app.add_option("-b,--batch-rows", f.batch_rows, "Rows per request")
      ->capture_default_str()
      ->check(CLI::Range(1, 1'000'000));
  app.add_option("--distinct-batches", f.distinct_batches,
                 "Pre-encoded batches per connection, sent in turn (each with a fresh key)")
      ->capture_default_str();
  app.add_flag("--unkeyed", f.unkeyed, "Send batches without an idempotency key");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"das-bench: load generator for the distributed analytics system's public API"};
  app.require_subcommand(1);
  Flags insert{.connections = 64};
  AddWriteFlags(*app.add_subcommand("insert", "Single-row POST /insert"), insert);
  Flags batch{.connections = 4};
  AddBatchFlags(*app.add_subcommand("batch", "POST /insert/batch of -b rows"), batch);
  Flags load{.connections = 4, .duration_s = 600, .max_rows = 1'000'000};
  CLI::App* load_cmd = app.add_subcommand("load", "Bulk load --rows rows in batches");
  AddBatchFlags(*load_cmd, load);
  load_cmd->add_option("--rows", load.max_rows, "Rows to load (a multiple of -b)")
      ->capture_default_str();
  Flags analytics{.duration_s = 600};
  CLI::App* analytics_cmd = app.add_subcommand("analytics", "Sequential GET /analytics");
  AddCommonFlags(*analytics_cmd, analytics);
  analytics_cmd->add_option("-n,--requests", analytics.requests, "Measured requests")
      ->capture_default_str();
  analytics_cmd->add_option("--warmup", analytics.warmup, "Unmeasured requests first")
      ->capture_default_str();
  analytics_cmd->add_option("--expect-count", analytics.expect_count,
                            "Fail unless every answer counts exactly this many rows");
  CLI11_PARSE(app, argc, argv);

  GOOGLE_PROTOBUF_VERIFY_VERSION;
  if (app.got_subcommand("insert")) return RunInserts("insert", insert, false);
  if (app.got_subcommand("batch")) return RunInserts("batch", batch, true);
  if (app.got_subcommand("analytics")) return RunAnalytics(analytics);
  if (load.max_rows % load.batch_rows != 0) {
    std::fprintf(stderr, "load: --rows must be a multiple of --batch-rows\n");
    return 2;
  }
  load.max_requests = load.max_rows / load.batch_rows;
  return RunInserts("load", load, true);
}
