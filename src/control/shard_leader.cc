#include "control/shard_leader.h"

#include <algorithm>
#include <charconv>

#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "query/plan.h"

namespace das::control {
namespace {

namespace asio = boost::asio;
using Ms = std::chrono::milliseconds;

// One attempt gets at most a share of what is left of the deadline (a third; a query's scan,
// a half) and at least the floor, so a hung leader (SIGSTOP) leaves time to find the new one.
constexpr int kQueryAttemptShare = 2;
constexpr Ms kAttemptFloor{400};
// Pauses between attempts: while an election runs, or while the witness hands leadership on.
constexpr Ms kElectionPause{25};

uint64_t ParseHint(const std::string& detail) {
  uint64_t node = 0;
  auto [end, error] = std::from_chars(detail.data(), detail.data() + detail.size(), node);
  return error == std::errc() && end == detail.data() + detail.size() ? node : 0;
}

// Codes after which another replica may well succeed. (kNotFound is no such route or no such
// replica: a misconfiguration that a retry does not mend.)
bool Retryable(StatusCode code) {
  return code == StatusCode::kNotLeader || code == StatusCode::kUnavailable ||
         code == StatusCode::kDeadlineExceeded || code == StatusCode::kShuttingDown;
}

asio::awaitable<void> Pause(asio::any_io_executor executor, Ms pause) {
  asio::steady_timer timer(executor, pause);
  auto [ignored] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
  (void)ignored;
}

// The replica after `node` in `replicas` (not empty), round; the first for an unknown node.
uint64_t NextAfter(const std::vector<uint64_t>& replicas, uint64_t node) {
  auto it = std::find(replicas.begin(), replicas.end(), node);
  if (it == replicas.end() || ++it == replicas.end()) return replicas.front();
  return *it;
}

}  // namespace

ShardLeader::ShardLeader(asio::any_io_executor executor, uint32_t shard,
                         std::vector<uint64_t> replicas, const WorkerDirectory& workers)
    : executor_(std::move(executor)),
      shard_(shard),
      replicas_(std::move(replicas)),
      workers_(workers),
      name_("shard " + std::to_string(shard)),
      leader_(replicas_.empty() ? 0 : replicas_.front()) {}

std::vector<uint64_t> ShardLeader::replicas() const {
  MutexLock lock(mu_);
  return replicas_;
}

void ShardLeader::SetReplicas(std::vector<uint64_t> replicas) {
  MutexLock lock(mu_);
  replicas_ = std::move(replicas);
}

void ShardLeader::NoteLeader(uint64_t node) {
  MutexLock lock(mu_);
  if (std::find(replicas_.begin(), replicas_.end(), node) != replicas_.end()) {
    leader_.store(node, std::memory_order_relaxed);
  }
}

AfterFailure DecideAfterFailure(const Status& failure, uint64_t target,
                                const std::vector<uint64_t>& replicas) {
  AfterFailure after;
  if (!Retryable(failure.code())) {
    after.action = AfterFailure::Action::kReturn;
    after.target_failed = true;
    return after;
  }
  if (failure.code() == StatusCode::kNotLeader) {
    const uint64_t hint = ParseHint(failure.detail());
    const bool usable = hint != 0 && hint != target &&
                        std::find(replicas.begin(), replicas.end(), hint) != replicas.end();
    after.next = usable ? hint : NextAfter(replicas, target);
    after.pause = !usable;
    return after;
  }
  after.target_failed = true;
  // The shard's only replica (--replication-factor 1) cannot be reached: no election can give
  // it another leader, so its writes and reads fail now, not at the deadline.
  if (replicas.size() == 1 && failure.code() == StatusCode::kUnavailable) {
    after.action = AfterFailure::Action::kGiveUp;
    return after;
  }
  after.next = NextAfter(replicas, target);
  after.pause = true;
  return after;
}

template <typename T, typename Call>
asio::awaitable<Result<T>> ShardLeader::WithLeader(Call call, Ms timeout,
                                                   std::vector<uint64_t>* failed,
                                                   int attempt_share) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::vector<uint64_t> replicas = this->replicas();
  if (replicas.empty())
    co_return Unavailable(name_ + " has no replicas yet: the cluster is forming");
  uint64_t target = leader();
  if (target == 0) target = replicas.front();
  Status last = Unavailable(name_ + ": no replica tried");
  for (;;) {
    const Ms left = std::chrono::duration_cast<Ms>(deadline - std::chrono::steady_clock::now());
    if (left <= Ms(0)) break;
    const Ms attempt = std::min(left, std::max(kAttemptFloor, left / attempt_share));
    // The replicas may have changed (a move); the client is held for the attempt.
    replicas = this->replicas();
    if (replicas.empty()) break;
    std::shared_ptr<rpc::WorkerClient> client = workers_.Client(target);
    if (!client) {
      last = Unavailable("worker " + std::to_string(target) + " is no member");
      target = NextAfter(replicas, target);
      co_await Pause(executor_, kElectionPause);
      continue;
    }
    asio::awaitable<Result<T>> sent = call(*client, attempt);
    Result<T> answer = co_await std::move(sent);
    if (answer.ok()) {
      NoteLeader(target);
      co_return answer;
    }
    last = std::move(answer).status();
    const AfterFailure after = DecideAfterFailure(last, target, replicas);
    if (after.target_failed && failed != nullptr) failed->push_back(target);
    if (after.action == AfterFailure::Action::kReturn) co_return last;
    if (after.action == AfterFailure::Action::kGiveUp) break;
    target = after.next;
    if (after.pause) co_await Pause(executor_, kElectionPause);
  }
  co_return Status(last.code() == StatusCode::kNotLeader ? StatusCode::kUnavailable : last.code(),
                   name_ + " has no reachable leader within " + std::to_string(timeout.count()) +
                       " ms: " + last.ToString());
}

asio::awaitable<Result<internal::v1::WriteResponse>> ShardLeader::Write(
    const internal::v1::WriteRequest& request, Ms timeout) {
  auto call = [&request](rpc::WorkerClient& client, Ms attempt) {
    return client.WriteShard(request, attempt);
  };
  asio::awaitable<Result<internal::v1::WriteResponse>> written =
      WithLeader<internal::v1::WriteResponse>(call, timeout, nullptr);
  co_return co_await std::move(written);
}

asio::awaitable<ShardLeader::QueryAnswer> ShardLeader::Query(internal::v1::ShardQuery query,
                                                             Ms timeout) {
  QueryAnswer outcome;
  query.set_shard(shard_);
  // Each attempt serializes the query (with its own timeout) when it is awaited, before the
  // next attempt changes it.
  auto call = [&query](rpc::WorkerClient& client, Ms attempt) {
    query.set_timeout_ms(static_cast<uint32_t>(attempt.count()));
    return client.Query(query, attempt);
  };
  // One the running aggregate answers (/analytics) is quick: a third, as any other call.
  const int share = query::RunningAggregateAnswers(query) ? 3 : kQueryAttemptShare;
  asio::awaitable<Result<internal::v1::ShardQueryResponse>> asked =
      WithLeader<internal::v1::ShardQueryResponse>(call, timeout, &outcome.failed, share);
  outcome.answer = co_await std::move(asked);
  co_return outcome;
}

}  // namespace das::control
