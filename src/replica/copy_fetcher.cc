#include "replica/copy_fetcher.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include "common/durable_file.h"
#include "common/mutex.h"
#include "common/rate_pacer.h"
#include "rpc/worker_client.h"

namespace das::replica {
namespace {

namespace asio = boost::asio;

// An export of a large shard takes a while; a chunk is 4 MiB.
constexpr std::chrono::seconds kStartTimeout{300};
constexpr std::chrono::seconds kChunkTimeout{60};
constexpr std::chrono::milliseconds kStopPoll{100};

Status WriteAll(int fd, const std::string& data, const std::string& path) {
  size_t written = 0;
  while (written < data.size()) {
    const ssize_t n = ::write(fd, data.data() + written, data.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Unavailable("cannot write " + path + ": " + std::strerror(errno));
    written += static_cast<size_t>(n);
  }
  return Status::Ok();
}

class CopyFetcherImpl final : public CopyFetcher {
 public:
  CopyFetcherImpl(asio::io_context& io, std::shared_ptr<const rpc::ClusterKey> cluster_key,
                  uint64_t bytes_per_s)
      : io_(io), cluster_key_(std::move(cluster_key)), pacer_(bytes_per_s) {}

  Result<uint64_t> Fetch(const std::string& http_address, uint32_t shard, uint64_t min_index,
                         const std::string& path, const std::atomic<bool>& stopping,
                         std::atomic<uint64_t>& received) override {
    ASSIGN_OR_RETURN(std::shared_ptr<rpc::WorkerClient> client, ClientFor(http_address));
    ASSIGN_OR_RETURN(internal::v1::CopyResponse copy, Run<internal::v1::CopyResponse>(
                                                          [client, shard, min_index] {
                                                            return client->StartCopy(
                                                                shard, min_index, kStartTimeout);
                                                          },
                                                          stopping));
    if (copy.applied_index() < min_index) {
      return Unavailable(http_address + " made a copy up to entry " +
                         std::to_string(copy.applied_index()) + ", not " +
                         std::to_string(min_index));
    }
    const std::string part = path + ".part";
    const int fd = ::open(part.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return Unavailable("cannot create " + part + ": " + std::strerror(errno));
    Status got = Receive(client, shard, copy, fd, part, stopping, received);
    ::close(fd);
    if (got.ok()) got = Verify(part, copy);
    if (got.ok()) got = RenameDurably(part, path);
    if (!got.ok()) {
      std::error_code error;
      std::filesystem::remove(part, error);
      return got;
    }
    spdlog::info("shard {}: fetched a copy at entry {} ({} bytes) from {}", shard,
                 copy.applied_index(), copy.size_bytes(), http_address);
    return copy.applied_index();
  }

 private:
  Result<std::shared_ptr<rpc::WorkerClient>> ClientFor(const std::string& address) {
    MutexLock lock(mu_);
    auto it = clients_.find(address);
    if (it != clients_.end()) return it->second;
    const size_t colon = address.rfind(':');
    unsigned long port = 0;
    if (colon != std::string::npos) port = std::strtoul(address.c_str() + colon + 1, nullptr, 10);
    if (colon == std::string::npos || port == 0 || port > 65535) {
      return InvalidArgument("not a host:port: " + address);
    }
    std::shared_ptr<rpc::WorkerClient> client = rpc::WorkerClient::Create(
        io_.get_executor(), rpc::WorkerClientOptions{address.substr(0, colon),
                                                     static_cast<uint16_t>(port), 2, cluster_key_});
    clients_.emplace(address, client);
    return client;
  }

  Status Receive(const std::shared_ptr<rpc::WorkerClient>& client, uint32_t shard,
                 const internal::v1::CopyResponse& copy, int fd, const std::string& part,
                 const std::atomic<bool>& stopping, std::atomic<uint64_t>& received) {
    uint64_t offset = 0;
    while (offset < copy.size_bytes()) {
      const auto asked = std::chrono::steady_clock::now();
      ASSIGN_OR_RETURN(internal::v1::CopyChunkResponse chunk,
                       Run<internal::v1::CopyChunkResponse>(
                           [client, shard, id = copy.copy_id(), offset] {
                             return client->CopyChunk(shard, id, offset, kChunkTimeout);
                           },
                           stopping));
      if (chunk.data().empty() || offset + chunk.data().size() > copy.size_bytes()) {
        return Unavailable("the copy's chunk at offset " + std::to_string(offset) + " has " +
                           std::to_string(chunk.data().size()) + " bytes of a " +
                           std::to_string(copy.size_bytes()) + "-byte copy");
      }
      RETURN_IF_ERROR(WriteAll(fd, chunk.data(), part));
      offset += chunk.data().size();
      received.fetch_add(chunk.data().size(), std::memory_order_relaxed);
      RETURN_IF_ERROR(Pace(asked, chunk.data().size(), stopping));
    }
    return Status::Ok();
  }

  // The rate limit (every fetch of this worker shares the pacer): waits until the `bytes` asked
  // for at `asked` are paid for.
  Status Pace(std::chrono::steady_clock::time_point asked, size_t bytes,
              const std::atomic<bool>& stopping) {
    const std::chrono::steady_clock::time_point due = pacer_.Due(asked, bytes);
    while (std::chrono::steady_clock::now() < due) {
      if (stopping.load(std::memory_order_acquire)) {
        return ShuttingDown("stopped while fetching a copy");
      }
      std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
          due - std::chrono::steady_clock::now(), kStopPoll));
    }
    return Status::Ok();
  }

  static Status Verify(const std::string& part, const internal::v1::CopyResponse& copy) {
    ASSIGN_OR_RETURN(uint64_t checksum, HashFile(part));
    if (checksum != copy.checksum()) {
      return Unavailable("the copy's checksum does not match; it was torn on the way");
    }
    return Status::Ok();
  }

  // Runs `call` (an awaitable of Result<T>) on the io_context and waits for it, or for
  // `stopping`. The coroutine keeps what it uses (shared), so it may end after we gave up.
  template <typename T, typename Call>
  Result<T> Run(Call call, const std::atomic<bool>& stopping) {
    struct State {
      Mutex mu;
      std::condition_variable done;
      std::optional<Result<T>> result GUARDED_BY(mu);
    };
    auto state = std::make_shared<State>();
    asio::co_spawn(
        io_,
        [state, call = std::move(call)]() mutable -> asio::awaitable<void> {
          asio::awaitable<Result<T>> op = call();
          Result<T> result = co_await std::move(op);
          {
            MutexLock lock(state->mu);
            state->result.emplace(std::move(result));
          }
          state->done.notify_all();
        },
        asio::detached);
    UniqueLock lock(state->mu);
    while (!state->result) {
      if (stopping.load(std::memory_order_acquire)) {
        return ShuttingDown("stopped while fetching a copy");
      }
      state->done.wait_for(lock.native(), kStopPoll);
    }
    return std::move(*state->result);
  }

  asio::io_context& io_;
  const std::shared_ptr<const rpc::ClusterKey> cluster_key_;
  RatePacer pacer_;
  Mutex mu_;
  std::map<std::string, std::shared_ptr<rpc::WorkerClient>> clients_ GUARDED_BY(mu_);
};

}  // namespace

std::unique_ptr<CopyFetcher> CopyFetcher::Create(asio::io_context& io,
                                                 std::shared_ptr<const rpc::ClusterKey> cluster_key,
                                                 uint64_t bytes_per_s) {
  return std::make_unique<CopyFetcherImpl>(io, std::move(cluster_key), bytes_per_s);
}

}  // namespace das::replica
