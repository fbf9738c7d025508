#include "worker/store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <limits>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include <prometheus/histogram.h>
#include <spdlog/spdlog.h>

#include "common/log.h"
#include "worker/duckdb_util.h"
#include "worker/running_aggregate.h"
#include "worker/writer.h"

namespace das::worker {
namespace {

// Every value, added exactly in C++: DuckDB's sums round (and overflow to NaN on 3 x 1e308), so
// they cannot be what the running aggregate starts from.
constexpr const char* kScanValuesSql = "SELECT value FROM rows";

// An exclusive flock on <data_dir>/LOCK, held while the store is open. DuckDB's own file lock
// is an fcntl lock, which does not stop a second open of the same file within one process.
class DirLock {
 public:
  static Result<DirLock> Acquire(const std::filesystem::path& dir) {
    const std::string path = (dir / "LOCK").string();
    DirLock lock(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
    if (lock.fd_ < 0) return Unavailable("cannot open " + path + ": " + std::strerror(errno));
    if (::flock(lock.fd_, LOCK_EX | LOCK_NB) != 0) {
      return Unavailable("cannot lock " + path +
                         " (is another store using it?): " + std::strerror(errno));
    }
    return lock;
  }
  DirLock(DirLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  DirLock& operator=(DirLock&&) = delete;
  ~DirLock() { Release(); }
  void Release() {
    if (fd_ >= 0) ::close(fd_);  // closing the descriptor drops the lock
    fd_ = -1;
  }

 private:
  explicit DirLock(int fd) : fd_(fd) {}
  int fd_;
};

// A closable multi-producer queue. Once closed, Push fails and consumers drain what is left.
template <typename T>
class WorkQueue {
 public:
  // Takes `item` (moves from it) unless the queue is closed.
  bool Push(T& item) {
    {
      std::lock_guard lock(mu_);
      if (closed_) return false;
      items_.push_back(std::move(item));
    }
    cv_.notify_one();
    return true;
  }

  // Blocks for the front item, then takes the next ones while their summed weight stays within
  // `max_weight` (the first is always taken). Empty once closed and drained.
  template <typename WeightFn>
  std::vector<T> PopGroup(size_t max_weight, WeightFn weight) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this] { return closed_ || !items_.empty(); });
    std::vector<T> group;
    size_t total = 0;
    while (!items_.empty() && (group.empty() || total + weight(items_.front()) <= max_weight)) {
      total += weight(items_.front());
      group.push_back(std::move(items_.front()));
      items_.pop_front();
    }
    return group;
  }

  void Close() {
    {
      std::lock_guard lock(mu_);
      closed_ = true;
    }
    cv_.notify_all();
  }

  size_t size() const {
    std::lock_guard lock(mu_);
    return items_.size();
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<T> items_;  // GUARDED_BY(mu_)
  bool closed_ = false;  // GUARDED_BY(mu_)
};

// A query for a reader thread, run on that thread's connection.
using ReadTask = std::function<void(duckdb_connection)>;

Result<Aggregate> ReadAggregate(duckdb_connection conn) {
  ASSIGN_OR_RETURN(duck::QueryResult result, duck::Query(conn, kScanValuesSql));
  Aggregate aggregate;
  double min = std::numeric_limits<double>::infinity();
  double max = -std::numeric_limits<double>::infinity();
  // The column is NOT NULL and every stored value finite (validated before it was written).
  while (std::optional<duck::Chunk> chunk = result.NextChunk()) {
    const double* values = chunk->Data<double>(0);
    const size_t n = chunk->size();
    for (size_t i = 0; i < n; ++i) {
      aggregate.sum.Add(values[i]);
      min = std::min(min, values[i]);
      max = std::max(max, values[i]);
    }
    aggregate.count += n;
  }
  if (aggregate.count > 0) {
    aggregate.min = min;
    aggregate.max = max;
  }
  return aggregate;
}

// The tables a copy holds, columns named (Writer::ImportCopy reads them by name).
constexpr const char* kExportCopy[] = {
    "CREATE TABLE das_copy_out.rows AS SELECT partition_key, value, ingest_ts FROM rows",
    "CREATE TABLE das_copy_out.idempotency_keys AS "
    "SELECT key, fingerprint, rows_written, committed_at FROM idempotency_keys",
    "CREATE TABLE das_copy_out.raft_requests AS "
    "SELECT request_id, raft_index, outcomes FROM raft_requests",
    "CREATE TABLE das_copy_out.raft_applied AS SELECT id, applied_index FROM raft_applied",
};

// A consistent copy of the store's tables in a new DuckDB file (Store::ExportCopy): one read
// transaction, so the rows, keys, request ids and applied index are of one moment; the writer
// goes on meanwhile (MVCC). Its applied index, or 0 for a store that never applied an entry.
Result<uint64_t> WriteCopy(duckdb_connection conn, const std::string& path) {
  std::error_code error;
  std::filesystem::remove(path, error);
  std::filesystem::remove(path + ".wal", error);
  // One a failed DETACH may have left behind would refuse every later copy.
  RETURN_IF_ERROR(duck::Exec(conn, "DETACH DATABASE IF EXISTS das_copy_out"));
  RETURN_IF_ERROR(duck::Exec(conn, ("ATTACH " + duck::Quote(path) + " AS das_copy_out").c_str()));
  auto copy = [conn]() -> Result<uint64_t> {
    RETURN_IF_ERROR(duck::Exec(conn, "BEGIN TRANSACTION"));
    for (const char* sql : kExportCopy) {
      if (Status copied = duck::Exec(conn, sql); !copied.ok()) {
        (void)duck::Exec(conn, "ROLLBACK");
        return copied;
      }
    }
    RETURN_IF_ERROR(duck::Exec(conn, "COMMIT"));
    ASSIGN_OR_RETURN(const uint64_t index, ReadAppliedIndex(conn, "das_copy_out."));
    RETURN_IF_ERROR(duck::Exec(conn, "CHECKPOINT das_copy_out"));
    return index;
  };
  Result<uint64_t> copied = copy();
  Status detached = duck::Exec(conn, "DETACH das_copy_out");
  if (!copied.ok() || !detached.ok()) {
    std::filesystem::remove(path, error);
    std::filesystem::remove(path + ".wal", error);
  }
  if (!copied.ok()) return copied;
  RETURN_IF_ERROR(detached);
  // Checkpointed and closed: the file alone is the copy.
  if (std::filesystem::exists(path + ".wal", error)) {
    return Internal("the copy " + path + " kept a write-ahead log after DETACH");
  }
  return copied;
}

class StoreImpl final : public Store {
 public:
  StoreImpl(std::string db_path, const StoreOptions& options, DirLock lock, duck::DatabaseHandle db,
            std::unique_ptr<RunningAggregate> running, std::unique_ptr<KeyIndex> keys)
      : db_path_(std::move(db_path)),
        running_(std::move(running)),
        keys_(std::move(keys)),
        clock_(options.clock),
        retention_us_(
            std::chrono::duration_cast<std::chrono::microseconds>(options.idempotency_retention)
                .count()),
        max_rows_per_commit_(std::max<size_t>(options.max_rows_per_commit, 1)),
        min_commit_interval_(options.min_commit_interval),
        commit_seconds_(options.commit_seconds),
        log_shard_(options.log_shard),
        lock_(std::move(lock)),
        db_(std::move(db)) {}
  ~StoreImpl() override { Stop(); }

  // Hands the writer and one connection per reader thread to their threads.
  void Start(Writer writer, std::vector<duck::ConnectionHandle> readers);

  void Write(std::vector<SubBatch> batches, WriteCallback done) override;
  void Apply(ReplicatedEntry entry, WriteCallback done) override;
  uint64_t applied_index() const override { return running_->applied_index(); }
  int64_t newest_ingest_us() const override { return running_->newest_ingest_us(); }
  size_t queue_depth() const override { return write_queue_.size(); }
  SubBatchOutcome LookupKey(std::string_view key, uint64_t fingerprint) const override;
  void ComputeAggregate(AggregateCallback done) override;
  void ScanAggregate(AggregateCallback done) override;
  void RunOnReader(ReaderTask task) override;
  void ExportCopy(std::string path, std::function<void(Result<uint64_t>)> done) override;
  void ReplaceFromCopy(uint64_t min_index, CopyFetch fetch, StatusCallback done) override;
  void Expedite() override;
  void Stop() override;

 private:
  template <typename T>
  void SubmitRead(std::function<void(Result<T>)> done, Result<T> (*query)(duckdb_connection));
  void WriterLoop(Writer& writer);
  // On the writer thread: `group`'s writes in one transaction, unless a replacement failed.
  void ApplyWrites(Writer& writer, std::vector<WriteRequest>& group);
  void RunReplace(Writer& writer, WriteRequest::Replace& replace);
  Status InstallCopy(Writer& writer, const std::string& path, uint64_t min_index);
  Status ImportAndScan(Writer& writer, const std::string& path, uint64_t min_index);
  void ReaderLoop(duck::ConnectionHandle conn);
  Status Stopping() const { return ShuttingDown("store " + db_path_ + " is stopping"); }

  const std::string db_path_;
  const std::unique_ptr<RunningAggregate> running_;  // shared with the writer thread
  const std::unique_ptr<KeyIndex> keys_;             // changed by the writer thread only
  const Clock* const clock_;
  const int64_t retention_us_;
  const size_t max_rows_per_commit_;
  const std::chrono::milliseconds min_commit_interval_;
  prometheus::Histogram* const commit_seconds_;
  const std::optional<uint32_t> log_shard_;
  WorkQueue<WriteRequest> write_queue_;
  WorkQueue<ReadTask> read_queue_;

  std::mutex stop_mu_;
  bool stopped_ = false;  // GUARDED_BY(stop_mu_)
  std::atomic<bool> stopping_{false};
  // Wakes the writer from a pause: between two transactions (Expedite, Stop), between two
  // attempts to install a copy (Stop).
  std::mutex wake_mu_;
  std::condition_variable wake_;
  bool expedite_ = false;  // GUARDED_BY(wake_mu_)
  // A replacement gave up (the store stops): no later entry may be applied over the gap.
  bool replace_failed_ = false;  // writer thread only
  // Released in Stop(), in this order: threads (and with them the connections), database, lock.
  DirLock lock_;
  duck::DatabaseHandle db_;
  std::thread writer_thread_;
  std::vector<std::thread> reader_threads_;
};

void StoreImpl::Start(Writer writer, std::vector<duck::ConnectionHandle> readers) {
  writer_thread_ = std::thread([this, writer = std::move(writer)]() mutable {
    std::optional<LogContext> log;
    if (log_shard_) log.emplace(*log_shard_);
    WriterLoop(writer);
  });
  for (duck::ConnectionHandle& conn : readers) {
    reader_threads_.emplace_back([this, conn = std::move(conn)]() mutable {
      std::optional<LogContext> log;
      if (log_shard_) log.emplace(*log_shard_);
      ReaderLoop(std::move(conn));
    });
  }
}

void StoreImpl::Write(std::vector<SubBatch> batches, WriteCallback done) {
  size_t rows = 0;
  for (const SubBatch& batch : batches) rows += batch.rows.size();
  WriteRequest request{std::move(batches), std::move(done), rows};
  // Rejected work is answered on the caller's thread: no store thread will take it.
  if (!write_queue_.Push(request)) request.done(Stopping());
}

void StoreImpl::Apply(ReplicatedEntry entry, WriteCallback done) {
  size_t rows = 0;
  for (const SubBatch& batch : entry.batches) rows += batch.rows.size();
  WriteRequest request{std::move(entry.batches), std::move(done), rows, entry.index,
                       entry.ingest_ts_us,       entry.request_id};
  if (!write_queue_.Push(request)) request.done(Stopping());
}

SubBatchOutcome StoreImpl::LookupKey(std::string_view key, uint64_t fingerprint) const {
  std::optional<KeyRecord> record = keys_->Lookup(key);
  // An expired key not yet pruned is forgotten all the same (the writer prunes it before use).
  if (!record || record->committed_at_us < clock_->WallMicros() - retention_us_) {
    return SubBatchOutcome{SubBatchOutcome::Code::kOk, 0};
  }
  if (record->fingerprint != fingerprint)
    return SubBatchOutcome{SubBatchOutcome::Code::kKeyConflict, 0};
  return SubBatchOutcome{SubBatchOutcome::Code::kDuplicate, record->rows_written};
}

void StoreImpl::ComputeAggregate(AggregateCallback done) {
  if (stopping_.load(std::memory_order_acquire)) {
    done(Stopping());
    return;
  }
  done(running_->Snapshot());
}

void StoreImpl::ScanAggregate(AggregateCallback done) {
  SubmitRead<Aggregate>(std::move(done), &ReadAggregate);
}

template <typename T>
void StoreImpl::SubmitRead(std::function<void(Result<T>)> done,
                           Result<T> (*query)(duckdb_connection)) {
  // The task holds a copy of `done`, so that a rejected task can still be answered here.
  ReadTask task = [done, query](duckdb_connection conn) { done(query(conn)); };
  if (!read_queue_.Push(task)) done(Stopping());
}

void StoreImpl::RunOnReader(ReaderTask task) {
  ReadTask read = [task](duckdb_connection conn) { task(conn); };
  if (!read_queue_.Push(read)) task(Stopping());
}

void StoreImpl::ExportCopy(std::string path, std::function<void(Result<uint64_t>)> done) {
  ReadTask task = [done, path = std::move(path)](duckdb_connection conn) {
    done(WriteCopy(conn, path));
  };
  if (!read_queue_.Push(task)) done(Stopping());
}

void StoreImpl::ReplaceFromCopy(uint64_t min_index, CopyFetch fetch, StatusCallback done) {
  WriteRequest request;
  request.replace = std::make_shared<WriteRequest::Replace>(
      WriteRequest::Replace{min_index, std::move(fetch), std::move(done)});
  if (!write_queue_.Push(request)) request.replace->done(Stopping());
}

void StoreImpl::Expedite() {
  if (min_commit_interval_.count() == 0) return;
  {
    std::lock_guard lock(wake_mu_);
    expedite_ = true;
  }
  wake_.notify_all();
}

void StoreImpl::ApplyWrites(Writer& writer, std::vector<WriteRequest>& group) {
  if (group.empty()) return;
  if (replace_failed_) {
    for (WriteRequest& request : group) request.done(Stopping());
    return;
  }
  const auto started = std::chrono::steady_clock::now();
  writer.Apply(group);
  if (commit_seconds_ != nullptr) {
    commit_seconds_->Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  }
}

void StoreImpl::RunReplace(Writer& writer, WriteRequest::Replace& replace) {
  if (writer.applied_index() >= replace.min_index) return replace.done(Status::Ok());
  std::chrono::milliseconds pause(100);
  while (!stopping_.load(std::memory_order_acquire)) {
    Result<std::string> path = replace.fetch(stopping_);
    Status installed = path.ok() ? InstallCopy(writer, *path, replace.min_index) : path.status();
    if (path.ok()) {
      std::error_code error;
      std::filesystem::remove(*path, error);
    }
    if (installed.ok()) return replace.done(Status::Ok());
    if (stopping_.load(std::memory_order_acquire)) break;
    spdlog::warn("store {}: no copy at index {} installed yet: {}; again in {} ms", db_path_,
                 replace.min_index, installed.ToString(), pause.count());
    std::unique_lock lock(wake_mu_);
    wake_.wait_for(lock, pause, [this] { return stopping_.load(std::memory_order_acquire); });
    pause = std::min<std::chrono::milliseconds>(pause * 2, std::chrono::seconds(5));
  }
  replace_failed_ = true;
  replace.done(Stopping());
}

Status StoreImpl::InstallCopy(Writer& writer, const std::string& path, uint64_t min_index) {
  RETURN_IF_ERROR(writer.SetOptimizer(true));
  Status installed = ImportAndScan(writer, path, min_index);
  // Harmless when it fails: the writer's statements only cost a little more with it on.
  if (Status off = writer.SetOptimizer(false); !off.ok()) {
    spdlog::warn("store {}: {}", db_path_, off.ToString());
  }
  return installed;
}

Status StoreImpl::ImportAndScan(Writer& writer, const std::string& path, uint64_t min_index) {
  RETURN_IF_ERROR(writer.ImportCopy(path, min_index));
  // The running aggregate starts again from the new rows; reads meanwhile see the old ones. The
  // copy is committed: a scan that fails leaves a restart to start from the table.
  Result<Aggregate> initial = ReadAggregate(writer.connection());
  if (!initial.ok()) {
    spdlog::critical("store {}: installed a copy but cannot scan it: {}; stopping", db_path_,
                     initial.status().ToString());
    std::abort();
  }
  initial->applied_index = writer.applied_index();
  running_->Reset(*initial);
  return Status::Ok();
}

void StoreImpl::WriterLoop(Writer& writer) {
  auto weight = [](const WriteRequest& request) { return request.rows; };
  for (;;) {
    std::vector<WriteRequest> group = write_queue_.PopGroup(max_rows_per_commit_, weight);
    if (group.empty()) return;  // closed and drained
    const auto started = std::chrono::steady_clock::now();
    const bool replaces = std::any_of(group.begin(), group.end(),
                                      [](const WriteRequest& request) { return request.replace; });
    if (!replaces) {
      ApplyWrites(writer, group);
    } else {
      // In order: the writes before a replacement, the replacement, the writes after it.
      std::vector<WriteRequest> writes;
      for (WriteRequest& request : group) {
        if (!request.replace) {
          writes.push_back(std::move(request));
          continue;
        }
        ApplyWrites(writer, writes);
        writes.clear();
        RunReplace(writer, *request.replace);
      }
      ApplyWrites(writer, writes);
    }
    // What arrives meanwhile waits for the next transaction: fewer, larger commits (each costs
    // DuckDB a few milliseconds of CPU, whatever its size).
    if (min_commit_interval_.count() > 0) {
      std::unique_lock lock(wake_mu_);
      wake_.wait_until(lock, started + min_commit_interval_,
                       [this] { return expedite_ || stopping_.load(std::memory_order_acquire); });
      expedite_ = false;
    }
  }
}

void StoreImpl::ReaderLoop(duck::ConnectionHandle conn) {
  for (;;) {
    std::vector<ReadTask> tasks = read_queue_.PopGroup(1, [](const ReadTask&) { return 1; });
    if (tasks.empty()) return;
    tasks.front()(conn.get());
  }
}

void StoreImpl::Stop() {
  std::lock_guard lock(stop_mu_);
  if (stopped_) return;
  stopped_ = true;
  stopping_.store(true, std::memory_order_release);
  { std::lock_guard wake(wake_mu_); }
  wake_.notify_all();
  write_queue_.Close();
  read_queue_.Close();
  if (writer_thread_.joinable()) writer_thread_.join();
  for (std::thread& reader : reader_threads_) reader.join();
  db_.reset();  // duckdb_close, after every connection was closed by its thread
  lock_.Release();
  spdlog::info("store {}: closed", db_path_);
}

}  // namespace

Result<std::unique_ptr<Store>> Store::Open(StoreOptions options) {
  const std::filesystem::path dir(options.data_dir);
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) {
    spdlog::error("store: cannot create {}: {}", dir.string(), error.message());
    return Unavailable("cannot create " + dir.string() + ": " + error.message());
  }
  ASSIGN_OR_RETURN(DirLock lock, DirLock::Acquire(dir));
  const std::string db_path = (dir / options.file_name).string();
  ASSIGN_OR_RETURN(duck::DatabaseHandle db, duck::OpenDatabase(db_path, options.duckdb_threads));
  ASSIGN_OR_RETURN(duck::ConnectionHandle write_conn, duck::Connect(db.get()));
  auto running = std::make_unique<RunningAggregate>();
  auto keys = std::make_unique<KeyIndex>();
  ASSIGN_OR_RETURN(
      Writer writer,
      Writer::Create(std::move(write_conn), db_path, options.idempotency_retention, running.get(),
                     keys.get(), options.clock, options.request_window));
  std::vector<duck::ConnectionHandle> readers;
  for (size_t i = 0; i < std::max<size_t>(options.reader_threads, 1); ++i) {
    ASSIGN_OR_RETURN(duck::ConnectionHandle conn, duck::Connect(db.get()));
    readers.push_back(std::move(conn));
  }
  // The running aggregate starts from the table; no writer runs yet, so nothing is missed.
  ASSIGN_OR_RETURN(Aggregate initial, ReadAggregate(readers.front().get()));
  initial.applied_index = writer.applied_index();
  running->Reset(initial);
  auto store = std::make_unique<StoreImpl>(db_path, options, std::move(lock), std::move(db),
                                           std::move(running), std::move(keys));
  store->Start(std::move(writer), std::move(readers));
  spdlog::info("store {}: open", db_path);
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace das::worker
