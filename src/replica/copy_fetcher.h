// CopyFetcher: brings a copy of another worker's replica of a shard onto this worker, for a
// replica that is behind its leader's log (docs/architecture.md: it catches up from a data
// replica's data, out of band). It asks that worker for a copy (POST /internal/v1/shard/copy),
// reads it in chunks (POST /internal/v1/shard/copy/chunk, 4 MiB each) into a temporary file,
// checks its size and checksum, fsyncs it and renames it to its final name. Every fetch of
// the worker shares one rate limit (bytes/s): a copy, even several at once, leaves the disk
// and the network to the inserts.
// Thread-safety: Fetch may be called from any thread but the io_context's, concurrently: it
// blocks until the copy is in, it failed, or `stopping` turned true.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"
#include "rpc/cluster_auth.h"

namespace boost::asio {
class io_context;
}

namespace das::replica {

class CopyFetcher {
 public:
  // `io` (not owned) runs the HTTP exchanges and outlives the fetcher's use. `cluster_key`
  // signs them (null: no cluster secret). `bytes_per_s`: the rate limit of all fetches
  // together (0: none).
  static std::unique_ptr<CopyFetcher> Create(
      boost::asio::io_context& io, std::shared_ptr<const rpc::ClusterKey> cluster_key = {},
      uint64_t bytes_per_s = 0);
  virtual ~CopyFetcher() = default;
  CopyFetcher(const CopyFetcher&) = delete;
  CopyFetcher& operator=(const CopyFetcher&) = delete;

  // Fetches the replica of `shard` held by the worker at `http_address` ("host:port") at an
  // applied index of at least `min_index` into `path` (durable once this returns). Its applied
  // index, or why not: kUnavailable when that worker is unreachable, behind or sent a torn
  // copy; kShuttingDown once `stopping`. Adds every byte received to `received` as it comes.
  virtual Result<uint64_t> Fetch(const std::string& http_address, uint32_t shard,
                                 uint64_t min_index, const std::string& path,
                                 const std::atomic<bool>& stopping,
                                 std::atomic<uint64_t>& received) = 0;

 protected:
  CopyFetcher() = default;
};

}  // namespace das::replica
