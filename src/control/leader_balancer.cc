#include "control/leader_balancer.h"

#include <utility>

#include <spdlog/spdlog.h>

#include "cluster/leader_balance.h"
#include "control/gather.h"
#include "rpc/topology.h"

namespace das::control {
namespace {

namespace asio = boost::asio;
using internal::v1::TransferResponse;
using Ms = std::chrono::milliseconds;

// A leader is asked to hand a shard back to its preferred worker at most this often.
constexpr auto kTransferBackoff = std::chrono::seconds(5);
constexpr Ms kTransferDeadline{2000};

asio::awaitable<Result<TransferResponse>> Transfer(std::shared_ptr<rpc::WorkerClient> client,
                                                   uint32_t shard, uint64_t to) {
  asio::awaitable<Result<TransferResponse>> call = client->Transfer(shard, to, kTransferDeadline);
  co_return co_await std::move(call);
}

}  // namespace

asio::awaitable<void> LeaderBalancer::Balance(const std::vector<cluster::ShardView>& views,
                                              std::optional<uint32_t> moving) {
  const auto now = std::chrono::steady_clock::now();
  std::vector<std::pair<uint32_t, uint64_t>> moves;  // (shard, to)
  std::vector<asio::awaitable<Result<TransferResponse>>> calls;
  for (uint32_t s = 0; s < views.size() && s < leaders_.size(); ++s) {
    if (stopping_.load(std::memory_order_acquire)) co_return;
    const cluster::ShardView& view = views[s];
    if (view.leader == 0) continue;
    ShardLeader& shard = *leaders_[s];
    shard.NoteLeader(view.leader);
    if (moving == s) continue;
    const std::optional<uint64_t> target = cluster::LeaderTarget(view, shard.replicas());
    if (!target || now - last_transfer_[s] < kTransferBackoff) continue;
    std::shared_ptr<rpc::WorkerClient> client = directory_.Client(view.leader);
    if (!client) continue;
    last_transfer_[s] = now;
    moves.emplace_back(s, *target);
    calls.push_back(Transfer(std::move(client), s, *target));
  }
  // All at once, so that a tick lasts one transfer at most, not one per shard.
  asio::awaitable<std::vector<Result<TransferResponse>>> gather =
      GatherAll<TransferResponse>(executor_, std::move(calls));
  std::vector<Result<TransferResponse>> moved = co_await std::move(gather);
  for (size_t i = 0; i < moved.size(); ++i) {
    const auto [shard, to] = moves[i];
    if (moved[i].ok()) {
      spdlog::info("shard {}: leadership handed to {}", shard, rpc::NodeName(to));
      leaders_[shard]->NoteLeader(to);
    } else {
      spdlog::debug("shard {}: transfer to {} failed: {}", shard, to, moved[i].status().ToString());
    }
  }
}

}  // namespace das::control
