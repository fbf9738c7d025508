#include "control/legacy_import.h"

#include <algorithm>
#include <sstream>
#include <utility>

#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "common/durable_file.h"
#include "common/hash.h"
#include "control/gather.h"
#include "rpc/status_wire.h"

namespace das::control {

namespace asio = boost::asio;
using internal::v1::SubBatch;
using internal::v1::SubBatchResult;

namespace {

constexpr uint32_t kRowsPerPage = 65536;
constexpr uint32_t kKeysPerPage = 4096;
// Keys written at once: each goes to every shard.
constexpr size_t kKeysAtOnce = 256;
constexpr std::chrono::milliseconds kHoldingInterval{100};
constexpr std::chrono::milliseconds kInterval{1000};

std::string PageKey(uint64_t worker, uint64_t from) {
  return std::string(kImportKeyPrefix) + std::to_string(worker) + "/" + std::to_string(from);
}

// What the page holds, so that another page at the same first row id (a page cut elsewhere)
// is a conflict, never a duplicate that would skip its rows.
uint64_t PageFingerprint(const std::string& key, const internal::v1::LegacyRowsResponse& page) {
  return HashPartitionKey(key + "/" + std::to_string(page.next()) + "/" +
                          std::to_string(page.rows_size()));
}

}  // namespace

std::map<uint32_t, SubBatch> SplitLegacyPage(
    uint64_t worker, const internal::v1::LegacyRowsResponse& page, uint64_t from,
    const std::function<uint32_t(std::string_view)>& shard_of) {
  const std::string key = PageKey(worker, from);
  const uint64_t fingerprint = PageFingerprint(key, page);
  std::map<uint32_t, SubBatch> parts;
  for (const internal::v1::LegacyRow& row : page.rows()) {
    SubBatch& part = parts[shard_of(row.partition_key())];
    if (part.idempotency_key().empty()) {
      part.set_idempotency_key(key);
      part.set_batch_fingerprint(fingerprint);
    }
    internal::v1::RowWire* out = part.add_rows();
    out->set_partition_key(row.partition_key());
    out->set_value(row.value());
    part.add_row_ingest_us(row.ingest_us());
  }
  return parts;
}

LegacyImport::LegacyImport(asio::any_io_executor executor, Hooks hooks,
                           std::chrono::milliseconds deadline)
    : strand_(asio::make_strand(executor)),
      hooks_(std::move(hooks)),
      deadline_(deadline),
      timer_(strand_) {
  Result<std::optional<std::string>> kept = ReadFileIfExists(hooks_.settled_file);
  if (!kept.ok()) {
    spdlog::warn("cannot read {}: {}; every member is asked again", hooks_.settled_file,
                 kept.status().ToString());
    return;
  }
  if (!kept->has_value()) return;
  std::istringstream lines(**kept);
  MutexLock lock(mu_);
  for (uint64_t id = 0; lines >> id;) settled_.insert(id);
}

void LegacyImport::Start() {
  {
    MutexLock lock(mu_);
    running_ = true;
  }
  asio::co_spawn(strand_, Run(), asio::detached);
}

void LegacyImport::Stop() {
  UniqueLock lock(mu_);
  stopping_ = true;
  if (!running_) return;
  asio::post(strand_, [this] { timer_.cancel(); });
  // A page's writes are bounded by the writers' deadline, and its reads by ours.
  if (!stopped_.wait_for(lock.native(), 4 * deadline_ + kInterval,
                         [this]() REQUIRES(mu_) { return !running_; })) {
    spdlog::warn("legacy import: a page is still in flight; stopping anyway");
  }
}

std::optional<std::string> LegacyImport::Pending() const {
  MutexLock lock(mu_);
  if (first_round_) return "asking the workers for rows they kept unreplicated";
  for (const auto& [worker, p] : progress_) {
    if (p.phase == Phase::kImporting) {
      return "importing the rows worker " + std::to_string(worker) + " kept unreplicated (" +
             std::to_string(p.keys_done) + " of " + std::to_string(p.keys_total) + " keys, " +
             std::to_string(p.rows_done) + " of " + std::to_string(p.rows_total) + " rows)" +
             (failure_.empty() ? std::string() : "; " + failure_);
    }
    return "waiting for worker " + std::to_string(worker) +
           " to say whether it kept rows unreplicated" +
           (failure_.empty() ? std::string() : " (" + failure_ + ")");
  }
  return std::nullopt;
}

asio::awaitable<void> LegacyImport::Run() {
  for (;;) {
    {
      MutexLock lock(mu_);
      if (stopping_) break;
    }
    asio::awaitable<bool> round = Round();
    const bool settled = co_await std::move(round);
    {
      MutexLock lock(mu_);
      if (stopping_) break;
    }
    timer_.expires_after(settled ? kInterval : kHoldingInterval);
    auto [ignored] = co_await timer_.async_wait(asio::as_tuple(asio::use_awaitable));
    (void)ignored;
  }
  MutexLock lock(mu_);
  running_ = false;
  stopped_.notify_all();
}

asio::awaitable<bool> LegacyImport::Round() {
  std::vector<uint64_t> unsettled;
  {
    MutexLock lock(mu_);
    std::map<uint64_t, Progress> members;
    for (uint64_t member : hooks_.members()) {
      if (settled_.count(member) > 0) continue;
      auto it = progress_.find(member);
      members[member] = it != progress_.end() ? it->second : Progress{};
      unsettled.push_back(member);
    }
    progress_ = std::move(members);  // a member that left is forgotten
    first_round_ = false;
  }
  for (uint64_t member : unsettled) {
    asio::awaitable<Status> import = ImportFrom(member);
    const Status imported = co_await std::move(import);
    MutexLock lock(mu_);
    if (!imported.ok()) {
      // kNotFound: the worker holds no topology yet (it answers again shortly): not logged.
      failure_ = imported.message();
      if (imported.code() != StatusCode::kNotFound) {
        spdlog::warn("legacy import from worker {}: {}", member, imported.ToString());
      }
      continue;
    }
    failure_.clear();
    const Progress& p = progress_[member];
    if (p.keys_total + p.rows_total > 0) {
      spdlog::info("imported the {} rows and {} keys worker {} kept unreplicated", p.rows_total,
                   p.keys_total, member);
    }
    if (Settle(member)) progress_.erase(member);
  }
  bool settled = false;
  {
    MutexLock lock(mu_);
    settled = progress_.empty();
  }
  if (hooks_.after_round) hooks_.after_round();
  co_return settled;
}

bool LegacyImport::Settle(uint64_t worker) {
  settled_.insert(worker);
  std::string text;
  for (uint64_t id : settled_) text += std::to_string(id) + "\n";
  if (Status written = WriteFileDurably(hooks_.settled_file, text); !written.ok()) {
    settled_.erase(worker);
    failure_ = written.ToString();
    spdlog::warn("legacy import: cannot record worker {} as settled: {}", worker, failure_);
    return false;
  }
  return true;
}

void LegacyImport::Note(uint64_t worker, const std::function<void(Progress&)>& change) {
  MutexLock lock(mu_);
  Progress& p = progress_[worker];
  change(p);
  if (p.keys_total + p.rows_total > 0) p.phase = Phase::kImporting;
}

asio::awaitable<Status> LegacyImport::ImportFrom(uint64_t worker) {
  asio::awaitable<Result<bool>> keys = ImportKeys(worker);
  Result<bool> keys_in = co_await std::move(keys);
  if (!keys_in.ok()) co_return keys_in.status();
  asio::awaitable<Result<bool>> rows = ImportRows(worker, /*count_only=*/!*keys_in);
  Result<bool> rows_in = co_await std::move(rows);
  if (!rows_in.ok()) co_return rows_in.status();
  bool any = false;
  Note(worker, [&any](Progress& p) { any = p.keys_total + p.rows_total > 0; });
  // Nothing was kept: nothing to import or delete, whether or not it holds the topology yet
  // (a worker that just joined).
  if (!any) co_return Status::Ok();
  if (!*keys_in || !*rows_in) {
    co_return NotFound("worker " + std::to_string(worker) + " is waiting for the topology");
  }
  asio::awaitable<Result<internal::v1::LegacyDoneResponse>> done = hooks_.done(worker);
  Result<internal::v1::LegacyDoneResponse> said = co_await std::move(done);
  co_return said.ok() ? Status::Ok() : said.status();
}

// Every key the worker kept, to every shard. False: the worker holds no topology yet.
asio::awaitable<Result<bool>> LegacyImport::ImportKeys(uint64_t worker) {
  internal::v1::LegacyPageRequest request;
  request.set_limit(kKeysPerPage);
  for (;;) {
    asio::awaitable<Result<internal::v1::LegacyKeysResponse>> read = hooks_.keys(worker, request);
    Result<internal::v1::LegacyKeysResponse> page = co_await std::move(read);
    if (!page.ok()) co_return page.status();
    Note(worker, [&page](Progress& p) { p.keys_total = page->total(); });
    if (page->waiting()) co_return false;
    for (int first = 0; first < page->keys_size(); first += static_cast<int>(kKeysAtOnce)) {
      const int last = std::min(page->keys_size(), first + static_cast<int>(kKeysAtOnce));
      std::vector<std::pair<uint32_t, SubBatch>> parts;
      for (int k = first; k < last; ++k) {
        SubBatch part;
        part.set_idempotency_key(page->keys(k).key());
        part.set_batch_fingerprint(page->keys(k).fingerprint());
        for (uint32_t s = 0; s < hooks_.shards; ++s) parts.emplace_back(s, part);
      }
      asio::awaitable<Status> write = WriteAll(std::move(parts), /*conflict_ok=*/true);
      if (Status written = co_await std::move(write); !written.ok()) co_return written;
    }
    Note(worker, [&page](Progress& p) { p.keys_done = page->next(); });
    if (page->done()) co_return true;
    request.set_from(page->next());
  }
}

// Every row the worker kept, a page at a time. False: the worker holds no topology yet.
asio::awaitable<Result<bool>> LegacyImport::ImportRows(uint64_t worker, bool count_only) {
  internal::v1::LegacyPageRequest request;
  request.set_limit(kRowsPerPage);
  for (;;) {
    asio::awaitable<Result<internal::v1::LegacyRowsResponse>> read = hooks_.rows(worker, request);
    Result<internal::v1::LegacyRowsResponse> page = co_await std::move(read);
    if (!page.ok()) co_return page.status();
    Note(worker, [&page](Progress& p) { p.rows_total = page->total(); });
    if (page->waiting() || count_only) co_return false;
    std::vector<std::pair<uint32_t, SubBatch>> parts;
    for (auto& [shard, part] : SplitLegacyPage(worker, *page, request.from(), hooks_.shard_of)) {
      parts.emplace_back(shard, std::move(part));
    }
    asio::awaitable<Status> write = WriteAll(std::move(parts), /*conflict_ok=*/false);
    if (Status written = co_await std::move(write); !written.ok()) co_return written;
    const uint64_t rows = static_cast<uint64_t>(page->rows_size());
    Note(worker, [rows](Progress& p) { p.rows_done += rows; });
    if (page->done()) co_return true;
    request.set_from(page->next());
  }
}

asio::awaitable<Status> LegacyImport::WriteAll(std::vector<std::pair<uint32_t, SubBatch>> parts,
                                               bool conflict_ok) {
  std::vector<asio::awaitable<Result<SubBatchResult>>> writes;
  writes.reserve(parts.size());
  for (auto& [shard, part] : parts) writes.push_back(hooks_.write(shard, std::move(part)));
  asio::awaitable<std::vector<Result<SubBatchResult>>> gather =
      GatherAll<SubBatchResult>(strand_, std::move(writes));
  const std::vector<Result<SubBatchResult>> results = co_await std::move(gather);
  for (size_t i = 0; i < results.size(); ++i) {
    if (!results[i].ok()) co_return results[i].status();
    const Result<rpc::SubBatchStored> part = rpc::FromWire(*results[i]);
    if (part.ok()) continue;
    if (part.status().code() == StatusCode::kAlreadyExists && conflict_ok) continue;
    co_return Internal("shard " + std::to_string(parts[i].first) +
                       " refused an imported part: " + part.status().ToString());
  }
  co_return Status::Ok();
}

void CallWorkers(LegacyImport::Hooks& hooks,
                 std::function<std::shared_ptr<rpc::WorkerClient>(uint64_t)> client_of,
                 std::chrono::milliseconds timeout) {
  using internal::v1::LegacyDoneResponse;
  using internal::v1::LegacyKeysResponse;
  using internal::v1::LegacyPageRequest;
  using internal::v1::LegacyRowsResponse;
  hooks.keys = [client_of, timeout](
                   uint64_t worker,
                   LegacyPageRequest page) -> LegacyImport::Call<LegacyKeysResponse> {
    std::shared_ptr<rpc::WorkerClient> client = client_of(worker);
    if (!client) co_return Unavailable("worker " + std::to_string(worker) + " left");
    asio::awaitable<Result<LegacyKeysResponse>> call = client->LegacyKeys(page, timeout);
    co_return co_await std::move(call);
  };
  hooks.rows = [client_of, timeout](
                   uint64_t worker,
                   LegacyPageRequest page) -> LegacyImport::Call<LegacyRowsResponse> {
    std::shared_ptr<rpc::WorkerClient> client = client_of(worker);
    if (!client) co_return Unavailable("worker " + std::to_string(worker) + " left");
    asio::awaitable<Result<LegacyRowsResponse>> call = client->LegacyRows(page, timeout);
    co_return co_await std::move(call);
  };
  hooks.done = [client_of, timeout](uint64_t worker) -> LegacyImport::Call<LegacyDoneResponse> {
    std::shared_ptr<rpc::WorkerClient> client = client_of(worker);
    if (!client) co_return Unavailable("worker " + std::to_string(worker) + " left");
    asio::awaitable<Result<LegacyDoneResponse>> call = client->LegacyDone(timeout);
    co_return co_await std::move(call);
  };
}

}  // namespace das::control
