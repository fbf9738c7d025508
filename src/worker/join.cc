#include "worker/join.h"

#include <optional>
#include <thread>

#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include "das/v1/internal.pb.h"
#include "rpc/routes.h"
#include "rpc/worker_client.h"

namespace das::worker {

namespace asio = boost::asio;

Result<uint64_t> JoinCluster(const JoinOptions& options) {
  const size_t colon = options.control.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == options.control.size()) {
    return InvalidArgument("--join " + options.control + " is not host:port");
  }
  char* end = nullptr;
  const unsigned long port = std::strtoul(options.control.c_str() + colon + 1, &end, 10);
  if (*end != '\0' || port == 0 || port > 65535) {
    return InvalidArgument("--join " + options.control + " has no valid port");
  }
  asio::io_context io(1);
  std::unique_ptr<rpc::WorkerClient> client = rpc::WorkerClient::Create(
      io.get_executor(),
      rpc::WorkerClientOptions{options.control.substr(0, colon), static_cast<uint16_t>(port), 1,
                               options.cluster_key});
  internal::v1::JoinRequest request;
  request.set_node_id(options.node_id);
  request.set_http_address(options.http_address);
  request.set_raft_port(options.raft_port);
  for (int attempt = 1;; ++attempt) {
    std::optional<Result<internal::v1::JoinResponse>> answer;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          asio::awaitable<Result<internal::v1::JoinResponse>> call =
              client->Join(request, std::chrono::seconds(5));
          answer.emplace(co_await std::move(call));
        },
        asio::detached);
    io.restart();
    io.run();
    if (!answer) return Internal("the join did not complete");
    Result<internal::v1::JoinResponse> joined = std::move(*answer);
    if (joined.ok()) {
      client->Close();
      spdlog::info("joined the cluster at {} as worker {}", options.control, joined->node_id());
      return joined->node_id();
    }
    if (joined.status().code() == StatusCode::kNotFound &&
        joined.status().detail() == rpc::kDepartedDetail) {
      return Status(StatusCode::kNotFound,
                    "the control node at " + options.control +
                        " refused the join: " + joined.status().message(),
                    rpc::kDepartedDetail);
    }
    if (joined.status().code() == StatusCode::kInvalidArgument ||
        joined.status().code() == StatusCode::kMalformed) {
      return InvalidArgument("the control node at " + options.control +
                             " refused the join: " + joined.status().message());
    }
    if (options.attempts != 0 && attempt >= options.attempts) return joined.status();
    if (attempt == 1 || attempt % 30 == 0) {
      spdlog::info("waiting for the control node at {} to take the join: {}", options.control,
                   joined.status().ToString());
    }
    std::this_thread::sleep_for(options.retry_every);
  }
}

}  // namespace das::worker
