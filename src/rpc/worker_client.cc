#include "rpc/worker_client.h"

#include <utility>

#include "http/client.h"
#include "rpc/routes.h"
#include "rpc/shard_write_queue.h"
#include "rpc/status_wire.h"

namespace das::rpc {
namespace {

namespace asio = boost::asio;
using Ms = std::chrono::milliseconds;

http::Request Get(const char* path) {
  http::Request request;
  request.method = "GET";
  request.target = path;
  request.accept = std::string(kProtobufType);
  return request;
}

http::Request Post(const char* path) {
  http::Request request = Get(path);
  request.method = "POST";
  request.content_type = std::string(kProtobufType);
  request.has_content_type = true;
  return request;
}

// One exchange with the worker: signed (with a key), sent, its answer decoded or its failure.
template <typename Message>
asio::awaitable<Result<Message>> Call(http::Client& http, const ClusterKey* key,
                                      http::Request request, Ms timeout) {
  if (key != nullptr) key->SignInPlace(request, std::chrono::system_clock::now());
  asio::awaitable<Result<http::Response>> send = http.Send(std::move(request), timeout);
  Result<http::Response> answer = co_await std::move(send);
  if (!answer.ok()) co_return std::move(answer).status();
  if (answer->status != 200) co_return StatusFromResponse(*answer, http.peer());
  Message message;
  if (!message.ParseFromString(answer->body)) {
    co_return Internal(http.peer() + " sent an undecodable " + message.GetTypeName());
  }
  co_return message;
}

class WorkerClientImpl final : public WorkerClient {
 public:
  WorkerClientImpl(asio::any_io_executor executor, const WorkerClientOptions& options)
      : http_(http::Client::Create(
            executor, http::ClientOptions{options.host, options.port, options.max_connections})),
        cluster_key_(options.cluster_key),
        shard_writes_(MakeShardWriteQueue(
            std::move(executor),
            [http = http_, key = cluster_key_](std::string body, Ms timeout) {
              http::Request request = Post(kShardWritesPath);
              request.body = std::move(body);
              return rpc::Call<internal::v1::ShardWritesResponse>(*http, key.get(),
                                                                  std::move(request), timeout);
            },
            ShardWriteQueueOptions{http_->peer(), options.shard_writes_in_flight})) {}

  const std::string& peer() const override { return http_->peer(); }

  asio::awaitable<Result<internal::v1::WriteResponse>> Write(
      const internal::v1::WriteRequest& request, std::chrono::milliseconds timeout) override {
    asio::awaitable<Result<internal::v1::WriteResponse>> call =
        PostMessage<internal::v1::WriteResponse>(kWritePath, request, timeout);
    co_return co_await std::move(call);
  }

  asio::awaitable<Result<internal::v1::WriteResponse>> WriteShard(
      const internal::v1::WriteRequest& request, std::chrono::milliseconds timeout) override {
    asio::awaitable<Result<internal::v1::WriteResponse>> call =
        shard_writes_->Write(request, timeout);
    co_return co_await std::move(call);
  }

  asio::awaitable<Result<internal::v1::WorkerHealthResponse>> Health(
      std::chrono::milliseconds timeout) override {
    asio::awaitable<Result<internal::v1::WorkerHealthResponse>> call =
        Call<internal::v1::WorkerHealthResponse>(Get(kHealthPath), timeout);
    co_return co_await std::move(call);
  }

  asio::awaitable<Result<internal::v1::ClockResponse>> Clock(
      std::chrono::milliseconds timeout) override {
    asio::awaitable<Result<internal::v1::ClockResponse>> call =
        Call<internal::v1::ClockResponse>(Get(kClockPath), timeout);
    co_return co_await std::move(call);
  }

  asio::awaitable<Result<internal::v1::TopologyResponse>> Topology(
      const internal::v1::TopologyRequest& request, std::chrono::milliseconds timeout) override {
    asio::awaitable<Result<internal::v1::TopologyResponse>> call =
        PostMessage<internal::v1::TopologyResponse>(kTopologyPath, request, timeout);
    co_return co_await std::move(call);
  }

  asio::awaitable<Result<internal::v1::ShardQueryResponse>> Query(
      const internal::v1::ShardQuery& query, std::chrono::milliseconds timeout) override {
    asio::awaitable<Result<internal::v1::ShardQueryResponse>> call =
        PostMessage<internal::v1::ShardQueryResponse>(kQueryPath, query, timeout);
    co_return co_await std::move(call);
  }

  asio::awaitable<Result<internal::v1::TransferResponse>> Transfer(
      uint32_t shard, uint64_t to, std::chrono::milliseconds timeout) override {
    internal::v1::TransferRequest request;
    request.set_shard(shard);
    request.set_to(to);
    asio::awaitable<Result<internal::v1::TransferResponse>> call =
        PostMessage<internal::v1::TransferResponse>(kTransferPath, request, timeout);
    co_return co_await std::move(call);
  }

  asio::awaitable<Result<internal::v1::JoinResponse>> Join(
      const internal::v1::JoinRequest& request, std::chrono::milliseconds timeout) override {
    asio::awaitable<Result<internal::v1::JoinResponse>> call =
        PostMessage<internal::v1::JoinResponse>(kJoinPath, request, timeout);
    co_return co_await std::move(call);
  }

  asio::awaitable<Result<internal::v1::MembershipResponse>> Membership(
      const internal::v1::MembershipRequest& request, std::chrono::milliseconds timeout) override {
    asio::awaitable<Result<internal::v1::MembershipResponse>> call =
        PostMessage<internal::v1::MembershipResponse>(kMembershipPath, request, timeout);
    co_return co_await std::move(call);
  }

  asio::awaitable<Result<internal::v1::CopyResponse>> StartCopy(
      uint32_t shard, uint64_t min_index, std::chrono::milliseconds timeout) override {
    internal::v1::CopyRequest request;
    request.set_shard(shard);
    request.set_min_index(min_index);
    asio::awaitable<Result<internal::v1::CopyResponse>> call =
        PostMessage<internal::v1::CopyResponse>(kCopyPath, request, timeout);
    co_return co_await std::move(call);
  }

  asio::awaitable<Result<internal::v1::CopyChunkResponse>> CopyChunk(
      uint32_t shard, uint64_t copy_id, uint64_t offset,
      std::chrono::milliseconds timeout) override {
    internal::v1::CopyChunkRequest request;
    request.set_shard(shard);
    request.set_copy_id(copy_id);
    request.set_offset(offset);
    asio::awaitable<Result<internal::v1::CopyChunkResponse>> call =
        PostMessage<internal::v1::CopyChunkResponse>(kCopyChunkPath, request, timeout);
    co_return co_await std::move(call);
  }

  asio::awaitable<Result<internal::v1::LegacyRowsResponse>> LegacyRows(
      const internal::v1::LegacyPageRequest& request, std::chrono::milliseconds timeout) override {
    asio::awaitable<Result<internal::v1::LegacyRowsResponse>> call =
        PostMessage<internal::v1::LegacyRowsResponse>(kLegacyRowsPath, request, timeout);
    co_return co_await std::move(call);
  }

  asio::awaitable<Result<internal::v1::LegacyKeysResponse>> LegacyKeys(
      const internal::v1::LegacyPageRequest& request, std::chrono::milliseconds timeout) override {
    asio::awaitable<Result<internal::v1::LegacyKeysResponse>> call =
        PostMessage<internal::v1::LegacyKeysResponse>(kLegacyKeysPath, request, timeout);
    co_return co_await std::move(call);
  }

  asio::awaitable<Result<internal::v1::LegacyDoneResponse>> LegacyDone(
      std::chrono::milliseconds timeout) override {
    const internal::v1::LegacyDoneRequest request;  // outlives the call, in this frame
    asio::awaitable<Result<internal::v1::LegacyDoneResponse>> call =
        PostMessage<internal::v1::LegacyDoneResponse>(kLegacyDonePath, request, timeout);
    co_return co_await std::move(call);
  }

  void Close() override { http_->Close(); }

 private:
  template <typename Answer>
  asio::awaitable<Result<Answer>> PostMessage(const char* path,
                                              const google::protobuf::MessageLite& body,
                                              std::chrono::milliseconds timeout) {
    http::Request http_request = Post(path);
    body.SerializeToString(&http_request.body);
    asio::awaitable<Result<Answer>> call = Call<Answer>(std::move(http_request), timeout);
    co_return co_await std::move(call);
  }

  template <typename Message>
  asio::awaitable<Result<Message>> Call(http::Request request, std::chrono::milliseconds timeout) {
    return rpc::Call<Message>(*http_, cluster_key_.get(), std::move(request), timeout);
  }

  const std::shared_ptr<http::Client> http_;
  const std::shared_ptr<const ClusterKey> cluster_key_;
  const std::shared_ptr<ShardWriteQueue> shard_writes_;
};

}  // namespace

std::unique_ptr<WorkerClient> WorkerClient::Create(asio::any_io_executor executor,
                                                   WorkerClientOptions options) {
  return std::make_unique<WorkerClientImpl>(std::move(executor), options);
}

}  // namespace das::rpc
