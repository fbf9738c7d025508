#include "control/topology_pusher.h"

#include <chrono>
#include <memory>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

#include "control/gather.h"

namespace das::control {

namespace asio = boost::asio;
using internal::v1::TopologyResponse;

// A worker opens (or closes) its replicas before it answers: given time.
constexpr auto kPushDeadline = std::chrono::seconds(10);

asio::awaitable<void> TopologyPusher::PushAll(const cluster::HealthMap& health) {
  std::vector<asio::awaitable<Result<TopologyResponse>>> calls;
  for (const auto& [id, answer] : health) {
    if (!record_.NeedsTopology(id, answer)) continue;
    calls.push_back(PushTo(id));
  }
  asio::awaitable<std::vector<Result<TopologyResponse>>> gather =
      GatherAll<TopologyResponse>(executor_, std::move(calls));
  co_await std::move(gather);
}

asio::awaitable<Result<TopologyResponse>> TopologyPusher::PushTo(uint64_t id) {
  internal::v1::TopologyRequest request;
  *request.mutable_topology() = record_.topology();
  request.set_node_id(id);
  std::shared_ptr<rpc::WorkerClient> client = directory_.Client(id);
  if (!client) co_return NotFound("worker " + std::to_string(id) + " is no member");
  asio::awaitable<Result<TopologyResponse>> call = client->Topology(request, kPushDeadline);
  Result<TopologyResponse> answer = co_await std::move(call);
  if (!answer.ok()) {
    spdlog::warn("worker {} did not take the topology of epoch {}: {}", id,
                 request.topology().epoch(), answer.status().ToString());
    co_return answer;
  }
  record_.NoteAdopted(id, request.topology().epoch());
  co_return answer;
}

}  // namespace das::control
