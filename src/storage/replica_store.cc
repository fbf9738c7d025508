// A replica's view of the node store: the Store interface over one partition of it.
#include <string>
#include <utility>

#include "storage/node_store_impl.h"
#include "storage/store_tables.h"

namespace das::storage {
namespace {

Status Stopping(uint32_t replica) {
  return ShuttingDown("the store of replica " + std::to_string(replica) + " is stopping");
}

}  // namespace

DiskState ReplicaStore::disk(bool measure_now) const { return node_.disk(measure_now); }

void ReplicaStore::Apply(ReplicatedEntry entry, WriteCallback done) {
  size_t rows = 0;
  for (const SubBatch& batch : entry.batches) rows += batch.rows.size();
  WriteRequest request;
  request.batches = std::move(entry.batches);
  request.done = std::move(done);
  request.rows = rows;
  request.raft_index = entry.index;
  request.ingest_ts_us = entry.ingest_ts_us;
  request.request_id = entry.request_id;
  request.decided = std::move(entry.decided);
  node_.Enqueue(*partition_, std::move(request));
}

std::optional<KeyRecord> ReplicaStore::FindKey(std::string_view key) const {
  return partition_->keys.Lookup(key);
}

std::optional<std::vector<SubBatchOutcome>> ReplicaStore::FindRequest(uint64_t request_id,
                                                                      uint64_t index) const {
  return partition_->state->FindCommittedRequest(request_id, index);
}

size_t ReplicaStore::queue_depth() const { return node_.QueueDepth(*partition_); }

void ReplicaStore::ComputeAggregate(AggregateCallback done) {
  if (partition_->stopping.load(std::memory_order_acquire) || node_.stopping()) {
    return done(Stopping(partition_->id));
  }
  done(partition_->running.Snapshot());
}

void ReplicaStore::ScanAggregate(AggregateCallback done) {
  const uint32_t replica = partition_->id;
  node_.Read([replica, done = std::move(done)](Result<duckdb_connection> conn) {
    if (!conn.ok()) return done(std::move(conn).status());
    done(ScanReplica(*conn, replica));
  });
}

void ReplicaStore::RunOnReader(ReaderTask task) { node_.Read(std::move(task)); }

void ReplicaStore::ExportCopy(std::string path, std::function<void(Result<uint64_t>)> done) {
  const uint32_t replica = partition_->id;
  node_.Read(
      [replica, path = std::move(path), done = std::move(done)](Result<duckdb_connection> conn) {
        if (!conn.ok()) return done(std::move(conn).status());
        done(ExportReplica(*conn, replica, path));
      });
}

void ReplicaStore::ReplaceFromCopy(uint64_t min_index, CopyFetch fetch, StatusCallback done) {
  WriteRequest request;
  request.replace = std::make_shared<WriteRequest::Replace>(
      WriteRequest::Replace{min_index, std::move(fetch), std::move(done)});
  node_.Enqueue(*partition_, std::move(request));
}

void ReplicaStore::Expedite(uint64_t through) { node_.Expedite(*partition_, through); }

void ReplicaStore::Stop() {
  std::call_once(stopped_, [this] { node_.Close(partition_); });
}

}  // namespace das::storage
