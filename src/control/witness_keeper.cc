#include "control/witness_keeper.h"

#include <utility>

#include <spdlog/spdlog.h>

#include "http/await.h"
#include "rpc/topology.h"

namespace das::control {

namespace asio = boost::asio;
using internal::v1::ReplicaHealth;

bool WitnessKeeper::Keep(const internal::v1::Topology& topology) {
  if (rpc::FindNode(topology, rpc::kWitnessNodeId) == nullptr) return epoch_ >= topology.epoch();
  if (witness_ && epoch_ == topology.epoch()) return true;
  if (witness_) {
    if (Status adopted = witness_->Adopt(topology); !adopted.ok()) {
      spdlog::error("the witness cannot take epoch {}: {}", topology.epoch(), adopted.ToString());
      return epoch_ >= topology.epoch();
    }
    epoch_ = topology.epoch();
    return true;
  }
  Result<std::unique_ptr<Witness>> witness = Witness::Open(options_, topology);
  if (!witness.ok()) {
    spdlog::error("cannot open the witness: {}", witness.status().ToString());
    return false;
  }
  witness_ = std::move(witness).value();
  epoch_ = topology.epoch();
  view_.store(witness_.get(), std::memory_order_release);
  return true;
}

asio::awaitable<std::vector<ReplicaHealth>> WitnessKeeper::Health() {
  Witness* witness = view_.load(std::memory_order_acquire);
  if (witness == nullptr) co_return std::vector<ReplicaHealth>{};
  auto start = [witness](auto done) { witness->Health(std::move(done)); };
  asio::awaitable<std::vector<ReplicaHealth>> op =
      http::AwaitCallback<std::vector<ReplicaHealth>>(std::move(start));
  co_return co_await std::move(op);
}

void WitnessKeeper::Close() {
  view_.store(nullptr, std::memory_order_release);
  if (witness_) witness_->Close();
}

}  // namespace das::control
