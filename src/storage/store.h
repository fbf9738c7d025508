// The store of one replica (a shard replica, or the unreplicated store of
// --replication-factor 1): a view of the worker's one DuckDB database (storage/node_store.h),
// used only through DuckDB's C API.
//
// Write() and Apply() queue writes for the node store's applier, which applies what every
// replica queued in one transaction a round (group commit) and calls each caller back only
// after COMMIT returned, so an acknowledged row is durable (DuckDB syncs its WAL on commit).
// Each sub-batch is atomic; its idempotency key (if any) is stored in the same transaction as
// its rows, so a retried key is answered from the table and never stored twice, across
// restarts. Keys older than the retention window are pruned.
// ComputeAggregate() answers from a running aggregate the applier updates after each COMMIT;
// reads run on the node store's reader threads with their own connections (DuckDB MVCC) and
// never wait for the applier. Sums are exact (common/exact_sum.h), so no finite input
// overflows them.
// Thread-safety: every public method may be called from any thread. Callbacks run on the
// store's own threads (ComputeAggregate's, and those of work refused after Stop(), on the
// caller's) and must not block.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/exact_sum.h"
#include "common/status.h"

struct _duckdb_connection;  // duckdb.h's connection handle: readers get one (Store::RunOnReader)

namespace prometheus {
class Histogram;
}

namespace das::storage {

struct StoredRow {
  std::string partition_key;
  double value = 0;
};

struct SubBatch {
  std::vector<StoredRow> rows;
  std::string idempotency_key;  // empty: none
  // With a key: the fingerprint of the whole client batch this part belongs to (see
  // common/fingerprint.h), stored with the key; a later part with the key and another
  // fingerprint is a reuse with other rows (kKeyConflict).
  uint64_t fingerprint = 0;
  // Only look the key up (kOk: unknown, kDuplicate, kKeyConflict); store nothing.
  bool check_only = false;
  // The rows' own ingest times, one per row (empty: the write's): rows imported from an
  // unreplicated store keep the time they were first stored at (control/legacy_import.h).
  std::vector<int64_t> row_ingest_us;
};

struct SubBatchOutcome {
  enum class Code { kOk, kDuplicate, kKeyConflict };
  Code code = Code::kOk;
  // kOk: rows stored now; kDuplicate: rows the first request with this key stored.
  uint64_t rows_written = 0;
};

// What the first sub-batch with a key stored.
struct KeyRecord {
  uint64_t fingerprint = 0;  // of the whole client batch (common/fingerprint.h)
  uint64_t rows_written = 0;
  int64_t committed_at_us = 0;  // microseconds since the Unix epoch
};

struct Aggregate {
  uint64_t count = 0;
  ExactSum sum;  // exact: no sum of finite values overflows or loses a bit in it
  std::optional<double> min;
  std::optional<double> max;
  // The last raft entry these figures include (0: none, or not replicated).
  uint64_t applied_index = 0;
};

// The replica id of the unreplicated store (--replication-factor 1), beside the shards' ids.
inline constexpr uint32_t kUnreplicatedReplica = 0xFFFFFFFFu;

// For Store::Open: a store with a node store of its own (tests, tools).
struct StoreOptions {
  std::string data_dir;  // created if missing; holds `file_name`
  std::string file_name = "store.duckdb";
  // How long an idempotency key is remembered after its batch committed.
  std::chrono::seconds idempotency_retention{24 * 3600};
  // Upper bound of rows the writer puts in one transaction.
  size_t max_rows_per_commit = 1'000'000;
  size_t reader_threads = 1;
  // DuckDB's own worker threads per query (0: DuckDB's default).
  size_t duckdb_threads = 0;
  // Ingest timestamps, key commit times and the prune interval; not owned, outlives the store.
  const Clock* clock = &Clock::Real();
  // How many raft entries a request id is remembered for (storage/request_window.h).
  uint64_t request_window = 65536;
  // At least this long between the starts of two transactions (0: none): what is queued
  // meanwhile shares the next one. For replicas, whose writers are answered at raft commit;
  // what someone waits for (a read, a keyed entry) is committed at once (Expedite).
  std::chrono::milliseconds min_commit_interval{0};
  // Observes every write transaction's duration in seconds, BEGIN to COMMIT (null: none).
  // Not owned; outlives the store.
  prometheus::Histogram* commit_seconds = nullptr;
  // The replica this store is in its database.
  uint32_t replica = kUnreplicatedReplica;
};

// What the disk guard of a worker's store saw last (storage/node_store.h).
struct DiskState {
  bool full = false;  // nothing is written until there is room
  uint64_t free_bytes = 0;
  uint64_t reserve_bytes = 0;  // 0: no guard
};

// A committed raft entry for Store::Apply: its index in the shard's log, the ingest time its
// leader fixed (so that every replica stores the same timestamps), and its sub-batches.
// The ingest time a store records is its leader's, raised where needed so that it increases
// with every entry that stores rows (by 1 us at least): so the newest ingest time of a shard
// names a snapshot of it (the rows at or before it), the same on every replica.
struct ReplicatedEntry {
  uint64_t index = 0;
  int64_t ingest_ts_us = 0;
  std::vector<SubBatch> batches;
  // The control node's id of the request (0: none). An id seen in the last
  // StoreOptions::request_window entries is an internal retry: answered with the first
  // entry's outcomes, nothing stored.
  uint64_t request_id = 0;
  // The outcome of each sub-batch as the replicated state machine decided it at commit, in
  // the order of the log (replica/entry_decider.h): stored as decided. None: the store decides
  // from what it holds. Either way an internal retry (request_id) stores nothing.
  std::optional<std::vector<SubBatchOutcome>> decided = std::nullopt;
};

// The outcome of one Apply(): one entry per sub-batch, in order, or a Status when the
// transaction failed (nothing of it was stored).
using WriteCallback = std::function<void(Result<std::vector<SubBatchOutcome>>)>;
using AggregateCallback = std::function<void(Result<Aggregate>)>;
using StatusCallback = std::function<void(Status)>;
// A task for Store::RunOnReader: the reader thread's own connection (a duckdb_connection), or
// kShuttingDown when the store stops before it runs. The connection sees every replica of the
// database: a read of this store selects `replica = Store::replica()`.
using ReaderTask = std::function<void(Result<_duckdb_connection*>)>;
// For Store::ReplaceFromCopy: fetches a copy of another replica's store and returns the path of
// the local DuckDB file it wrote (durable under that name), or why not. `stopping` turns true
// when the store stops: give up then.
using CopyFetch = std::function<Result<std::string>(const std::atomic<bool>& stopping)>;

class Store {
 public:
  // Opens (or creates) a node store of its own in options.data_dir and this store as its one
  // replica. Fails with kUnavailable if the directory or file cannot be opened (e.g. locked by
  // another process). A worker opens its replicas' stores from its NodeStore instead.
  static Result<std::unique_ptr<Store>> Open(StoreOptions options);
  virtual ~Store() = default;
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Applies a committed raft entry, queued with the others (many entries share one
  // transaction), with the entry's ingest time (0: this node's wall clock), and stores its index
  // in the same transaction. REQUIRES: rows already validated (key 1..1024 bytes of UTF-8,
  // finite value).
  // An entry at or below applied_index() (a replay after a restart) is skipped: `done` gets an
  // empty vector. REQUIRES: entries in increasing index order. A failed transaction stores
  // nothing of the entry and leaves applied_index() as it was.
  virtual void Apply(ReplicatedEntry entry, WriteCallback done) = 0;
  // The replica this store is (its rows' `replica` in the node store's tables).
  virtual uint32_t replica() const = 0;
  // The index of the last raft entry committed in this store (0: none); survives restarts.
  virtual uint64_t applied_index() const = 0;
  // The newest ingest time committed (INT64_MIN: no row): rows committed later have later ones,
  // so the rows at or before it are a snapshot (a query's, for all its rounds).
  virtual int64_t newest_ingest_us() const = 0;
  // Entries queued for the applier, not yet taken into a transaction.
  virtual size_t queue_depth() const = 0;
  // The committed record of `key`, whatever its age (no expiry judged), from any thread.
  virtual std::optional<KeyRecord> FindKey(std::string_view key) const = 0;
  // The outcomes of the committed entry that carried `request_id`, if that entry is within the
  // request window before `index`, from any thread.
  virtual std::optional<std::vector<SubBatchOutcome>> FindRequest(uint64_t request_id,
                                                                  uint64_t index) const = 0;
  // How long a key is remembered after its commit, in microseconds.
  virtual int64_t key_retention_us() const = 0;
  // The disk guard of the database this store is in, as last measured (before a round, or
  // while full) or, `measure_now`, measured now (a statvfs).
  virtual DiskState disk(bool measure_now = false) const = 0;
  // How many entries a request id is remembered for (StoreOptions::request_window).
  virtual uint64_t request_window() const = 0;
  // The aggregate over every committed row, from the running aggregate the writer keeps (no
  // table scan): every acknowledged write is in it. Calls `done` on the caller's thread.
  virtual void ComputeAggregate(AggregateCallback done) = 0;
  // The same aggregate computed from a scan of the table (every value read from DuckDB and
  // added exactly), on a reader thread. What the running aggregate starts from; tests compare
  // the two.
  virtual void ScanAggregate(AggregateCallback done) = 0;

  // Runs `task` on a reader thread with that thread's read-only use of its own connection
  // (DuckDB MVCC: each statement sees what was committed when it began; the writer goes on).
  // The task must not keep the connection past its return.
  virtual void RunOnReader(ReaderTask task) = 0;

  // Writes a consistent copy of this store's data (rows, idempotency keys, request window,
  // applied index) to a new DuckDB file at `path` (storage/store_tables.h), in one read
  // transaction on a reader thread: the applier goes on meanwhile. `done` gets the copy's
  // applied index.
  virtual void ExportCopy(std::string path, std::function<void(Result<uint64_t>)> done) = 0;
  // Replaces this store's data by a copy (ExportCopy's, fetched by `fetch`) at an applied index
  // of at least `min_index`, in order with Apply: entries queued after it wait for it (the other
  // replicas' do not), and those the copy already holds are skipped. On a thread of its own,
  // `fetch` is called until a copy is installed (again after a pause when it or the copy
  // fails), or the store stops:
  // then `done` gets kShuttingDown, and no entry queued after it is applied. A store already
  // at `min_index` installs nothing. The copy file is deleted after use.
  virtual void ReplaceFromCopy(uint64_t min_index, CopyFetch fetch, StatusCallback done) = 0;

  // Someone waits for this replica's entries up to `through` (a read for the applied index, a
  // keyed entry for its outcome): until the store applied `through`, transactions start
  // without waiting out min_commit_interval, also for entries handed to it later.
  virtual void Expedite(uint64_t through) = 0;

  // Finishes this replica's queued work and fails work queued after it with kShuttingDown
  // (the other replicas go on). Safe to call more than once; the destructor calls it.
  virtual void Stop() = 0;

 protected:
  Store() = default;
};

}  // namespace das::storage
