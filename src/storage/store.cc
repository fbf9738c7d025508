#include "storage/store.h"

#include <utility>

#include "storage/node_store.h"

namespace das::storage {
namespace {

// A store with a node store of its own: stops both, the replica first.
class OwningStore final : public Store {
 public:
  OwningStore(std::unique_ptr<NodeStore> node, std::unique_ptr<Store> store)
      : node_(std::move(node)), store_(std::move(store)) {}
  ~OwningStore() override { Stop(); }

  void Apply(ReplicatedEntry entry, WriteCallback done) override {
    store_->Apply(std::move(entry), std::move(done));
  }
  uint32_t replica() const override { return store_->replica(); }
  uint64_t applied_index() const override { return store_->applied_index(); }
  int64_t newest_ingest_us() const override { return store_->newest_ingest_us(); }
  size_t queue_depth() const override { return store_->queue_depth(); }
  std::optional<KeyRecord> FindKey(std::string_view key) const override {
    return store_->FindKey(key);
  }
  std::optional<std::vector<SubBatchOutcome>> FindRequest(uint64_t request_id,
                                                          uint64_t index) const override {
    return store_->FindRequest(request_id, index);
  }
  int64_t key_retention_us() const override { return store_->key_retention_us(); }
  DiskState disk(bool measure_now) const override { return store_->disk(measure_now); }
  uint64_t request_window() const override { return store_->request_window(); }
  void ComputeAggregate(AggregateCallback done) override {
    store_->ComputeAggregate(std::move(done));
  }
  void ScanAggregate(AggregateCallback done) override { store_->ScanAggregate(std::move(done)); }
  void RunOnReader(ReaderTask task) override { store_->RunOnReader(std::move(task)); }
  void ExportCopy(std::string path, std::function<void(Result<uint64_t>)> done) override {
    store_->ExportCopy(std::move(path), std::move(done));
  }
  void ReplaceFromCopy(uint64_t min_index, CopyFetch fetch, StatusCallback done) override {
    store_->ReplaceFromCopy(min_index, std::move(fetch), std::move(done));
  }
  void Expedite(uint64_t through) override { store_->Expedite(through); }
  void Stop() override {
    store_->Stop();
    node_->Stop();
  }

 private:
  std::unique_ptr<NodeStore> node_;
  std::unique_ptr<Store> store_;
};

}  // namespace

Result<std::unique_ptr<Store>> Store::Open(StoreOptions options) {
  NodeStoreOptions node_options;
  node_options.data_dir = options.data_dir;
  node_options.file_name = options.file_name;
  node_options.max_rows_per_commit = options.max_rows_per_commit;
  node_options.reader_threads = options.reader_threads;
  node_options.duckdb_threads = options.duckdb_threads;
  node_options.min_commit_interval = options.min_commit_interval;
  node_options.commit_seconds = options.commit_seconds;
  ASSIGN_OR_RETURN(std::unique_ptr<NodeStore> node, NodeStore::Open(std::move(node_options)));
  ReplicaStoreOptions replica;
  replica.replica = options.replica;
  replica.idempotency_retention = options.idempotency_retention;
  replica.clock = options.clock;
  replica.request_window = options.request_window;
  ASSIGN_OR_RETURN(std::unique_ptr<Store> store, node->OpenReplica(std::move(replica)));
  return std::unique_ptr<Store>(std::make_unique<OwningStore>(std::move(node), std::move(store)));
}

}  // namespace das::storage
