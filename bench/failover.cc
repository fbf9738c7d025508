// das-failover: how long after a kill -9 every shard takes writes again.
//
//   das-failover --port P --shards 16 --kill-pid PID [--timeout-ms 30000] [--trial N]
//
// Sends SIGKILL to PID (a worker), then, for every shard at once (one key per shard, from the
// same slot -> shard map as the control node: slots [s * 4096 / S, (s + 1) * 4096 / S)), sends
// single-row keyed batches to the control node until one is answered 200. Each shard's time is
// from the kill to its first 200; the last line is "SUMMARY mode=failover worst_ms=... ".
// Keys are unique per trial and attempt, so nothing is deduplicated away; every loop is bounded
// by --timeout-ms. Exits 1 if some shard took no write in time.
#include <signal.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "bench/latency.h"
#include "common/hash.h"
#include "das/v1/das.pb.h"
#include "http/client.h"

namespace {

namespace asio = boost::asio;
using das::bench::Clock;

int ShardOf(const std::string& key, int shards) {
  const uint64_t slot = das::HashPartitionKey(key) % das::kSlots;
  int shard = 0;
  while (shard + 1 < shards && static_cast<uint64_t>(shard + 1) * das::kSlots / shards <= slot) {
    ++shard;
  }
  return shard;
}

std::vector<std::string> KeyPerShard(int shards, const std::string& prefix) {
  std::vector<std::string> keys(shards);
  int found = 0;
  for (int i = 0; found < shards; ++i) {
    std::string key = prefix + "-" + std::to_string(i);
    std::string& slot = keys[ShardOf(key, shards)];
    if (slot.empty()) {
      slot = std::move(key);
      ++found;
    }
  }
  return keys;
}

asio::awaitable<void> Probe(das::http::Client& client, std::string key, std::string batch_prefix,
                            Clock::time_point killed, Clock::time_point deadline,
                            int64_t* elapsed_ns) {
  for (int attempt = 0; Clock::now() < deadline; ++attempt) {
    das::v1::InsertBatch batch;
    das::v1::Row* row = batch.add_rows();
    row->set_partition_key(key);
    row->set_value(1.0);
    batch.set_idempotency_key(batch_prefix + "-" + std::to_string(attempt));
    das::http::Request request;
    request.method = "POST";
    request.target = "/insert/batch";
    request.content_type = "application/x-protobuf";
    request.has_content_type = true;
    batch.SerializeToString(&request.body);
    das::Result<das::http::Response> answer =
        co_await client.Send(std::move(request), std::chrono::milliseconds(2000));
    if (answer.ok() && answer->status == 200) {
      *elapsed_ns = das::bench::ElapsedNanos(killed);
      co_return;
    }
    asio::steady_timer pause(co_await asio::this_coro::executor, std::chrono::milliseconds(5));
    co_await pause.async_wait(asio::use_awaitable);
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"das-failover: time from kill -9 of a worker until every shard takes writes"};
  std::string host = "127.0.0.1";
  uint16_t port = 8080;
  int shards = 16;
  int kill_pid = 0;
  unsigned timeout_ms = 30000;
  int trial = 0;
  app.add_option("--host", host)->capture_default_str();
  app.add_option("--port", port)->capture_default_str();
  app.add_option("--shards", shards)->capture_default_str()->check(CLI::Range(1, 256));
  app.add_option("--kill-pid", kill_pid, "The worker to SIGKILL")->required();
  app.add_option("--timeout-ms", timeout_ms)->capture_default_str();
  app.add_option("--trial", trial, "Names this trial's keys")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  asio::io_context io;
  std::unique_ptr<das::http::Client> client = das::http::Client::Create(
      io.get_executor(), das::http::ClientOptions{host, port, static_cast<size_t>(shards)});
  const std::vector<std::string> keys = KeyPerShard(shards, "failover");
  std::vector<int64_t> elapsed(shards, -1);
  if (::kill(kill_pid, SIGKILL) != 0) {
    std::perror("kill");
    return 2;
  }
  const Clock::time_point killed = Clock::now();
  const Clock::time_point deadline = killed + std::chrono::milliseconds(timeout_ms);
  const std::string run = std::to_string(killed.time_since_epoch().count());
  for (int s = 0; s < shards; ++s) {
    asio::co_spawn(io,
                   Probe(*client, keys[s], "failover-" + run + "-" + std::to_string(s), killed,
                         deadline, &elapsed[s]),
                   asio::detached);
  }
  io.run();
  int64_t worst = 0;
  int missing = 0;
  for (int s = 0; s < shards; ++s) {
    if (elapsed[s] < 0) ++missing;
    worst = std::max(worst, elapsed[s]);
  }
  std::printf(
      "failover trial %d: every shard took a write %.1f ms after the kill (%d shards "
      "never did)\n",
      trial, worst / 1e6, missing);
  std::printf("SUMMARY mode=failover trial=%d worst_ms=%.1f missing=%d\n", trial, worst / 1e6,
              missing);
  return missing == 0 ? 0 : 1;
}
