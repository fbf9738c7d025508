#include "storage/node_store.h"

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
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include <prometheus/histogram.h>
#include <spdlog/spdlog.h>

#include "storage/disk_space.h"
#include "storage/duckdb_util.h"
#include "storage/node_store_impl.h"
#include "storage/replica_state.h"
#include "storage/staged_insert.h"
#include "storage/store_tables.h"

namespace das::storage {
namespace {

constexpr const char* kDeleteExpiredKeys =
    "DELETE FROM replica_keys WHERE replica = $1 AND committed_at < $2";
constexpr const char* kDeleteOldRequests =
    "DELETE FROM replica_requests WHERE replica = $1 AND raft_index <= $2";
// The row exists from the replica's first open, so that storing an index is an UPDATE: an
// INSERT OR REPLACE (a MERGE in DuckDB 1.4) costs about 2 ms of CPU per transaction.
constexpr const char* kStoreApplied =
    "UPDATE replica_applied SET applied_index = $2 WHERE replica = $1";
constexpr const char* kSeedApplied =
    "INSERT INTO replica_applied SELECT $1, 0 WHERE NOT EXISTS "
    "(SELECT 1 FROM replica_applied WHERE replica = $1)";

Status Stopping() { return ShuttingDown("the store is stopping"); }

// While the disk is full, how often the applier measures it again.
constexpr std::chrono::milliseconds kDiskRecheck{500};

// A COMMIT whose WAL write found no space: DuckDB kept nothing of it and stays usable.
bool WalOutOfSpace(const Status& status) {
  const std::string& m = status.message();
  return m.find("No space left") != std::string::npos && m.find(".wal") != std::string::npos &&
         m.find("checkpoint") == std::string::npos;
}

// A round that failed writing DuckDB's file or WAL (out of space, an I/O error, a failed
// checkpoint), not one that refused its input.
bool FailedWriting(const Status& status) {
  const std::string& m = status.message();
  for (const char* sign : {"No space left", "Could not write", "checkpoint", "invalidated",
                           "Input/output error", "Disk quota"}) {
    if (m.find(sign) != std::string::npos) return true;
  }
  return false;
}

// Deletes a migrated file and makes its deletion durable.
void RemoveMigrated(const std::filesystem::path& path) {
  std::error_code error;
  std::filesystem::remove(path.string() + ".wal", error);
  std::filesystem::remove(path, error);
  if (int fd = ::open(path.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

Status NodeStoreImpl::Start(duck::ConnectionHandle applier,
                            std::vector<duck::ConnectionHandle> readers) {
  conn_ = std::move(applier);
  // A start on a full disk comes up full (and writes nothing but its tables' first rows).
  if (disk_reserve_bytes_ > 0) (void)DiskFull();
  RETURN_IF_ERROR(PrepareApplier());
  applier_ = std::thread([this] { ApplierLoop(); });
  for (duck::ConnectionHandle& conn : readers) {
    readers_.emplace_back([this, conn = std::move(conn)]() mutable {
      for (;;) {
        auto tasks = reads_.PopGroup(1, [](const auto&) { return size_t{1}; });
        if (tasks.empty()) return;
        tasks.front()(conn.get());
      }
    });
  }
  return Status::Ok();
}

Status NodeStoreImpl::PrepareApplier() {
  duckdb_connection conn = conn_.get();
  RETURN_IF_ERROR(CreateStoreTables(conn));
  ASSIGN_OR_RETURN(delete_expired_keys_, duck::Prepare(conn, kDeleteExpiredKeys));
  ASSIGN_OR_RETURN(delete_old_requests_, duck::Prepare(conn, kDeleteOldRequests));
  ASSIGN_OR_RETURN(store_applied_, duck::Prepare(conn, kStoreApplied));
  ASSIGN_OR_RETURN(seed_applied_, duck::Prepare(conn, kSeedApplied));
  // Parsed once: parsing BEGIN and COMMIT anew costs a tenth of a small transaction.
  ASSIGN_OR_RETURN(begin_, duck::Prepare(conn, "BEGIN TRANSACTION"));
  ASSIGN_OR_RETURN(commit_, duck::Prepare(conn, "COMMIT"));
  using duck::ColumnType;
  ASSIGN_OR_RETURN(duck::StagedInsert keys,
                   duck::StagedInsert::Create(conn, "replica_keys",
                                              {{"replica", ColumnType::kUBigInt},
                                               {"key", ColumnType::kVarchar},
                                               {"fingerprint", ColumnType::kUBigInt},
                                               {"rows_written", ColumnType::kUBigInt},
                                               {"committed_at", ColumnType::kTimestamp}}));
  keys_.emplace(std::move(keys));
  ASSIGN_OR_RETURN(duck::StagedInsert requests,
                   duck::StagedInsert::Create(conn, "replica_requests",
                                              {{"replica", ColumnType::kUBigInt},
                                               {"request_id", ColumnType::kUBigInt},
                                               {"raft_index", ColumnType::kUBigInt},
                                               {"outcomes", ColumnType::kVarchar}}));
  requests_.emplace(std::move(requests));
  sinks_ = ApplierSinks{nullptr,
                        &*keys_,
                        &*requests_,
                        delete_expired_keys_.get(),
                        delete_old_requests_.get(),
                        store_applied_.get(),
                        seed_applied_.get()};
  // DuckDB plans the round's inserts anew at every execution (storage/staged_insert.h), and
  // optimizing a plain INSERT is a tenth of a small round's CPU for nothing. An import turns it
  // on while it runs: it reads whole tables.
  return duck::Exec(conn, "PRAGMA disable_optimizer");
}

Status NodeStoreImpl::RunOnApplier(std::function<Status()> job) {
  auto done = std::make_shared<std::promise<Status>>();
  std::future<Status> result = done->get_future();
  {
    MutexLock lock(mu_);
    if (applier_done_) return Stopping();
    jobs_.push_back([job = std::move(job), done] { done->set_value(job()); });
  }
  work_.notify_all();
  return result.get();
}

Result<std::unique_ptr<Store>> NodeStoreImpl::OpenReplica(ReplicaStoreOptions options) {
  auto partition = std::make_shared<Partition>(options.replica, options);
  {
    MutexLock lock(mu_);
    if (stopping_) return Stopping();
    if (partitions_.count(options.replica) > 0) {
      return InvalidArgument("replica " + std::to_string(options.replica) + " is open already");
    }
  }
  RETURN_IF_ERROR(RunOnApplier([&] { return OpenOnApplier(partition, options); }));
  return std::unique_ptr<Store>(std::make_unique<ReplicaStore>(*this, partition));
}

Status NodeStoreImpl::OpenOnApplier(const std::shared_ptr<Partition>& partition,
                                    const ReplicaStoreOptions& options) {
  std::error_code error;
  const std::filesystem::path old_file(options.migrate_from);
  if (!options.migrate_from.empty() && std::filesystem::exists(old_file, error)) {
    // Imported whole in one transaction, then deleted: a crash in between imports it again
    // (the same rows replace the same rows: nothing applied since, the replica opens after).
    Result<uint64_t> imported = Import(partition->id, old_file.string(), 0);
    if (!imported.ok()) {
      return Internal("cannot migrate " + old_file.string() + " into " + db_path_ + ": " +
                      imported.status().message());
    }
    RemoveMigrated(old_file);
    spdlog::info("store {}: migrated {} (replica {}, applied index {})", db_path_,
                 old_file.string(), partition->id, *imported);
  }
  ReplicaConfig config{partition->id, options.idempotency_retention, options.clock,
                       options.request_window};
  ApplierSinks sinks = sinks_;
  ASSIGN_OR_RETURN(sinks.rows, RowsInsert(partition->id));
  ASSIGN_OR_RETURN(partition->state, ReplicaState::Load(conn_.get(), config, sinks,
                                                        &partition->running, &partition->keys));
  MutexLock lock(mu_);
  if (partitions_.count(partition->id) > 0) {
    return InvalidArgument("replica " + std::to_string(partition->id) + " is open already");
  }
  partitions_.emplace(partition->id, partition);
  return Status::Ok();
}

Result<duck::StagedInsert*> NodeStoreImpl::RowsInsert(uint32_t replica) {
  auto it = rows_.find(replica);
  if (it != rows_.end()) return &it->second;
  RETURN_IF_ERROR(CreateRowsTable(conn_.get(), replica));
  using duck::ColumnType;
  ASSIGN_OR_RETURN(duck::StagedInsert rows,
                   duck::StagedInsert::Create(conn_.get(), RowsTable(replica),
                                              {{"partition_key", ColumnType::kVarchar},
                                               {"value", ColumnType::kDouble},
                                               {"ingest_ts", ColumnType::kTimestamp}}));
  return &rows_.emplace(replica, std::move(rows)).first->second;
}

Status NodeStoreImpl::RemoveReplica(uint32_t replica) {
  {
    MutexLock lock(mu_);
    if (partitions_.count(replica) > 0) {
      return InvalidArgument("replica " + std::to_string(replica) + " is still open");
    }
  }
  return RunOnApplier([this, replica] {
    rows_.erase(replica);  // its table is dropped: a later open prepares the insert again
    return DeleteReplica(conn_.get(), replica);
  });
}

Result<std::vector<uint32_t>> NodeStoreImpl::Replicas() {
  std::vector<uint32_t> replicas;
  RETURN_IF_ERROR(RunOnApplier([&]() -> Status {
    ASSIGN_OR_RETURN(replicas, ListReplicas(conn_.get()));
    return Status::Ok();
  }));
  return replicas;
}

size_t NodeStoreImpl::queue_depth() const {
  MutexLock lock(mu_);
  size_t depth = 0;
  for (const auto& [id, partition] : partitions_) depth += partition->queue.size();
  return depth;
}

size_t NodeStoreImpl::QueueDepth(const Partition& partition) const {
  MutexLock lock(mu_);
  return partition.queue.size();
}

void NodeStoreImpl::Enqueue(Partition& partition, WriteRequest request) {
  {
    MutexLock lock(mu_);
    if (!stopping_ && !partition.closing) {
      partition.queue.push_back(std::move(request));
      request.done = nullptr;
    }
  }
  if (request.done || request.replace) {
    // Refused: answered on the caller's thread, no store thread will take it.
    if (request.replace) return request.replace->done(Stopping());
    return request.done(Stopping());
  }
  work_.notify_all();
}

void NodeStoreImpl::Read(std::function<void(Result<duckdb_connection>)> task) {
  std::function<void(duckdb_connection)> read = [task](duckdb_connection conn) { task(conn); };
  if (!reads_.Push(read)) task(Stopping());
}

// Kept per replica as the index waited for, so that it ends once that is applied: neither cut
// short by a round that already held it, nor lost for entries the replica has not received.
void NodeStoreImpl::Expedite(Partition& partition, uint64_t through) {
  if (min_round_interval_.count() == 0) return;
  {
    MutexLock lock(mu_);
    if (partition.running.applied_index() >= through) return;
    partition.expedite_through = std::max(partition.expedite_through, through);
  }
  work_.notify_all();
}

// Checked at every wake-up of a pause: a replica nobody waits for costs a comparison.
bool NodeStoreImpl::WaitedLocked() {
  bool waited = false;
  for (const auto& [id, partition] : partitions_) {
    if (partition->expedite_through == 0) continue;
    if (partition->expedite_through <= partition->running.applied_index()) {
      partition->expedite_through = 0;  // served
      continue;
    }
    // A replica whose writes wait for a copy (or fail) holds nobody else's rounds back.
    waited = waited || (!partition->blocked && !partition->failed);
  }
  return waited;
}

bool NodeStoreImpl::RunnableLocked() const {
  for (const auto& [id, partition] : partitions_) {
    if (!partition->blocked && !partition->busy && !partition->queue.empty()) return true;
  }
  return false;
}

NodeStoreImpl::Round NodeStoreImpl::CollectLocked() {
  Round round;
  size_t rows = 0;
  // Round-robin from where the last round stopped, so that a full round leaves no replica out.
  const auto start = partitions_.lower_bound(next_start_);
  for (auto it = start; it != partitions_.end(); ++it) {
    if (!TakeLocked(it->second, round, rows)) return round;
  }
  for (auto it = partitions_.begin(); it != start; ++it) {
    if (!TakeLocked(it->second, round, rows)) return round;
  }
  return round;
}

bool NodeStoreImpl::TakeLocked(const std::shared_ptr<Partition>& partition, Round& round,
                               size_t& rows) {
  if (partition->blocked || partition->busy || partition->queue.empty()) return true;
  if (rows >= max_rows_per_round_) {
    next_start_ = partition->id;
    return false;
  }
  partition->busy = true;
  next_start_ = partition->id + 1;
  if (partition->failed) {
    round.refused.push_back(
        {partition,
         std::vector<WriteRequest>(std::make_move_iterator(partition->queue.begin()),
                                   std::make_move_iterator(partition->queue.end())),
         Stopping()});
    partition->queue.clear();
    return true;
  }
  std::vector<WriteRequest>& group =
      round.groups.emplace_back(partition, std::vector<WriteRequest>{}).second;
  while (!partition->queue.empty() &&
         (rows == 0 || rows + partition->queue.front().rows <= max_rows_per_round_)) {
    WriteRequest& front = partition->queue.front();
    if (front.replace) {
      // After this round committed what came before it; the replica's writes wait meanwhile.
      partition->blocked = true;
      partition->fetching = true;  // Close() waits for the replacement from now on
      round.replaces.emplace_back(partition, std::move(front.replace));
      partition->queue.pop_front();
      break;
    }
    rows += front.rows;
    group.push_back(std::move(front));
    partition->queue.pop_front();
  }
  return true;
}

void NodeStoreImpl::ApplierLoop() {
  for (;;) {
    std::deque<Job> jobs;
    Round round;
    {
      UniqueLock lock(mu_);
      work_.wait(lock.native(), [this]() REQUIRES(mu_) {
        return !jobs_.empty() || RunnableLocked() || (stopping_ && partitions_.empty());
      });
      jobs.swap(jobs_);
      if (jobs.empty()) {
        if (!RunnableLocked()) {  // stopping, and every replica closed
          applier_done_ = true;
          break;
        }
        lock.Unlock();
        const bool full = disk_reserve_bytes_ > 0 && DiskFull();
        lock.Lock();
        if (!full) {
          round = CollectLocked();
        } else if ((round = CollectRefusedLocked()).empty()) {
          // Raft entries wait for room; a job, or something to refuse, does not.
          work_.wait_for(lock.native(), kDiskRecheck,
                         [this]() REQUIRES(mu_) { return !jobs_.empty() || RefusableLocked(); });
          continue;
        }
      }
    }
    for (Job& job : jobs) job();
    if (round.empty()) continue;
    const auto started = std::chrono::steady_clock::now();
    RunRound(round);
    PauseBetweenRounds(started);
  }
  idle_.notify_all();
  // Jobs queued before the loop saw that it ends (none can be queued after).
  std::deque<Job> late;
  {
    MutexLock lock(mu_);
    late.swap(jobs_);
  }
  for (Job& job : late) job();
}

bool NodeStoreImpl::RefusableLocked() const {
  for (const auto& [id, p] : partitions_) {
    if (!p->busy && !p->queue.empty() && p->closing) return true;
  }
  return false;
}

NodeStoreImpl::Round NodeStoreImpl::CollectRefusedLocked() {
  Round round;
  for (auto& [id, partition] : partitions_) {
    if (partition->busy || partition->queue.empty() || !partition->closing) continue;
    std::deque<WriteRequest>& queue = partition->queue;
    partition->busy = true;
    round.refused.push_back({partition,
                             std::vector<WriteRequest>(std::make_move_iterator(queue.begin()),
                                                       std::make_move_iterator(queue.end())),
                             Stopping()});
    queue.clear();
  }
  return round;
}

bool NodeStoreImpl::DiskFull() const {
  MutexLock lock(disk_mu_);
  Result<uint64_t> free = free_bytes_();
  const bool was = disk_full_.load(std::memory_order_acquire);
  if (!free.ok()) {
    spdlog::warn("store {}: cannot measure the free space of its disk: {}", db_path_,
                 free.status().ToString());
    return was;
  }
  disk_free_.store(*free, std::memory_order_release);
  // Full below the reserve; room again only with a quarter more, so that it does not flap.
  const bool full =
      *free < (was ? disk_reserve_bytes_ + disk_reserve_bytes_ / 4 : disk_reserve_bytes_);
  if (full == was) return full;
  disk_full_.store(full, std::memory_order_release);
  constexpr uint64_t kMiB = 1024 * 1024;
  if (full) {
    spdlog::error(
        "store {}: disk full: {} MiB free, below the reserve of {} MiB (--disk-reserve-mb): "
        "nothing is written until there is room (raft entries wait in memory and in their logs); "
        "free space on its disk (no restart needed)",
        db_path_, *free / kMiB, disk_reserve_bytes_ / kMiB);
  } else {
    spdlog::info("store {}: room on its disk again ({} MiB free): writing resumes", db_path_,
                 *free / kMiB);
  }
  return full;
}

void NodeStoreImpl::PauseBetweenRounds(std::chrono::steady_clock::time_point started) {
  if (min_round_interval_.count() == 0) return;
  UniqueLock lock(mu_);
  // What arrives meanwhile waits for the next round: fewer, larger commits (each costs DuckDB
  // a few milliseconds of CPU, whatever its size).
  work_.wait_until(lock.native(), started + min_round_interval_, [this]() REQUIRES(mu_) {
    return expedite_ || WaitedLocked() || stopping_ || !jobs_.empty();
  });
  expedite_ = false;
}

void NodeStoreImpl::RunRound(Round& round) {
  for (Round::Refused& refused : round.refused) {
    for (WriteRequest& request : refused.requests) {
      if (request.replace)
        request.replace->done(refused.status);
      else
        request.done(refused.status);
    }
  }
  std::vector<ReplicaState::Staged> staged;
  const auto started = std::chrono::steady_clock::now();
  Status committed = CommitRound(round, staged);
  if (commit_seconds_ != nullptr) {
    commit_seconds_->Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  }
  if (committed.ok()) {
    for (size_t i = 0; i < round.groups.size(); ++i) {
      auto& [partition, group] = round.groups[i];
      if (!group.empty()) partition->state->Committed(group, staged[i]);
    }
  } else if (WalOutOfSpace(committed)) {
    // The disk filled between the guard's measurement and the COMMIT: DuckDB refused the WAL
    // write and kept nothing of the round, and takes writes again once there is room (tried
    // on DuckDB 1.4.4). The round waits for room, in order, unanswered.
    spdlog::error("store {}: a round found the disk full ({}); it waits for room", db_path_,
                  committed.ToString());
    disk_full_.store(true, std::memory_order_release);
    Requeue(round);
  } else {
    size_t requests = 0;
    for (auto& [partition, group] : round.groups) requests += group.size();
    spdlog::error("store {}: a round of {} writes rolled back: {}", db_path_, requests,
                  committed.ToString());
    if (FailedWriting(committed)) {
      // DuckDB 1.4.4's state after a failed write to its file is not to be trusted: a later
      // checkpoint can lose committed rows (see node_store.h). Its WAL is intact: a restart
      // replays it, and the raft logs what came after.
      spdlog::critical(
          "store {}: DuckDB could not write its file; stopping before it writes "
          "again (a restart recovers from its WAL)",
          db_path_);
      std::fflush(nullptr);
      std::abort();
    }
    for (auto& [partition, group] : round.groups) {
      for (WriteRequest& request : group) request.done(committed);
    }
  }
  FinishRound(round);
}

Status NodeStoreImpl::CommitRound(Round& round, std::vector<ReplicaState::Staged>& staged) {
  bool any = false;
  for (auto& [partition, group] : round.groups) {
    if (group.empty()) continue;
    any = true;
    partition->state->PruneIfDue(group);
  }
  if (!any) {
    staged.resize(round.groups.size());
    return Status::Ok();
  }
  { ASSIGN_OR_RETURN(duck::QueryResult begun, duck::Execute(begin_.get(), "BEGIN")); }
  Status status = Status::Ok();
  staged.reserve(round.groups.size());
  for (auto& [partition, group] : round.groups) {
    Result<ReplicaState::Staged> one = partition->state->Stage(group);
    if (!one.ok()) {
      status = std::move(one).status();
      break;
    }
    staged.push_back(std::move(one).value());
  }
  for (auto& [partition, group] : round.groups) {
    if (status.ok()) status = partition->state->FlushRows();
  }
  if (status.ok()) status = keys_->Flush();
  if (status.ok()) status = requests_->Flush();
  if (status.ok()) {
    Result<duck::QueryResult> commit = duck::Execute(commit_.get(), "COMMIT");
    if (commit.ok()) return Status::Ok();
    status = std::move(commit).status();
  }
  for (auto& [partition, group] : round.groups) partition->state->ClearRows();
  keys_->Clear();
  requests_->Clear();
  for (auto& [partition, group] : round.groups) partition->state->RolledBack();
  // Also after a failed COMMIT: DuckDB may keep the failed transaction open until ROLLBACK.
  if (Status rolled_back = duck::Exec(conn_.get(), "ROLLBACK"); !rolled_back.ok()) {
    spdlog::debug("store {}: {}", db_path_, rolled_back.ToString());
  }
  return status;
}

void NodeStoreImpl::Requeue(Round& round) {
  UniqueLock lock(mu_);
  for (auto& [partition, group] : round.groups) {
    partition->queue.insert(partition->queue.begin(), std::make_move_iterator(group.begin()),
                            std::make_move_iterator(group.end()));
    group.clear();
  }
  // Not at once again: the guard measures the disk first, after a pause.
  work_.wait_for(lock.native(), kDiskRecheck, [this]() REQUIRES(mu_) { return stopping_; });
}

void NodeStoreImpl::FinishRound(Round& round) {
  {
    MutexLock lock(mu_);
    for (auto& [partition, group] : round.groups) partition->busy = false;
    for (Round::Refused& refused : round.refused) refused.partition->busy = false;
  }
  idle_.notify_all();
  for (auto& [partition, replace] : round.replaces) StartReplace(partition, std::move(replace));
}

void NodeStoreImpl::StartReplace(const std::shared_ptr<Partition>& partition,
                                 std::shared_ptr<WriteRequest::Replace> replace) {
  if (partition->state->applied_index() >= replace->min_index) {
    replace->done(Status::Ok());
    {
      MutexLock lock(mu_);
      partition->blocked = false;
      partition->fetching = false;
    }
    work_.notify_all();
    idle_.notify_all();
    return;
  }
  MutexLock lock(mu_);
  // A previous fetcher of this replica has ended (it cleared `fetching` last thing).
  if (partition->fetcher.joinable()) partition->fetcher.join();
  partition->fetcher = std::thread(
      [this, partition, replace = std::move(replace)]() mutable { Fetch(partition, replace); });
}

void NodeStoreImpl::Fetch(std::shared_ptr<Partition> partition,
                          std::shared_ptr<WriteRequest::Replace> replace) {
  std::chrono::milliseconds pause(100);
  Status installed = Stopping();
  while (!partition->stopping.load(std::memory_order_acquire)) {
    Result<std::string> path = replace->fetch(partition->stopping);
    installed = path.ok()
                    ? RunOnApplier([&] { return Install(*partition, *path, replace->min_index); })
                    : path.status();
    if (path.ok()) {
      std::error_code error;
      std::filesystem::remove(*path, error);
    }
    if (installed.ok() || partition->stopping.load(std::memory_order_acquire)) break;
    spdlog::warn("replica {}: no copy at index {} installed yet: {}; again in {} ms", partition->id,
                 replace->min_index, installed.ToString(), pause.count());
    UniqueLock lock(mu_);
    idle_.wait_for(lock.native(), pause,
                   [&] { return partition->stopping.load(std::memory_order_acquire); });
    pause = std::min<std::chrono::milliseconds>(pause * 2, std::chrono::seconds(5));
  }
  if (!installed.ok()) installed = Stopping();
  replace->done(installed);
  {
    MutexLock lock(mu_);
    // A replacement that gave up leaves a gap: no later entry may be applied over it.
    if (!installed.ok()) partition->failed = true;
    partition->blocked = false;
    partition->fetching = false;
  }
  work_.notify_all();
  idle_.notify_all();
}

Result<uint64_t> NodeStoreImpl::Import(uint32_t replica, const std::string& path,
                                       uint64_t min_index) {
  // An import reads whole tables: DuckDB's optimizer on while it runs (PrepareApplier).
  RETURN_IF_ERROR(duck::Exec(conn_.get(), "PRAGMA enable_optimizer"));
  Result<uint64_t> imported = ImportReplica(conn_.get(), replica, path, min_index);
  if (Status off = duck::Exec(conn_.get(), "PRAGMA disable_optimizer"); !off.ok()) {
    spdlog::warn("store {}: {}", db_path_, off.ToString());
  }
  return imported;
}

Status NodeStoreImpl::Install(Partition& partition, const std::string& path, uint64_t min_index) {
  Result<uint64_t> imported = Import(partition.id, path, min_index);
  // The copy is committed: a reload that fails leaves memory and table apart, and a restart
  // loads them again, as at any open.
  Status reloaded = imported.ok() ? partition.state->Reload() : imported.status();
  if (imported.ok() && !reloaded.ok()) {
    spdlog::critical("replica {}: installed a copy but cannot load it: {}; stopping", partition.id,
                     reloaded.ToString());
    std::abort();
  }
  return reloaded;
}

void NodeStoreImpl::Close(const std::shared_ptr<Partition>& partition) {
  {
    MutexLock lock(mu_);
    partition->closing = true;
    expedite_ = true;  // what it queued is finished without waiting out a pause
  }
  partition->stopping.store(true, std::memory_order_release);
  idle_.notify_all();  // a fetcher's pause
  work_.notify_all();
  std::vector<WriteRequest> left;
  {
    UniqueLock lock(mu_);
    idle_.wait(lock.native(), [&]() REQUIRES(mu_) {
      return (partition->queue.empty() || applier_done_) && !partition->busy &&
             !partition->fetching;
    });
    left.assign(std::make_move_iterator(partition->queue.begin()),
                std::make_move_iterator(partition->queue.end()));
    partition->queue.clear();
    auto it = partitions_.find(partition->id);
    if (it != partitions_.end() && it->second == partition) partitions_.erase(it);
  }
  if (partition->fetcher.joinable()) partition->fetcher.join();
  for (WriteRequest& request : left) {
    if (request.replace)
      request.replace->done(Stopping());
    else
      request.done(Stopping());
  }
  work_.notify_all();  // a stopping applier waits for the last replica to close
}

void NodeStoreImpl::Stop() {
  MutexLock stop(stop_mu_);
  if (stopped_) return;
  stopped_ = true;
  std::vector<std::shared_ptr<Partition>> open;
  {
    MutexLock lock(mu_);
    stopping_ = true;
    stopping_flag_.store(true, std::memory_order_release);
    for (auto& [id, partition] : partitions_) open.push_back(partition);
  }
  // Replicas still open finish what they queued; a fetch gives up.
  for (const std::shared_ptr<Partition>& partition : open) Close(partition);
  work_.notify_all();
  reads_.Close();
  if (applier_.joinable()) applier_.join();
  for (std::thread& reader : readers_) reader.join();
  rows_.clear();
  keys_.reset();
  requests_.reset();
  delete_expired_keys_.reset();
  delete_old_requests_.reset();
  store_applied_.reset();
  seed_applied_.reset();
  begin_.reset();
  commit_.reset();
  conn_.reset();
  db_.reset();  // duckdb_close, after every connection was closed
  lock_.Release();
  spdlog::info("store {}: closed", db_path_);
}

Result<std::unique_ptr<NodeStore>> NodeStore::Open(NodeStoreOptions options) {
  const std::filesystem::path dir(options.data_dir);
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) {
    spdlog::error("store: cannot create {}: {}", dir.string(), error.message());
    return Unavailable("cannot create " + dir.string() + ": " + error.message());
  }
  ASSIGN_OR_RETURN(DirLock lock, DirLock::Acquire(dir));
  const std::string db_path = (dir / options.file_name).string();
  const uint64_t reserve = options.disk_reserve_bytes;
  if (!options.free_bytes) {
    // A ballast given up at start is made again once there is room (none without a reserve).
    KeepBallast(dir.string(), BallastFor(reserve), reserve);
    options.free_bytes = [dir = dir.string(), reserve]() -> Result<uint64_t> {
      ASSIGN_OR_RETURN(DiskSize disk, MeasureDisk(dir));
      if (disk.free_bytes >= reserve) RestoreBallast(dir, BallastFor(reserve), reserve);
      return disk.free_bytes;
    };
  }
  ASSIGN_OR_RETURN(duck::DatabaseHandle db,
                   duck::OpenDatabase(db_path, options.duckdb_threads,
                                      CheckpointThresholdFor(reserve), options.memory_limit_bytes));
  ASSIGN_OR_RETURN(duck::ConnectionHandle applier, duck::Connect(db.get()));
  std::vector<duck::ConnectionHandle> readers;
  for (size_t i = 0; i < std::max<size_t>(options.reader_threads, 1); ++i) {
    ASSIGN_OR_RETURN(duck::ConnectionHandle conn, duck::Connect(db.get()));
    readers.push_back(std::move(conn));
  }
  auto store = std::make_unique<NodeStoreImpl>(options, std::move(lock), std::move(db));
  RETURN_IF_ERROR(store->Start(std::move(applier), std::move(readers)));
  if (options.memory_limit_bytes != 0) {
    spdlog::info("store {}: open, DuckDB's memory limit {} MiB", db_path,
                 options.memory_limit_bytes >> 20);
  } else {
    spdlog::info("store {}: open", db_path);
  }
  return std::unique_ptr<NodeStore>(std::move(store));
}

}  // namespace das::storage
