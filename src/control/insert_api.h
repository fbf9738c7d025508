// InsertApi: the control node's insert endpoints (README, "API") as request -> response
// functions: POST /insert and POST /insert/batch. A row goes to the shard of its partition key
// (Replication::ShardOf), through one ShardWriter per shard to the shard's leader
// (control/shard_leader.h), and is answered once the shard's raft group committed it. A
// batch is split into one part per shard (control/batch_split.h); a keyed batch's part at the
// key's home shard goes first and decides the key (WriteKeyed). docs/architecture.md draws
// the path hop by hop.
//
// Status: 200 with rows_written; 422 for a row over a limit or a key reused with other rows;
// 503 when a shard cannot take its part (the client may retry, with its key safely).
// Thread-safety: the handlers may run concurrently. What it is given (not owned) outlives it.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "common/api_error.h"
#include "common/clock.h"
#include "control/replication.h"
#include "control/shard_writer.h"
#include "http/message.h"
#include "metrics/registry.h"

namespace google::protobuf {
class Arena;
}

namespace das::control {

struct InsertApiOptions {
  size_t max_inflight_per_worker = 1;  // --max-inflight-per-worker, per shard writer
  std::chrono::milliseconds deadline{2000};
  const Clock* clock = &Clock::Real();          // not owned
  const ClusterClock* cluster_clock = nullptr;  // not owned: stamps every write
  // Why the cluster cannot take inserts yet, while it cannot (a valid insert is then a 503);
  // empty: it always can.
  std::function<std::optional<std::string>()> held;
};

class InsertApi {
 public:
  // `replication` (the shards and their leaders) outlives this.
  InsertApi(boost::asio::any_io_executor executor, InsertApiOptions options,
            Replication& replication);

  boost::asio::awaitable<http::Response> Insert(http::Request request);
  boost::asio::awaitable<http::Response> InsertBatch(http::Request request);
  // One part into `shard`, as an insert's are (the legacy import's rows).
  boost::asio::awaitable<Result<internal::v1::SubBatchResult>> Write(uint32_t shard,
                                                                     internal::v1::SubBatch part);

  // Counts the rows and bytes of inserts answered 200 (das_ingest_*).
  void AddMetrics(metrics::Registry& registry);
  // das_insert_queue_depth: each shard writer's queued sub-batches, at scrape time.
  metrics::ScrapedFamily QueueDepths() const;

  // Refuses later inserts (503) and waits, at most `wait` in all, for the writes in flight.
  // Returns whether none is left.
  bool Stop(std::chrono::milliseconds wait);

 private:
  // What the parts of one client batch came to.
  struct PartsOutcome {
    uint64_t rows = 0;            // stored now or before (a duplicate)
    uint64_t duplicate_rows = 0;  // of `rows`, stored before
    std::optional<ApiError> error;
  };
  using Parts = std::vector<std::pair<uint32_t, internal::v1::SubBatch*>>;

  boost::asio::awaitable<void> WriteParts(Parts parts,
                                          const std::shared_ptr<google::protobuf::Arena>& arena,
                                          PartsOutcome& outcome);
  boost::asio::awaitable<PartsOutcome> WriteKeyed(
      std::map<uint32_t, internal::v1::SubBatch*> parts, uint32_t home,
      const std::shared_ptr<google::protobuf::Arena>& arena);
  std::optional<ApiError> Held() const;
  void CountIngest(const http::Request& request, uint64_t stored, uint64_t duplicate);

  boost::asio::any_io_executor executor_;
  const InsertApiOptions options_;
  Replication& replication_;
  std::vector<std::unique_ptr<ShardWriter>> writers_;  // by shard; built once
  struct IngestCounters {
    prometheus::Counter* stored = nullptr;  // null: no metrics
    prometheus::Counter* duplicate = nullptr;
    prometheus::Counter* bytes = nullptr;
  } ingest_;
};

}  // namespace das::control
