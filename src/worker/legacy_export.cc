#include "worker/legacy_export.h"

#include <algorithm>
#include <filesystem>
#include <optional>
#include <utility>

#include <spdlog/spdlog.h>

#include "common/durable_file.h"
#include "das/v1/internal.pb.h"
#include "http/await.h"
#include "rpc/routes.h"
#include "rpc/status_wire.h"
#include "storage/replica_pages.h"

namespace das::worker {

namespace asio = boost::asio;

namespace {

// A page's bounds: the control node writes each page as one sub-batch per shard.
constexpr uint32_t kMaxRows = 65536;
constexpr uint32_t kMaxKeys = 8192;
constexpr size_t kMaxPageBytes = 4 << 20;

std::string MarkerPath(const std::string& data_dir) {
  return (std::filesystem::path(data_dir) / "legacy-imported").string();
}

// Runs `read` on one of the store's reader connections and awaits its result.
template <typename T, typename Read>
asio::awaitable<Result<T>> OnReader(storage::Store& store, Read read) {
  auto start = [&store, read = std::move(read)](auto done) mutable {
    store.RunOnReader(
        [read = std::move(read), done = std::move(done)](Result<_duckdb_connection*> conn) mutable {
          if (!conn.ok()) return done(Result<T>(std::move(conn).status()));
          done(read(*conn));
        });
  };
  return http::AwaitCallback<Result<T>>(std::move(start));
}

// A page request answered: empty and done once imported (or with no store), `waiting` while the
// worker holds no topology, else read(conn, from, limit) on one of the store's readers, its items
// added by `fill`.
template <typename Response, typename Page, typename Read, typename Fill>
asio::awaitable<http::Response> ServePage(http::Request request, storage::Store* store,
                                          bool replicated, bool imported, uint32_t max, Read read,
                                          Fill fill) {
  internal::v1::LegacyPageRequest page;
  if (!page.ParseFromString(request.body)) {
    co_return rpc::ErrorResponse(Malformed("body is not a valid LegacyPageRequest"));
  }
  Response response;
  response.set_next(page.from());
  if (imported) {
    response.set_done(true);
    co_return rpc::ProtobufResponse(response);
  }
  const uint32_t limit = replicated ? std::clamp<uint32_t>(page.limit(), 1, max) : 1;
  asio::awaitable<Result<Page>> reading =
      OnReader<Page>(*store, [read, from = page.from(), limit](duckdb_connection conn) {
        return read(conn, from, limit);
      });
  Result<Page> got = co_await std::move(reading);
  if (!got.ok()) co_return rpc::ErrorResponse(got.status());
  response.set_total(got->total);
  if (!replicated) {  // how much there is, nothing of it yet
    response.set_waiting(true);
    co_return rpc::ProtobufResponse(response);
  }
  fill(*got, response);
  response.set_next(got->next);
  response.set_done(got->done);
  co_return rpc::ProtobufResponse(response);
}

}  // namespace

LegacyExport::LegacyExport(storage::Store* store, std::string data_dir,
                           std::function<bool()> replicated)
    : store_(store),
      marker_(MarkerPath(data_dir)),
      replicated_(std::move(replicated)),
      imported_(store == nullptr || std::filesystem::exists(marker_)) {}

void LegacyExport::Register(http::Router& router) {
  router.Add("POST", rpc::kLegacyRowsPath,
             [this](http::Request request, http::Target) { return Rows(std::move(request)); });
  router.Add("POST", rpc::kLegacyKeysPath,
             [this](http::Request request, http::Target) { return Keys(std::move(request)); });
  router.Add("POST", rpc::kLegacyDonePath, [this](http::Request, http::Target) { return Done(); });
}

Status LegacyExport::DropIfImported(storage::NodeStore& node_store, const std::string& data_dir) {
  const std::string marker = MarkerPath(data_dir);
  if (!std::filesystem::exists(marker)) return Status::Ok();
  RETURN_IF_ERROR(node_store.RemoveReplica(storage::kUnreplicatedReplica));
  std::error_code error;
  std::filesystem::remove(marker, error);
  if (error) return Internal("cannot remove " + marker + ": " + error.message());
  spdlog::info("deleted the unreplicated store: its rows and keys are in the shards");
  return Status::Ok();
}

asio::awaitable<http::Response> LegacyExport::Rows(http::Request request) {
  const uint32_t replica = storage::kUnreplicatedReplica;
  asio::awaitable<http::Response> served =
      ServePage<internal::v1::LegacyRowsResponse, storage::RowsPage>(
          std::move(request), store_, replicated_(), imported_.load(), kMaxRows,
          [replica](duckdb_connection conn, uint64_t from, uint32_t limit) {
            return storage::ReadRowsPage(conn, replica, from, limit, kMaxPageBytes);
          },
          [](storage::RowsPage& page, internal::v1::LegacyRowsResponse& response) {
            for (storage::PagedRow& row : page.rows) {
              internal::v1::LegacyRow* out = response.add_rows();
              out->set_partition_key(std::move(row.partition_key));
              out->set_value(row.value);
              out->set_ingest_us(row.ingest_us);
            }
          });
  co_return co_await std::move(served);
}

asio::awaitable<http::Response> LegacyExport::Keys(http::Request request) {
  const uint32_t replica = storage::kUnreplicatedReplica;
  asio::awaitable<http::Response> served =
      ServePage<internal::v1::LegacyKeysResponse, storage::KeysPage>(
          std::move(request), store_, replicated_(), imported_.load(), kMaxKeys,
          [replica](duckdb_connection conn, uint64_t from, uint32_t limit) {
            return storage::ReadKeysPage(conn, replica, from, limit, kMaxPageBytes);
          },
          [](storage::KeysPage& page, internal::v1::LegacyKeysResponse& response) {
            for (storage::PagedKey& key : page.keys) {
              internal::v1::LegacyKey* out = response.add_keys();
              out->set_key(std::move(key.key));
              out->set_fingerprint(key.fingerprint);
            }
          });
  co_return co_await std::move(served);
}

asio::awaitable<http::Response> LegacyExport::Done() {
  if (!replicated_()) {
    co_return rpc::ErrorResponse(Unavailable(
        "this worker holds no topology: its unreplicated store is still its cluster's store"));
  }
  if (!imported_.load()) {  // with a store (none is imported from the start)
    if (Status written = WriteFileDurably(marker_, "imported\n"); !written.ok()) {
      co_return rpc::ErrorResponse(written);
    }
    imported_.store(true);
    spdlog::info(
        "the unreplicated store's rows and keys are in the shards; it is deleted at the "
        "next start");
  }
  co_return rpc::ProtobufResponse(internal::v1::LegacyDoneResponse());
}

}  // namespace das::worker
