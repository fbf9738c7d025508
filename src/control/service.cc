#include "control/service.h"

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

#include "control/clock_probe.h"
#include "control/cluster_clock.h"
#include "control/codec.h"
#include "control/console.h"
#include "control/health_api.h"
#include "control/insert_api.h"
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

namespace {

// The query parameters every public route accepts.
const http::RouteOptions kFormatOnly{{"format"}};

// The router's own errors (400, 404, 405) in the public error format.
http::Response RouterError(const http::Request& request, const Status& error) {
  return EncodeError(ApiError{HttpStatusOf(error.code()), error.message()}, ErrorEncoding(request));
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
    InsertApiOptions inserts;
    inserts.max_inflight_per_worker = options_.max_inflight_per_worker;
    inserts.deadline = options_.insert_deadline;
    inserts.clock = options_.clock;
    inserts.cluster_clock = &cluster_clock_;
    inserts.held = [this] { return legacy_->Pending(); };
    inserts_ = std::make_unique<InsertApi>(executor_, std::move(inserts), *replication_);
    if (options_.metrics != nullptr) inserts_->AddMetrics(*options_.metrics);
    HealthApiOptions health;
    health.deadline = options_.health_deadline;
    health.data_dir = options_.replication.data_dir;
    health.disk_reserve_bytes = options_.disk_reserve_bytes;
    health.held = [this] { return legacy_->Pending(); };
    health_ =
        std::make_unique<HealthApi>(executor_, std::move(health), *replication_, cluster_clock_);
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
    hooks.write = [this](uint32_t shard, internal::v1::SubBatch part) {
      return inserts_->Write(shard, std::move(part));
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
    const bool idle = inserts_->Stop(wait);
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
        "POST", "/insert",
        [this](http::Request r, http::Target) { return inserts_->Insert(std::move(r)); },
        kFormatOnly);
    router_.Add(
        "POST", "/insert/batch",
        [this](http::Request r, http::Target) { return inserts_->InsertBatch(std::move(r)); },
        kFormatOnly);
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
    registry.AddCollector([this] {
      std::vector<metrics::ScrapedFamily> families = ClockFamilies(cluster_clock_);
      if (inserts_) families.push_back(inserts_->QueueDepths());
      return families;
    });
  }

  asio::awaitable<http::Response> Health(http::Request request) {
    // With tokens, a caller without a valid one learns the status only (docs/operations.md,
    // "Security").
    const bool status_only =
        options_.tokens != nullptr &&
        std::holds_alternative<http::Response>(Authenticate(*options_.tokens, request));
    asio::awaitable<http::Response> answer = health_->Health(std::move(request), status_only);
    co_return co_await std::move(answer);
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

  asio::any_io_executor executor_;
  const ControlOptions options_;
  ClusterClock cluster_clock_;  // stamps every internal write (ShardWriterOptions)
  const ClusterMap listed_;     // --workers, with their ids: the cluster's first members
  std::shared_ptr<const rpc::ClusterKey> cluster_key_;  // null: no cluster secret
  std::unique_ptr<Replication> replication_;            // set by Create
  std::unique_ptr<InsertApi> inserts_;                  // set by Create
  std::unique_ptr<HealthApi> health_;                   // set by Create
  std::unique_ptr<QueryApi> queries_;                   // set by Create
  std::unique_ptr<ClockProbe> clock_probe_;             // set by Create; stopped by Stop()
  std::unique_ptr<LegacyImport> legacy_;                // replicated; stopped by Stop()
  bool serving_said_ = false;  // ControlOptions::serving called (legacy_'s strand)
  http::Router router_;
  std::unique_ptr<metrics::HttpMetrics> http_metrics_;  // with options_.metrics
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
