// LegacyImport: moves what workers kept in their unreplicated store (rows stored with
// --replication-factor 1, or a worker.duckdb from before the node store) into the shards of
// this replicated cluster, once, with their ingest times, so that switching a cluster to
// replication (or upgrading one) neither hides nor doubles a row.
//
// For each member that has such a store (worker/legacy_export.h), in pages:
//   1. every idempotency key it kept goes to every shard, as a keyed sub-batch without rows and
//      with the key's fingerprint: a retry of a batch acknowledged before the switch is then a
//      duplicate at every shard its rows now go to, and a reuse with other rows a 422;
//   2. every row, a page at a time, split by shard; each shard's part of a page is keyed by the
//      page (kImportKeyPrefix, the worker, the page's first row id), so a page written again
//      after a crash of either node is a duplicate, never stored twice;
//   3. legacy/done: the worker deletes the store at its next start.
// Until each member has answered once (a member that kept nothing is done at once, before it
// takes the topology), and while a member's store is being imported, the cluster cannot answer
// completely: Pending() says why, and the control node answers inserts
// and reads with 503 (its /health "starting"). A member that has answered (and had nothing, or
// had it imported) is settled for good: its id is kept in a file of the control node's data
// directory, so a member down at a later start holds nothing up. A member that never answered
// holds the cluster until it does or is decommissioned: its store may hold acknowledged rows
// that no shard has, and an answer without them would not be exact.
//
// Lifecycle: Start() once, Stop() before the writers and clients go.
// Thread-safety: Start()/Stop() from one thread; Pending() from any; the loop on its strand.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include "common/mutex.h"
#include "common/status.h"
#include "das/v1/internal.pb.h"
#include "rpc/worker_client.h"

namespace das::control {

// The idempotency keys of imported pages start with this (a NUL byte: no key a client is
// likely to choose).
inline constexpr std::string_view kImportKeyPrefix{"\0das-import/", 12};

// A page of rows split by shard: each shard's part keyed by the page, in the page's order, with
// the rows' own ingest times. Pure.
std::map<uint32_t, internal::v1::SubBatch> SplitLegacyPage(
    uint64_t worker, const internal::v1::LegacyRowsResponse& page, uint64_t from,
    const std::function<uint32_t(std::string_view)>& shard_of);

class LegacyImport {
 public:
  template <typename T>
  using Call = boost::asio::awaitable<Result<T>>;
  struct Hooks {
    // The cluster's members now, by id (called on the loop's strand).
    std::function<std::vector<uint64_t>()> members;
    // A member's pages and its word that all is in (rpc::WorkerClient's Legacy* calls).
    std::function<Call<internal::v1::LegacyKeysResponse>(uint64_t worker,
                                                         internal::v1::LegacyPageRequest page)>
        keys;
    std::function<Call<internal::v1::LegacyRowsResponse>(uint64_t worker,
                                                         internal::v1::LegacyPageRequest page)>
        rows;
    std::function<Call<internal::v1::LegacyDoneResponse>(uint64_t worker)> done;
    uint32_t shards = 0;
    std::function<uint32_t(std::string_view)> shard_of;  // a key's shard
    // Writes one sub-batch into a shard (through its writer): the shard's outcome.
    std::function<Call<internal::v1::SubBatchResult>(uint32_t shard, internal::v1::SubBatch part)>
        write;
    // The file that keeps the settled members' ids (created when the first one settles).
    std::string settled_file;
    // Called on the loop's strand after each round (may be empty): Pending() is up to date.
    std::function<void()> after_round;
  };

  LegacyImport(boost::asio::any_io_executor executor, Hooks hooks,
               std::chrono::milliseconds deadline);
  LegacyImport(const LegacyImport&) = delete;
  LegacyImport& operator=(const LegacyImport&) = delete;
  ~LegacyImport() { Stop(); }

  void Start();
  // Idempotent; waits for a page in flight (bounded by the deadline).
  void Stop();

  // Why the cluster cannot answer completely yet, while it cannot.
  std::optional<std::string> Pending() const;

 private:
  enum class Phase { kAsking, kImporting, kDone };
  struct Progress {
    Phase phase = Phase::kAsking;
    uint64_t keys_done = 0, keys_total = 0, rows_done = 0, rows_total = 0;
  };

  boost::asio::awaitable<void> Run();
  // One round: every member not done yet; true when none holds the cluster up.
  boost::asio::awaitable<bool> Round();
  boost::asio::awaitable<Status> ImportFrom(uint64_t worker);
  boost::asio::awaitable<Result<bool>> ImportKeys(uint64_t worker);
  // `count_only`: only learn how many rows there are (the keys could not be imported yet).
  boost::asio::awaitable<Result<bool>> ImportRows(uint64_t worker, bool count_only = false);
  // Writes every (shard, part) at once; the first failure, if any. `conflict_ok`: a shard that
  // holds the key with another fingerprint already knows it (a key, not a page, imported).
  boost::asio::awaitable<Status> WriteAll(
      std::vector<std::pair<uint32_t, internal::v1::SubBatch>> parts, bool conflict_ok);
  void Note(uint64_t worker, const std::function<void(Progress&)>& change);
  // Records `worker` as settled in the file; false (logged) if it could not be written.
  bool Settle(uint64_t worker) REQUIRES(mu_);

  boost::asio::strand<boost::asio::any_io_executor> strand_;
  const Hooks hooks_;
  const std::chrono::milliseconds deadline_;
  boost::asio::steady_timer timer_;  // on strand_

  mutable Mutex mu_;
  std::condition_variable stopped_;
  std::set<uint64_t> settled_ GUARDED_BY(mu_);             // as in the file
  std::map<uint64_t, Progress> progress_ GUARDED_BY(mu_);  // members not settled
  std::string failure_ GUARDED_BY(mu_);      // the last round's failure, for Pending()
  bool first_round_ GUARDED_BY(mu_) = true;  // no round has looked at the members yet
  bool running_ GUARDED_BY(mu_) = false;
  bool stopping_ GUARDED_BY(mu_) = false;
};

// Sets hooks.keys, rows and done to call each member through its client (`client_of`; null: the
// member left) with `timeout`.
void CallWorkers(LegacyImport::Hooks& hooks,
                 std::function<std::shared_ptr<rpc::WorkerClient>(uint64_t)> client_of,
                 std::chrono::milliseconds timeout);

}  // namespace das::control
