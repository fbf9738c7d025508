#include "control/move_executor.h"

#include <chrono>
#include <utility>

#include <spdlog/spdlog.h>

#include "rpc/topology.h"

namespace das::control {
namespace {

namespace asio = boost::asio;
using internal::v1::ReplicaMove;

// Moves carried on in one tick at most (each step that advanced may be followed at once).
constexpr int kStepsPerTick = 16;
// Standby and voter wait for libraft's catch-up rounds: given long, and repeated if need be (a
// step already done answers OK).
constexpr auto kMembershipDeadline = std::chrono::seconds(60);
constexpr std::chrono::milliseconds kTransferDeadline{2000};

}  // namespace

asio::awaitable<void> MoveExecutor::Rebalance(const std::vector<cluster::ShardView>& views) {
  // An election or a dead leader is waited out.
  for (const cluster::ShardView& view : views) {
    if (view.leader == 0 || view.leader == rpc::kWitnessNodeId) co_return;
  }
  for (int steps = 0; steps < kStepsPerTick; ++steps) {
    if (parts_.stopping.load(std::memory_order_acquire)) co_return;
    if (!parts_.record.CurrentOrNextMove()) co_return;
    asio::awaitable<bool> step = Step(views);
    if (!co_await std::move(step)) co_return;
    // A step that finished a move cleared it; the next is planned from the map as it is then,
    // at the next tick: these views are from this tick's start.
    if (!parts_.record.MovingShard()) co_return;
  }
}

// The state machine (cluster/move_stages.h) says what the step needs, this does the I/O, and
// once that succeeded the record keeps the machine's change.
asio::awaitable<bool> MoveExecutor::Step(const std::vector<cluster::ShardView>& views) {
  const ClusterRecord::PlannedStep planned = parts_.record.PlanStep(views);
  if (planned.move.kind() == ReplicaMove::NONE || planned.move.shard() >= views.size()) {
    co_return false;
  }
  if (planned.step.hold_epoch != 0) {
    asio::awaitable<bool> holds = HoldsItsEpoch(planned.step.hold_epoch);
    if (!co_await std::move(holds)) co_return false;
  }
  asio::awaitable<bool> done = CarryOut(planned, views[planned.move.shard()]);
  if (!co_await std::move(done)) co_return false;
  const ClusterRecord::KeptStep kept = parts_.record.KeepStep(planned);
  if (kept.preferred) parts_.balancer.HandBackNow(planned.move.shard());
  co_return kept.advanced;
}

asio::awaitable<bool> MoveExecutor::CarryOut(const ClusterRecord::PlannedStep& planned,
                                             const cluster::ShardView& view) {
  const cluster::MoveStep& step = planned.step;
  if (step.io == cluster::MoveIo::kMembership) {
    asio::awaitable<bool> done = AtLeader(view, step.membership);
    co_return co_await std::move(done);
  }
  if (step.io == cluster::MoveIo::kTransfer) {
    const uint32_t shard = planned.move.shard();
    std::shared_ptr<rpc::WorkerClient> client = parts_.directory.Client(planned.move.from());
    if (!client) co_return false;
    asio::awaitable<Result<internal::v1::TransferResponse>> call =
        client->Transfer(shard, step.transfer_to, kTransferDeadline);
    Result<internal::v1::TransferResponse> moved = co_await std::move(call);
    // A transfer that failed is no failure of the step: the next tick's health shows whether
    // the leadership moved.
    if (moved.ok()) parts_.leaders.at(shard)->NoteLeader(step.transfer_to);
  }
  co_return true;
}

asio::awaitable<bool> MoveExecutor::AtLeader(const cluster::ShardView& view,
                                             internal::v1::MembershipRequest request) {
  if (view.leader == 0 || view.leader == rpc::kWitnessNodeId) co_return false;
  std::shared_ptr<rpc::WorkerClient> client = parts_.directory.Client(view.leader);
  if (!client) co_return false;
  asio::awaitable<Result<internal::v1::MembershipResponse>> call =
      client->Membership(request, kMembershipDeadline);
  Result<internal::v1::MembershipResponse> done = co_await std::move(call);
  if (!done.ok()) {
    spdlog::info("shard {}: membership step {} of {} not done yet: {}", request.shard(),
                 static_cast<int>(request.op()), rpc::NodeName(request.node_id()),
                 done.status().ToString());
    co_return false;
  }
  co_return true;
}

asio::awaitable<bool> MoveExecutor::HoldsItsEpoch(uint64_t to) {
  if (to == rpc::kWitnessNodeId) co_return parts_.witness.Keep(parts_.record.topology());
  asio::awaitable<Result<internal::v1::TopologyResponse>> push = parts_.pusher.PushTo(to);
  Result<internal::v1::TopologyResponse> pushed = co_await std::move(push);
  co_return pushed.ok();
}

}  // namespace das::control
