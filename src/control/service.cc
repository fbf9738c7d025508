#include "control/service.h"

#include <sys/statvfs.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>

#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include "control/batch_split.h"
#include "control/clock_probe.h"
#include "control/cluster_clock.h"
#include "control/codec.h"
#include "control/console.h"
#include "control/fingerprint.h"
#include "control/gather.h"
#include "control/legacy_import.h"
#include "control/query_api.h"
#include "control/shard_writer.h"
#include "das/v1/das.pb.h"
#include "das/v1/internal.pb.h"
#include "http/router.h"
#include "metrics/http_metrics.h"
#include "metrics/process_metrics.h"
#include "metrics/registry.h"
#include "metrics/replica_metrics.h"
#include "rpc/cluster_auth.h"
#include "rpc/routes.h"
#include "rpc/status_wire.h"
#include "rpc/topology.h"
#include "rpc/worker_client.h"

namespace das::control {

namespace asio = boost::asio;
using internal::v1::SubBatch;
using internal::v1::SubBatchResult;

namespace {

// The query parameters every public route accepts.
const http::RouteOptions kFormatOnly{{"format"}};

// What one worker's answer to a sub-batch means for the client.
struct PartAnswer {
  bool stored = false;  // OK or DUPLICATE: the rows are in the worker
  uint64_t rows = 0;
  ApiError error;
  bool duplicate = false;  // DUPLICATE: stored before, by the batch this one repeats
};

// A part the shard could not take is a 503 whatever the reason (the client may retry); one it
// refused for what it is answers with its code's status (rpc::FromWire, ApiErrorOf).
PartAnswer Interpret(const Result<SubBatchResult>& result, const std::string& shard) {
  if (!result.ok()) {
    return {false, 0,
            ApiError{503, shard + " cannot take the insert: " + result.status().ToString()}};
  }
  Result<rpc::SubBatchStored> part = rpc::FromWire(*result);
  if (part.ok()) return {true, part->rows, {}, part->duplicate};
  ApiError refused = ApiErrorOf(part.status());
  // Refused before anything else of a keyed batch was sent (the key's home shard decides
  // first), or a row the control node's own checks let through.
  refused.message = part.status().code() == StatusCode::kAlreadyExists
                        ? refused.message + "; nothing of this batch was stored"
                        : shard + " rejected rows: " + refused.message;
  return {false, 0, std::move(refused)};
}

// The router's own errors (400, 404, 405) in the public error format.
http::Response RouterError(const http::Request& request, unsigned status, std::string message) {
  return EncodeError(ApiError{status, std::move(message)}, ErrorEncoding(request));
}

// `format` is the one parameter every route takes; a value it does not know is a 422.
asio::awaitable<http::Response> CheckFormat(http::Request request, http::Target target,
                                            const http::RouteHandler& next) {
  for (const http::QueryParam& param : target.params) {
    if (param.name == "format" && param.value != "json" && param.value != "protobuf" &&
        param.value != "proto") {
      co_return EncodeError(
          ApiError{422, "format must be json or protobuf, not '" + param.value + "'"},
          ErrorEncoding(request));
    }
  }
  asio::awaitable<http::Response> answer = next(std::move(request), std::move(target));
  co_return co_await std::move(answer);
}

// What each route needs of a caller's token (--auth-tokens-file); /health needs none.
std::optional<Access> AccessOf(const std::string& route) {
  if (route == "/insert" || route == "/insert/batch") return Access::kWrite;
  if (route == "/analytics" || route == "/v1/query" || route == "/metrics") return Access::kRead;
  // /health and the console's static files (which hold no data: the page asks the API with
  // the token its user gives).
  if (route == "/health" || route == "/" || route.starts_with("/console/")) return std::nullopt;
  // A worker's join proves itself with the cluster secret, not a token.
  if (route == rpc::kJoinPath) return std::nullopt;
  return Access::kAdmin;  // anything else, /admin/... among them
}

http::Response Unauthorized(const http::Request& request, std::string message,
                            std::string_view challenge) {
  http::Response response = EncodeError(ApiError{401, std::move(message)}, ErrorEncoding(request));
  response.headers.emplace_back("WWW-Authenticate", std::string(challenge));
  return response;
}

// The caller a request's token names; an http::Response (401) when it shows none that is valid.
std::variant<Caller, http::Response> Authenticate(const TokenFile& tokens,
                                                  const http::Request& request) {
  const std::string* header = request.Header("Authorization");
  if (header == nullptr) {
    return Unauthorized(request, "this API requires a token: Authorization: Bearer TOKEN",
                        "Bearer realm=\"das\"");
  }
  const std::optional<std::string_view> token = BearerToken(*header);
  std::optional<Caller> caller = token ? tokens.Find(*token) : std::nullopt;
  if (!caller) {
    return Unauthorized(request, "the bearer token is not valid",
                        "Bearer realm=\"das\", error=\"invalid_token\"");
  }
  return std::move(*caller);
}

// Where the inserts of one shard go, by its id.
struct Destination {
  rpc::WriteTarget* target = nullptr;  // its ShardLeader
  std::unique_ptr<ShardWriter> writer;
};

class ControlServiceImpl final : public ControlService {
 public:
  ControlServiceImpl(asio::any_io_executor executor, ControlOptions options, ClusterMap map)
      : executor_(executor),
        options_(std::move(options)),
        cluster_clock_(*options_.clock, options_.max_clock_offset,
                       3 * options_.clock_probe_interval + options_.health_deadline),
        listed_(std::move(map)),
        router_(&RouterError) {
    if (!options_.cluster_secret.empty()) {
      cluster_key_ = rpc::ClusterKey::Create(options_.cluster_secret);
    }
    AddRoutes();
    if (options_.metrics != nullptr) AddMetrics(*options_.metrics);
  }

  // One destination per shard, written through its leader.
  Status StartReplication() {
    WorkerDirectory::Factory clients = [this](const std::string& address) {
      const size_t colon = address.rfind(':');
      const auto port = static_cast<uint16_t>(std::stoul(address.substr(colon + 1)));
      return rpc::WorkerClient::Create(
          executor_, rpc::WorkerClientOptions{address.substr(0, colon), port,
                                              options_.connections_per_worker, cluster_key_});
    };
    ASSIGN_OR_RETURN(replication_, Replication::Create(executor_, options_.replication,
                                                       listed_.workers(), clients));
    AddMembershipRoutes();
    for (uint32_t s = 0; s < replication_->shards(); ++s) {
      AddDestination(s, replication_->LeaderOf(s), s);
    }
    replication_->Start();
    StartLegacyImport();
    return Status::Ok();
  }

  // The rows and keys workers kept unreplicated, into the shards (LegacyImport);
  // inserts and reads wait for it.
  void StartLegacyImport() {
    LegacyImport::Hooks hooks;
    hooks.members = [this] {
      std::vector<uint64_t> out;
      for (const WorkerDirectory::Entry& w : replication_->workers().Members()) {
        out.push_back(w.id);
      }
      return out;
    };
    CallWorkers(
        hooks, [this](uint64_t id) { return replication_->workers().Client(id); },
        options_.insert_deadline);
    hooks.shards = replication_->shards();
    hooks.shard_of = [this](std::string_view key) { return replication_->ShardOf(key); };
    hooks.write = [this](uint32_t shard, SubBatch part) {
      return DestinationOf(shard).writer->Write(std::move(part));
    };
    hooks.settled_file =
        (std::filesystem::path(options_.replication.data_dir) / "legacy-settled").string();
    hooks.after_round = [this] {
      if (options_.serving && !serving_said_ && replication_->ready() && !legacy_->Pending()) {
        serving_said_ = true;  // on the import's strand only
        options_.serving();
      }
    };
    legacy_ = std::make_unique<LegacyImport>(executor_, std::move(hooks), options_.insert_deadline);
    legacy_->Start();
  }

  // While the import of what workers kept unreplicated runs (LegacyImport), inserts and reads
  // answer 503 once they are found valid: a read would miss the rows not imported yet, and a
  // retried batch from before it could be stored again before its key is.
  std::optional<ApiError> Held() const {
    if (std::optional<std::string> pending = legacy_->Pending()) {
      return ApiError{503, "the cluster is starting: " + *pending};
    }
    return std::nullopt;
  }

  // Probes every member's clock.
  void StartClockProbe() {
    if (options_.clock_probe_interval.count() == 0) return;
    ClockProbe::Members members = [this] {
      std::vector<ClockProbe::Member> out;
      for (const WorkerDirectory::Entry& w : replication_->workers().Members()) {
        out.emplace_back(w.id, w.client);
      }
      return out;
    };
    clock_probe_ =
        std::make_unique<ClockProbe>(executor_, cluster_clock_, std::move(members),
                                     options_.clock_probe_interval, options_.health_deadline);
    clock_probe_->Start();
  }

  void StartQueries() {
    QueryApiOptions query_options;
    query_options.deadline = options_.query_deadline;
    query_options.analytics_deadline = options_.analytics_deadline;
    query_options.max_rows = options_.query_max_rows;
    query_options.held = [this] { return legacy_->Pending(); };
    queries_ = std::make_unique<QueryApi>(executor_, query_options, *replication_);
  }

  asio::awaitable<http::Response> Handle(http::Request request) override {
    if (http_metrics_) {
      asio::awaitable<http::Response> counted = http_metrics_->Handle(std::move(request));
      co_return co_await std::move(counted);
    }
    asio::awaitable<http::Response> answer = router_.Handle(std::move(request));
    co_return co_await std::move(answer);
  }

  bool Stop(std::chrono::milliseconds wait) override {
    const auto until = std::chrono::steady_clock::now() + wait;
    bool idle = true;
    for (auto& [id, destination] : destinations_) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          until - std::chrono::steady_clock::now());
      idle = destination->writer->Stop(std::max(left, std::chrono::milliseconds(0))) && idle;
    }
    if (clock_probe_) clock_probe_->Stop();
    if (legacy_) legacy_->Stop();
    replication_->Stop();
    return idle;
  }

 private:
  void AddRoutes() {
    // Outermost: a caller without a valid token learns nothing about its request.
    if (options_.tokens != nullptr) {
      router_.Use([tokens = options_.tokens](
                      http::Request request, http::Target target,
                      const http::RouteHandler& next) -> asio::awaitable<http::Response> {
        if (std::optional<Access> access = AccessOf(target.route)) {
          std::variant<Caller, http::Response> who = Authenticate(*tokens, request);
          if (auto* refused = std::get_if<http::Response>(&who)) {
            spdlog::debug("refused {} {}: no valid token", request.method, target.route);
            co_return std::move(*refused);
          }
          const Caller& caller = std::get<Caller>(who);
          if (!Permits(caller.role, *access)) {
            spdlog::info("refused {} {} to '{}': role {}", request.method, target.route,
                         caller.name, RoleName(caller.role));
            co_return EncodeError(
                ApiError{403, "token '" + caller.name + "' has role " +
                                  std::string(RoleName(caller.role)) + ", which may not " +
                                  request.method + " " + target.route},
                ErrorEncoding(request));
          }
        }
        asio::awaitable<http::Response> answer = next(std::move(request), std::move(target));
        co_return co_await std::move(answer);
      });
    }
    router_.Use(&CheckFormat);
    router_.Add(
        "POST", "/insert", [this](http::Request r, http::Target) { return Insert(std::move(r)); },
        kFormatOnly);
    router_.Add(
        "POST", "/insert/batch",
        [this](http::Request r, http::Target) { return InsertBatch(std::move(r)); }, kFormatOnly);
    router_.Add(
        "GET", "/analytics",
        [this](http::Request r, http::Target target) {
          return queries_->Analytics(std::move(r), std::move(target.params));
        },
        http::RouteOptions{{"format", "key", "key_prefix", "from", "to"}});
    router_.Add(
        "POST", "/v1/query",
        [this](http::Request r, http::Target) { return queries_->Query(std::move(r)); },
        kFormatOnly);
    router_.Add(
        "GET", "/health", [this](http::Request r, http::Target) { return Health(std::move(r)); },
        kFormatOnly);
    for (const ConsoleAsset& asset : ConsoleAssets()) {
      router_.Add("GET", std::string(asset.path),
                  [&asset](http::Request, http::Target) -> asio::awaitable<http::Response> {
                    co_return ConsoleResponse(asset);
                  });
    }
  }

  // A console file, with headers that keep the page to this origin: its scripts, styles and
  // requests (Content-Security-Policy), never framed, never sniffed as another type.
  static http::Response ConsoleResponse(const ConsoleAsset& asset) {
    http::Response response;
    response.content_type = std::string(asset.content_type);
    response.body = std::string(asset.body);
    response.headers = {
        {"Cache-Control", "no-cache"},
        {"X-Content-Type-Options", "nosniff"},
        {"Referrer-Policy", "no-referrer"},
        {"X-Frame-Options", "DENY"},
        {"Content-Security-Policy",
         "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
         "img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"},
    };
    return response;
  }

  // GET /metrics, requests counted by route and code, ingest counters, and at scrape time the
  // insert queues and the witness's replicas.
  void AddMetrics(metrics::Registry& registry) {
    router_.Add("GET", "/metrics",
                [this, &registry](http::Request, http::Target) -> asio::awaitable<http::Response> {
                  // The witness's replicas, read without blocking this thread.
                  asio::awaitable<std::vector<internal::v1::ReplicaHealth>> read =
                      replication_->WitnessHealth();
                  const std::vector<internal::v1::ReplicaHealth> witness = co_await std::move(read);
                  std::vector<metrics::ScrapedFamily> gathered =
                      metrics::ReplicaFamilies(witness, false);
                  http::Response response;
                  response.body = registry.Exposition(std::move(gathered));
                  response.content_type = std::string(metrics::kContentType);
                  co_return response;
                });
    http_metrics_ = std::make_unique<metrics::HttpMetrics>(registry, router_);
    metrics::AddProcessMetrics(registry);
    const std::string rows_help =
        "Rows of inserts answered 200: stored, or (duplicate) stored before by the batch a "
        "retry repeats";
    ingest_.stored = &registry.Counter("das_ingest_rows_total", rows_help, {{"outcome", "stored"}});
    ingest_.duplicate =
        &registry.Counter("das_ingest_rows_total", rows_help, {{"outcome", "duplicate"}});
    ingest_.bytes =
        &registry.Counter("das_ingest_bytes_total", "Body bytes of inserts answered 200");
    registry.AddCollector([this] {
      std::vector<metrics::ScrapedFamily> families = ClockFamilies(cluster_clock_);
      metrics::ScrapedFamily& queues = families.emplace_back();
      queues.name = "das_insert_queue_depth";
      queues.help = "Rows' sub-batches waiting for or in an internal write, by shard";
      for (const auto& [id, destination] : destinations_) {
        queues.samples.push_back({{{"shard", std::to_string(id)}},
                                  static_cast<double>(destination->writer->queue_depth())});
      }
      return families;
    });
  }

  // Counts an insert answered 200.
  void CountIngest(const http::Request& request, uint64_t stored, uint64_t duplicate) {
    if (ingest_.stored == nullptr) return;
    ingest_.stored->Increment(static_cast<double>(stored));
    ingest_.duplicate->Increment(static_cast<double>(duplicate));
    ingest_.bytes->Increment(static_cast<double>(request.body.size()));
  }

  void AddDestination(uint32_t id, rpc::WriteTarget& target, std::optional<uint32_t> shard) {
    auto destination = std::make_unique<Destination>();
    destination->target = &target;
    ShardWriterOptions writer_options;
    writer_options.max_inflight = options_.max_inflight_per_worker;
    writer_options.deadline = options_.insert_deadline;
    writer_options.clock = options_.clock;
    writer_options.shard = shard;
    writer_options.cluster_clock = &cluster_clock_;
    destination->writer = std::make_unique<ShardWriter>(executor_, target, writer_options);
    destinations_.emplace(id, std::move(destination));
  }

  Destination& DestinationOf(uint32_t id) const { return *destinations_.at(id); }
  // The destination of a key: its shard.
  uint32_t DestinationIdOf(std::string_view partition_key) const {
    return replication_->ShardOf(partition_key);
  }

  asio::awaitable<http::Response> Insert(http::Request request) {
    Decoded<Encoding> body = BodyEncoding(request);
    if (auto* e = std::get_if<ApiError>(&body)) co_return EncodeError(*e, ErrorEncoding(request));
    Encoding answer = AnswerEncoding(request, std::get<Encoding>(body));
    Decoded<internal::v1::RowWire> row = DecodeInsert(request, std::get<Encoding>(body));
    if (auto* e = std::get_if<ApiError>(&row)) co_return EncodeError(*e, answer);

    if (std::optional<ApiError> held = Held()) co_return EncodeError(*held, answer);
    auto& decoded = std::get<internal::v1::RowWire>(row);
    Destination& destination = DestinationOf(DestinationIdOf(decoded.partition_key()));
    SubBatch part;
    *part.add_rows() = std::move(decoded);
    asio::awaitable<Result<SubBatchResult>> write = destination.writer->Write(std::move(part));
    Result<SubBatchResult> written = co_await std::move(write);
    PartAnswer result = Interpret(written, destination.target->peer());
    if (!result.stored) co_return EncodeError(result.error, answer);
    das::v1::InsertResponse response;
    response.set_rows_written(result.rows);
    CountIngest(request, result.duplicate ? 0 : result.rows, result.duplicate ? result.rows : 0);
    co_return Encode(200, response, answer);
  }

  // The destination of each row of `batch`, in order.
  std::vector<uint32_t> RowDestinations(const internal::v1::InsertBatchWire& batch) const {
    std::vector<uint32_t> destinations;
    destinations.reserve(static_cast<size_t>(batch.rows_size()));
    for (const internal::v1::RowWire& row : batch.rows()) {
      destinations.push_back(DestinationIdOf(row.partition_key()));
    }
    return destinations;
  }

  // What the parts of one client batch came to.
  struct PartsOutcome {
    uint64_t rows = 0;            // stored now or before (a duplicate)
    uint64_t duplicate_rows = 0;  // of `rows`, stored before
    std::optional<ApiError> error;
  };

  // Writes `parts` (each on its shard's writer, all at once) and adds what they came to to
  // `outcome`: the first error is kept, a 422 before any other.
  asio::awaitable<void> WriteParts(std::vector<std::pair<uint32_t, SubBatch*>> parts,
                                   const std::shared_ptr<google::protobuf::Arena>& arena,
                                   PartsOutcome& outcome) {
    std::vector<Destination*> targets;
    std::vector<asio::awaitable<Result<SubBatchResult>>> writes;
    for (const auto& [id, part] : parts) {
      Destination& destination = DestinationOf(id);
      targets.push_back(&destination);
      writes.push_back(destination.writer->Write(std::shared_ptr<const SubBatch>(arena, part)));
    }
    asio::awaitable<std::vector<Result<SubBatchResult>>> gather_writes =
        GatherAll<SubBatchResult>(executor_, std::move(writes));
    std::vector<Result<SubBatchResult>> results = co_await std::move(gather_writes);
    for (size_t i = 0; i < results.size(); ++i) {
      PartAnswer part = Interpret(results[i], targets[i]->target->peer());
      // A duplicate repeats the first batch's rows (the same fingerprint): its part stored
      // these rows then (a key imported from an unreplicated store records none, LegacyImport).
      if (part.duplicate) part.rows = static_cast<uint64_t>(parts[i].second->rows_size());
      if (part.stored) {
        outcome.rows += part.rows;
        if (part.duplicate) outcome.duplicate_rows += part.rows;
      } else if (!outcome.error || part.error.status == 422) {
        outcome.error = part.error;
      }
    }
  }

  // A keyed batch's parts. The key's home shard decides the key first, in the order of its log,
  // as it stores its part (first stores, the same rows again are a duplicate, other rows a
  // 422); the other parts are written only once it stored or found a duplicate. A shard that
  // never saw the key cannot refuse a reuse itself (the first batch may have had no rows
  // there), so without the home shard's word first a reuse could be stored there; and two
  // concurrent batches with one key and other rows are decided at the home shard, one of them
  // stored. A batch whose rows all fall in the home shard is one part: one raft round trip.
  asio::awaitable<PartsOutcome> WriteKeyed(std::map<uint32_t, SubBatch*> parts, uint32_t home,
                                           const std::shared_ptr<google::protobuf::Arena>& arena) {
    PartsOutcome outcome;
    auto home_part = parts.extract(home);
    asio::awaitable<void> decided = WriteParts({{home, home_part.mapped()}}, arena, outcome);
    co_await std::move(decided);
    if (outcome.error) {
      if (outcome.error->status != 422) {
        outcome.error->message +=
            "; it decides this idempotency_key: nothing else of this batch "
            "was sent";
      }
      co_return outcome;
    }
    if (parts.empty()) co_return outcome;  // every row in the home shard: one round trip
    asio::awaitable<void> rest = WriteParts(
        std::vector<std::pair<uint32_t, SubBatch*>>(parts.begin(), parts.end()), arena, outcome);
    co_await std::move(rest);
    co_return outcome;
  }

  asio::awaitable<http::Response> InsertBatch(http::Request request) {
    Decoded<Encoding> body = BodyEncoding(request);
    if (auto* e = std::get_if<ApiError>(&body)) co_return EncodeError(*e, ErrorEncoding(request));
    Encoding answer = AnswerEncoding(request, std::get<Encoding>(body));
    // The batch, its rows and its parts live on one arena, freed when the last part's write is
    // answered: no row is copied or freed one by one between the client and the workers.
    std::shared_ptr<google::protobuf::Arena> arena = BatchArena(request.body.size());
    Decoded<internal::v1::InsertBatchWire*> decoded =
        DecodeBatch(request, std::get<Encoding>(body), *arena);
    if (auto* e = std::get_if<ApiError>(&decoded)) co_return EncodeError(*e, answer);

    if (std::optional<ApiError> held = Held()) co_return EncodeError(*held, answer);
    internal::v1::InsertBatchWire& batch = *std::get<internal::v1::InsertBatchWire*>(decoded);
    const bool keyed = !batch.idempotency_key().empty();
    const uint64_t fingerprint = keyed ? BatchFingerprint(batch) : 0;
    // A keyed batch's key goes to its home shard (the shard of the key itself) even without
    // rows there: that shard decides it.
    const uint32_t home = keyed ? replication_->ShardOf(batch.idempotency_key()) : 0;
    std::map<uint32_t, SubBatch*> parts =
        SplitBatch(batch, fingerprint, RowDestinations(batch),
                   keyed ? std::vector<uint32_t>{home} : std::vector<uint32_t>{});
    PartsOutcome outcome;
    if (keyed) {
      asio::awaitable<PartsOutcome> written = WriteKeyed(std::move(parts), home, arena);
      outcome = co_await std::move(written);
    } else {
      asio::awaitable<void> written = WriteParts(
          std::vector<std::pair<uint32_t, SubBatch*>>(parts.begin(), parts.end()), arena, outcome);
      co_await std::move(written);
    }
    if (outcome.error) co_return EncodeError(*outcome.error, answer, outcome.rows);
    das::v1::InsertResponse response;
    response.set_rows_written(outcome.rows);
    CountIngest(request, outcome.rows - outcome.duplicate_rows, outcome.duplicate_rows);
    co_return Encode(200, response, answer);
  }

  asio::awaitable<http::Response> Health(http::Request request) {
    // With tokens, a caller without a valid one learns the status only (docs/operations.md,
    // "Security").
    const bool status_only =
        options_.tokens != nullptr &&
        std::holds_alternative<http::Response>(Authenticate(*options_.tokens, request));
    asio::awaitable<http::Response> answer = FullHealth(std::move(request), status_only);
    co_return co_await std::move(answer);
  }

  // Each member and what its health said.
  struct MemberHealths {
    std::vector<WorkerInfo> workers;
    std::vector<Result<internal::v1::WorkerHealthResponse>> results;
  };

  asio::awaitable<MemberHealths> AskMembers() {
    MemberHealths out;
    std::vector<asio::awaitable<Result<internal::v1::WorkerHealthResponse>>> fetches;
    for (const WorkerDirectory::Entry& w : replication_->workers().Members()) {
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

  // One WorkerStatus per member; false when one is down, full or past the clock bound.
  bool DescribeWorkers(const MemberHealths& members, das::v1::HealthResponse& response) {
    bool all_healthy = true;
    for (size_t i = 0; i < members.results.size(); ++i) {
      const WorkerInfo& worker = members.workers[i];
      const Result<internal::v1::WorkerHealthResponse>& result = members.results[i];
      das::v1::WorkerStatus* status = response.add_workers();
      status->set_address(worker.address.ToString());
      status->set_worker_id(worker.id);
      status->set_healthy(result.ok());
      status->set_state(replication_->WorkerState(worker.id));
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

  asio::awaitable<http::Response> FullHealth(http::Request request, bool status_only) {
    asio::awaitable<MemberHealths> asked = AskMembers();
    const MemberHealths members = co_await std::move(asked);
    das::v1::HealthResponse response;
    response.set_node("control");
    bool all_healthy = DescribeWorkers(members, response);
    response.set_clock_correction_ms(cluster_clock_.CorrectionUs() / 1000);
    response.set_max_clock_offset_ms(static_cast<uint32_t>(cluster_clock_.bound().count()));
    std::map<uint64_t, Result<internal::v1::WorkerHealthResponse>> by_id;
    for (size_t i = 0; i < members.results.size(); ++i) {
      by_id.emplace(members.workers[i].id, members.results[i]);
    }
    asio::awaitable<std::vector<internal::v1::ReplicaHealth>> read = replication_->WitnessHealth();
    const std::vector<internal::v1::ReplicaHealth> witness = co_await std::move(read);
    replication_->Observe(by_id, witness);
    all_healthy = replication_->DescribeShards(by_id, witness, response) && all_healthy;
    all_healthy = DescribeOwnDisk(response) && all_healthy;
    // Until every shard first had a leader (and what workers kept unreplicated is in the
    // shards), the node cannot serve: 503, so that whoever waits for a 200 (a container health
    // check, a test) waits until it can.
    const std::optional<std::string> starting =
        replication_->ready() ? legacy_->Pending()
                              : std::optional<std::string>("a shard has had no leader yet");
    if (starting) {
      response.set_status("starting");
      response.set_starting(*starting);
      co_return EncodeHealth(503, response, request, status_only);
    }
    response.set_status(all_healthy ? "ok" : "degraded");
    co_return EncodeHealth(200, response, request, status_only);
  }

  // The free space of this node's data directory; false (and logged once) below the reserve.
  bool DescribeOwnDisk(das::v1::HealthResponse& response) {
    struct statvfs fs {};
    if (::statvfs(options_.replication.data_dir.c_str(), &fs) != 0) return true;
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
            options_.replication.data_dir, free >> 20, options_.disk_reserve_bytes >> 20);
      } else {
        spdlog::info("the control node's data directory has room again ({} MiB free)", free >> 20);
      }
    }
    return !full;
  }

  // The worker's clock offset as last probed, if ever; false when it is past the bound.
  bool DescribeClock(uint64_t worker, das::v1::WorkerStatus& status) const {
    std::optional<ClusterClock::Offset> offset = cluster_clock_.Of(worker);
    if (!offset) return true;
    status.set_clock_offset_ms(offset->offset_us / 1000);
    status.set_clock_uncertainty_ms(static_cast<uint32_t>((offset->uncertainty_us + 999) / 1000));
    status.set_clock_past_bound(cluster_clock_.PastBound(*offset));
    return !status.clock_past_bound();
  }

  // A member's health; one that answers under another id is not that member any more.
  asio::awaitable<Result<internal::v1::WorkerHealthResponse>> MemberHealth(
      std::shared_ptr<rpc::WorkerClient> client, WorkerId id) {
    asio::awaitable<Result<internal::v1::WorkerHealthResponse>> call =
        client->Health(options_.health_deadline);
    Result<internal::v1::WorkerHealthResponse> health = co_await std::move(call);
    if (health.ok() && health->worker_id() != id) {
      co_return Unavailable("the worker at " + client->peer() + " is worker " +
                            std::to_string(health->worker_id()) + " now");
    }
    co_return health;
  }

  // POST /internal/v1/join (a worker registers) and POST /admin/workers/<id>/decommission.
  void AddMembershipRoutes() {
    router_.Add("POST", rpc::kJoinPath,
                [this](http::Request request, http::Target) -> asio::awaitable<http::Response> {
                  co_return JoinWorker(request);
                });
    router_.AddPrefix(
        "POST", "/admin/workers/",
        [this](http::Request request, http::Target target) -> asio::awaitable<http::Response> {
          co_return DecommissionWorker(request, target);
        },
        kFormatOnly);
  }

  http::Response JoinWorker(const http::Request& request) {
    if (cluster_key_) {
      const Status proven = cluster_key_->Verify(request, std::chrono::system_clock::now());
      if (!proven.ok()) {
        spdlog::warn("refused a join from {}: {}", request.peer, proven.message());
        return rpc::Unauthenticated("the control node", proven);
      }
    }
    internal::v1::JoinRequest join;
    if (!join.ParseFromString(request.body)) {
      return rpc::ErrorResponse(Malformed("body is not a valid das.internal.v1.JoinRequest"));
    }
    Result<internal::v1::JoinResponse> joined = replication_->Join(join);
    if (!joined.ok()) return rpc::ErrorResponse(joined.status());
    return rpc::ProtobufResponse(*joined);
  }

  http::Response DecommissionWorker(const http::Request& request, const http::Target& target) {
    constexpr std::string_view kPrefix = "/admin/workers/";
    constexpr std::string_view kSuffix = "/decommission";
    std::string_view rest = std::string_view(target.path).substr(kPrefix.size());
    uint64_t id = 0;
    const bool shaped = rest.ends_with(kSuffix);
    if (shaped) rest.remove_suffix(kSuffix.size());
    auto [end, error] = std::from_chars(rest.data(), rest.data() + rest.size(), id);
    if (!shaped || error != std::errc() || end != rest.data() + rest.size() || id == 0) {
      return EncodeError(
          ApiError{404, "no such route: POST " + target.path +
                            " (POST /admin/workers/<id>/decommission drains worker <id>)"},
          ErrorEncoding(request));
    }
    const Status drained = replication_->Decommission(id);
    if (!drained.ok()) return EncodeError(ApiErrorOf(drained), ErrorEncoding(request));
    das::v1::HealthResponse accepted;
    accepted.set_status("draining");
    accepted.set_node("worker-" + std::to_string(id));
    return Encode(202, accepted, AnswerEncoding(request, Encoding::kJson));
  }

  static http::Response EncodeHealth(unsigned status, das::v1::HealthResponse& response,
                                     const http::Request& request, bool status_only) {
    if (status_only) {
      das::v1::HealthResponse bare;
      bare.set_status(response.status());
      return Encode(status, bare, AnswerEncoding(request, Encoding::kProtobuf),
                    /*print_defaults=*/false);
    }
    return Encode(status, response, AnswerEncoding(request, Encoding::kProtobuf));
  }

  asio::any_io_executor executor_;
  const ControlOptions options_;
  ClusterClock cluster_clock_;  // stamps every internal write (ShardWriterOptions)
  const ClusterMap listed_;     // --workers, with their ids: the cluster's first members
  std::shared_ptr<const rpc::ClusterKey> cluster_key_;  // null: no cluster secret
  std::unique_ptr<Replication> replication_;            // set by Create
  // By shard id; built once.
  std::map<uint32_t, std::unique_ptr<Destination>> destinations_;
  std::unique_ptr<QueryApi> queries_;        // set by Create, after the destinations
  std::unique_ptr<ClockProbe> clock_probe_;  // set by Create; stopped by Stop()
  std::unique_ptr<LegacyImport> legacy_;     // replicated; stopped by Stop()
  bool serving_said_ = false;                // ControlOptions::serving called (legacy_'s strand)
  std::atomic<bool> own_disk_full_{false};   // as /health last saw it (DescribeOwnDisk)
  http::Router router_;
  std::unique_ptr<metrics::HttpMetrics> http_metrics_;  // with options_.metrics
  struct IngestCounters {
    prometheus::Counter* stored = nullptr;  // null: no metrics
    prometheus::Counter* duplicate = nullptr;
    prometheus::Counter* bytes = nullptr;
  } ingest_;
};

}  // namespace

Result<std::unique_ptr<ControlService>> ControlService::Create(asio::any_io_executor executor,
                                                               ControlOptions options) {
  options.replication.cluster_secret = options.cluster_secret;  // the witness proves it too
  // An empty --workers waits for workers to join (docs/operations.md, "Membership"), which
  // needs replication.
  const bool membership = options.replication.replication_factor > 1;
  ASSIGN_OR_RETURN(ClusterMap map, ClusterMap::Create(options.workers, membership));
  auto service =
      std::make_unique<ControlServiceImpl>(std::move(executor), std::move(options), std::move(map));
  RETURN_IF_ERROR(service->StartReplication());
  service->StartQueries();
  service->StartClockProbe();
  return std::unique_ptr<ControlService>(std::move(service));
}

}  // namespace das::control
