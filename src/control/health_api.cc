#include "control/health_api.h"

#include <sys/statvfs.h>

#include <map>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

#include "control/codec.h"
#include "control/gather.h"
#include "rpc/topology.h"

namespace das::control {

namespace asio = boost::asio;

namespace {

http::Response EncodeHealth(unsigned status, das::v1::HealthResponse& response,
                            const http::Request& request, bool status_only) {
  if (status_only) {
    das::v1::HealthResponse bare;
    bare.set_status(response.status());
    return Encode(status, bare, AnswerEncoding(request, Encoding::kProtobuf),
                  /*print_defaults=*/false);
  }
  return Encode(status, response, AnswerEncoding(request, Encoding::kProtobuf));
}

}  // namespace

// Each member and what its health said.
struct HealthApi::MemberHealths {
  std::vector<WorkerInfo> workers;
  std::vector<Result<internal::v1::WorkerHealthResponse>> results;
};

HealthApi::HealthApi(asio::any_io_executor executor, HealthApiOptions options,
                     Replication& replication, const ClusterClock& clock)
    : executor_(std::move(executor)),
      options_(std::move(options)),
      replication_(replication),
      clock_(clock) {}

asio::awaitable<http::Response> HealthApi::Health(http::Request request, bool status_only) {
  asio::awaitable<MemberHealths> asked = AskMembers();
  const MemberHealths members = co_await std::move(asked);
  das::v1::HealthResponse response;
  response.set_node("control");
  bool all_healthy = DescribeWorkers(members, response);
  response.set_clock_correction_ms(clock_.CorrectionUs() / 1000);
  response.set_max_clock_offset_ms(static_cast<uint32_t>(clock_.bound().count()));
  std::map<uint64_t, Result<internal::v1::WorkerHealthResponse>> by_id;
  for (size_t i = 0; i < members.results.size(); ++i) {
    by_id.emplace(members.workers[i].id, members.results[i]);
  }
  asio::awaitable<std::vector<internal::v1::ReplicaHealth>> read = replication_.WitnessHealth();
  const std::vector<internal::v1::ReplicaHealth> witness = co_await std::move(read);
  replication_.Observe(by_id, witness);
  all_healthy = replication_.DescribeShards(by_id, witness, response) && all_healthy;
  all_healthy = DescribeOwnDisk(response) && all_healthy;
  // Until every shard first had a leader (and what workers kept unreplicated is in the
  // shards), the node cannot serve: 503, so that whoever waits for a 200 (a container health
  // check, a test) waits until it can.
  std::optional<std::string> starting;
  if (!replication_.ready()) {
    starting = "a shard has had no leader yet";
  } else if (options_.held) {
    starting = options_.held();
  }
  if (starting) {
    response.set_status("starting");
    response.set_starting(*starting);
    co_return EncodeHealth(503, response, request, status_only);
  }
  response.set_status(all_healthy ? "ok" : "degraded");
  co_return EncodeHealth(200, response, request, status_only);
}

asio::awaitable<HealthApi::MemberHealths> HealthApi::AskMembers() {
  MemberHealths out;
  std::vector<asio::awaitable<Result<internal::v1::WorkerHealthResponse>>> fetches;
  for (const WorkerDirectory::Entry& w : replication_.workers().Members()) {
    Result<std::vector<WorkerAddress>> address = ParseWorkerList(w.address);
    out.workers.push_back(
        WorkerInfo{static_cast<WorkerId>(w.id),
                   address.ok() && address->size() == 1 ? address->front() : WorkerAddress{}});
    fetches.push_back(MemberHealth(w.client, static_cast<WorkerId>(w.id)));
  }
  asio::awaitable<std::vector<Result<internal::v1::WorkerHealthResponse>>> gather_fetches =
      GatherAll<internal::v1::WorkerHealthResponse>(executor_, std::move(fetches));
  out.results = co_await std::move(gather_fetches);
  co_return out;
}

// A member's health; one that answers under another id is not that member any more.
asio::awaitable<Result<internal::v1::WorkerHealthResponse>> HealthApi::MemberHealth(
    std::shared_ptr<rpc::WorkerClient> client, uint64_t id) {
  asio::awaitable<Result<internal::v1::WorkerHealthResponse>> call =
      client->Health(options_.deadline);
  Result<internal::v1::WorkerHealthResponse> health = co_await std::move(call);
  if (health.ok() && health->worker_id() != id) {
    co_return Unavailable("the worker at " + client->peer() + " is worker " +
                          std::to_string(health->worker_id()) + " now");
  }
  co_return health;
}

// One WorkerStatus per member; false when one is down, full or past the clock bound.
bool HealthApi::DescribeWorkers(const MemberHealths& members, das::v1::HealthResponse& response) {
  bool all_healthy = true;
  for (size_t i = 0; i < members.results.size(); ++i) {
    const WorkerInfo& worker = members.workers[i];
    const Result<internal::v1::WorkerHealthResponse>& result = members.results[i];
    das::v1::WorkerStatus* status = response.add_workers();
    status->set_address(worker.address.ToString());
    status->set_worker_id(worker.id);
    status->set_healthy(result.ok());
    status->set_state(replication_.WorkerState(worker.id));
    if (result.ok()) {
      status->set_rows(result->rows());
      if (result->disk_full()) {
        all_healthy = false;
        status->set_disk_full(true);
        status->set_error(
            rpc::DiskFullMessage(result->disk_free_bytes(), result->disk_reserve_bytes()));
      }
    } else {
      all_healthy = false;
      status->set_error(result.status().ToString());
    }
    all_healthy = DescribeClock(worker.id, *status) && all_healthy;
  }
  return all_healthy;
}

// The worker's clock offset as last probed, if ever; false when it is past the bound.
bool HealthApi::DescribeClock(uint64_t worker, das::v1::WorkerStatus& status) const {
  std::optional<ClusterClock::Offset> offset = clock_.Of(worker);
  if (!offset) return true;
  status.set_clock_offset_ms(offset->offset_us / 1000);
  status.set_clock_uncertainty_ms(static_cast<uint32_t>((offset->uncertainty_us + 999) / 1000));
  status.set_clock_past_bound(clock_.PastBound(*offset));
  return !status.clock_past_bound();
}

// The free space of this node's data directory; false (and logged once) below the reserve.
bool HealthApi::DescribeOwnDisk(das::v1::HealthResponse& response) {
  struct statvfs fs {};
  if (::statvfs(options_.data_dir.c_str(), &fs) != 0) return true;
  const uint64_t free = uint64_t{fs.f_bavail} * fs.f_frsize;
  const bool full = free < options_.disk_reserve_bytes;
  response.set_control_disk_free_bytes(free);
  response.set_control_disk_full(full);
  if (own_disk_full_.exchange(full) != full) {
    if (full) {
      spdlog::error(
          "the control node's data directory {}: disk full ({} MiB free, below "
          "--disk-reserve-mb {}): the witness's raft logs wait for room, the workers carry "
          "the shards; free space there",
          options_.data_dir, free >> 20, options_.disk_reserve_bytes >> 20);
    } else {
      spdlog::info("the control node's data directory has room again ({} MiB free)", free >> 20);
    }
  }
  return !full;
}

}  // namespace das::control
