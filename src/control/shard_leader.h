// ShardLeader: the way to one replicated shard's leader (docs/architecture.md). It remembers
// the leader it last found, follows NOT_LEADER hints (a worker's node id), and when a replica
// cannot be reached tries the next data replica, until the call's deadline. A hint that names
// the witness (which never serves) is waited out: the balancer hands leadership to a data
// replica. Every retry of a write carries the same request id, so a write that reached a leader
// before a failure is answered from the shard's request window, never stored twice.
// Thread-safety: every method may be called from any thread and coroutine concurrently.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "common/mutex.h"
#include "common/status.h"
#include "control/worker_directory.h"
#include "das/v1/internal.pb.h"
#include "rpc/worker_client.h"
#include "rpc/write_target.h"

namespace das::control {

// What follows a failed attempt at one replica: ShardLeader's retry rule, pure.
struct AfterFailure {
  enum class Action {
    kReturn,  // answer the failure as it is: no other replica would do better
    kGiveUp,  // stop before the deadline: the shard's only replica cannot be reached
    kRetry,   // ask `next` (after a pause: an election runs, or the witness leads)
  };
  Action action = Action::kRetry;
  uint64_t next = 0;
  bool pause = false;
  bool target_failed = false;  // the replica tried counts as not answering (responding_nodes)
};
// After `failure` from replica `target` of the shard's data `replicas` (not empty): a
// NOT_LEADER that names another replica (its detail, a node id) is followed at once; one
// without a usable hint means an election or the witness: the next replica, after a pause;
// unreachable, timed out or shutting down: the next replica after a pause, or, with one
// replica, give up; any other code is the answer.
AfterFailure DecideAfterFailure(const Status& failure, uint64_t target,
                                const std::vector<uint64_t>& replicas);

class ShardLeader final : public rpc::WriteTarget {
 public:
  // `replicas`: the shard's data replicas, the preferred leader first (empty: the cluster is
  // not formed yet); `workers` (not owned) outlives this object.
  ShardLeader(boost::asio::any_io_executor executor, uint32_t shard, std::vector<uint64_t> replicas,
              const WorkerDirectory& workers);

  const std::string& peer() const override { return name_; }
  uint32_t shard() const { return shard_; }
  std::vector<uint64_t> replicas() const;
  // The data replicas after a membership change (docs/operations.md, "Membership").
  void SetReplicas(std::vector<uint64_t> replicas);

  boost::asio::awaitable<Result<internal::v1::WriteResponse>> Write(
      const internal::v1::WriteRequest& request, std::chrono::milliseconds timeout) override;

  // One round of a query on the shard, at its leader (query.shard and timeout_ms are set
  // here). A scan takes long: each attempt gets half of what is left, not a third (but for one
  // the running aggregate answers), and the worker gives up on an attempt the control node no
  // longer waits for. `failed` gets the nodes tried that did not answer, for responding_nodes.
  struct QueryAnswer {
    Result<internal::v1::ShardQueryResponse> answer = Unavailable("not asked");
    std::vector<uint64_t> failed;
  };
  boost::asio::awaitable<QueryAnswer> Query(internal::v1::ShardQuery query,
                                            std::chrono::milliseconds timeout);

  // The leader last seen (0: unknown).
  uint64_t leader() const { return leader_.load(std::memory_order_relaxed); }
  void NoteLeader(uint64_t node);

 private:
  // Each attempt gets 1/attempt_share of what is left of `timeout` (at least a floor).
  template <typename T, typename Call>
  boost::asio::awaitable<Result<T>> WithLeader(Call call, std::chrono::milliseconds timeout,
                                               std::vector<uint64_t>* failed,
                                               int attempt_share = 3);

  boost::asio::any_io_executor executor_;
  const uint32_t shard_;
  mutable Mutex mu_;
  std::vector<uint64_t> replicas_ GUARDED_BY(mu_);
  const WorkerDirectory& workers_;
  const std::string name_;
  std::atomic<uint64_t> leader_;
};

}  // namespace das::control
