// The worker's internal API as a request -> response function (no socket for it) over a real
// node store on a temporary directory and a real replica host: one shard, whose only voter is
// this worker, a raft group on a loopback port.
#include "worker/service.h"

#include <chrono>
#include <filesystem>
#include <future>
#include <optional>

#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include "../../free_port.h"
#include "../temp_dir.h"
#include "common/exact_sum.h"
#include "das/v1/internal.pb.h"
#include "one_shard.h"

namespace das::worker {
namespace {

namespace asio = boost::asio;
using internal::v1::SubBatchResult;

constexpr uint64_t kWorker = 7;

class WorkerServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    storage::NodeStoreOptions options;
    options.data_dir = dir_.path();
    Result<std::unique_ptr<storage::NodeStore>> store = storage::NodeStore::Open(options);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(store).value();
    OpenHost();
    ASSERT_EQ(Call("POST", "/internal/v1/topology", Topology().SerializeAsString()).status, 200u);
    ExpectLeader();
  }

  // A replica host (with no topology yet) and the service over it, on this test's directory.
  void OpenHost() {
    service_.reset();
    if (replicas_) replicas_->Close();
    replica::ReplicaHostOptions host;
    host.node_id = kWorker;
    host.data_dir = dir_.path();
    host.listen_host = "127.0.0.1";
    host.raft_port = raft_port_;
    host.store = store_.get();
    host.election_timeout_ms = 100;
    host.heartbeat_timeout_ms = 10;
    replicas_ = replica::ReplicaHost::Create(host);
    WorkerServiceOptions service;
    service.worker_id = kWorker;
    service.data_dir = dir_.path();
    service_ = std::make_unique<WorkerService>(*replicas_, *store_, service);
  }

  internal::v1::TopologyRequest Topology() const {
    return OneShardTopology(kWorker, raft_port_, 42);
  }

  // A shard's only voter elects itself as its group starts (libraft's self-election), and the
  // group has started once its replica opened: it leads as soon as the topology is adopted.
  void ExpectLeader() {
    const internal::v1::WorkerHealthResponse health = Health();
    ASSERT_EQ(health.replicas_size(), 1);
    EXPECT_EQ(health.replicas(0).role(), "leader") << health.ShortDebugString();
  }

  void TearDown() override {
    service_.reset();
    replicas_->Close();
    store_->Stop();
  }

  http::Response Call(std::string method, std::string target, std::string body = "") {
    http::Request request;
    request.method = std::move(method);
    request.target = std::move(target);
    request.body = std::move(body);
    auto future = asio::co_spawn(io_, service_->Handle(std::move(request)), asio::use_future);
    io_.restart();
    io_.run();
    return future.get();
  }

  internal::v1::WorkerHealthResponse Health() {
    internal::v1::WorkerHealthResponse health;
    EXPECT_TRUE(health.ParseFromString(Call("GET", "/internal/v1/health").body));
    return health;
  }

  // A write of shard 0.
  http::Response Write(internal::v1::WriteRequest request) {
    request.set_shard(0);
    request.set_request_id(++request_id_);
    return Call("POST", "/internal/v1/write", request.SerializeAsString());
  }

  internal::v1::WriteResponse Written(internal::v1::WriteRequest request) {
    http::Response r = Write(std::move(request));
    EXPECT_EQ(r.status, 200u) << r.body;
    internal::v1::WriteResponse response;
    EXPECT_TRUE(response.ParseFromString(r.body));
    return response;
  }

  // Shard 0's count, sum, min and max, read at its leader by an unfiltered query (which the
  // running aggregate answers).
  struct Figures {
    uint64_t count = 0;
    double sum = 0;
    std::optional<double> min;
    std::optional<double> max;
    uint32_t worker_id = 0;
  };
  Figures Aggregate() {
    internal::v1::ShardQuery query;
    query.set_shard(0);
    http::Response r = Call("POST", "/internal/v1/query", query.SerializeAsString());
    EXPECT_EQ(r.status, 200u);
    internal::v1::ShardQueryResponse answer;
    EXPECT_TRUE(answer.ParseFromString(r.body));
    Figures figures;
    figures.worker_id = answer.worker_id();
    EXPECT_LE(answer.rows_size(), 1);  // one bucket, none when empty
    for (const internal::v1::ShardQueryRow& row : answer.rows()) {
      figures.count = row.count();
      figures.sum = ExactSum::FromBytes(row.exact_sum()).value_or(ExactSum()).Value();
      figures.min = row.min();
      figures.max = row.max();
    }
    return figures;
  }

  static internal::v1::ErrorStatus ErrorOf(const http::Response& r, unsigned status) {
    EXPECT_EQ(r.status, status);
    EXPECT_EQ(r.content_type, "application/x-protobuf");
    internal::v1::ErrorStatus error;
    EXPECT_TRUE(error.ParseFromString(r.body));
    return error;
  }

  static void AddRow(internal::v1::SubBatch* batch, std::string key, double value) {
    internal::v1::RowWire* row = batch->add_rows();
    row->set_partition_key(std::move(key));
    row->set_value(value);
  }

  TempDir dir_{"das-worker-service"};
  const uint16_t raft_port_ = static_cast<uint16_t>(test::FreePort());
  asio::io_context io_;
  std::unique_ptr<storage::NodeStore> store_;
  std::unique_ptr<replica::ReplicaHost> replicas_;
  std::unique_ptr<WorkerService> service_;
  uint64_t request_id_ = 0;
};

TEST_F(WorkerServiceTest, BadSubBatchIsRejectedAloneOthersAreStored) {
  internal::v1::WriteRequest request;
  AddRow(request.add_batches(), "a", 1.5);
  internal::v1::SubBatch* bad = request.add_batches();
  AddRow(bad, "b", 2);
  AddRow(bad, "", 3);  // empty key: the whole sub-batch is refused
  internal::v1::SubBatch* keyed = request.add_batches();
  AddRow(keyed, "c", 4);
  keyed->set_idempotency_key("k1");

  internal::v1::WriteResponse response = Written(request);
  ASSERT_EQ(response.results_size(), 3);
  EXPECT_EQ(response.results(0).code(), SubBatchResult::OK);
  EXPECT_EQ(response.results(0).rows_written(), 1u);
  EXPECT_EQ(response.results(1).code(), SubBatchResult::INVALID_ARGUMENT);
  EXPECT_EQ(response.results(1).error(), "partition_key is empty");
  EXPECT_EQ(response.results(2).code(), SubBatchResult::OK);

  const Figures a = Aggregate();
  EXPECT_EQ(a.count, 2u);
  EXPECT_EQ(a.sum, 5.5);
  EXPECT_EQ(a.min, 1.5);
  EXPECT_EQ(a.max, 4);
  EXPECT_EQ(a.worker_id, 7u);
}

TEST_F(WorkerServiceTest, RetriedKeyIsDuplicateWithTheFirstCount) {
  internal::v1::WriteRequest request;
  internal::v1::SubBatch* keyed = request.add_batches();
  AddRow(keyed, "a", 1);
  AddRow(keyed, "b", 2);
  keyed->set_idempotency_key("retry-me");
  EXPECT_EQ(Written(request).results(0).code(), SubBatchResult::OK);
  internal::v1::WriteResponse response = Written(request);
  EXPECT_EQ(response.results(0).code(), SubBatchResult::DUPLICATE);
  EXPECT_EQ(response.results(0).rows_written(), 2u);
  EXPECT_EQ(Aggregate().count, 2u);
}

TEST_F(WorkerServiceTest, EmptyStoreAggregateHasNoMinMax) {
  const Figures a = Aggregate();
  EXPECT_EQ(a.count, 0u);
  EXPECT_FALSE(a.min.has_value());
  EXPECT_FALSE(a.max.has_value());
}

// Every failure carries an ErrorStatus whose code the control node acts on.
TEST_F(WorkerServiceTest, FailuresAnswerAnErrorStatusWithTheirCode) {
  EXPECT_EQ(ErrorOf(Call("POST", "/internal/v1/write", "\xff\xff\xff"), 400).code(),
            internal::v1::ErrorStatus::MALFORMED);
  internal::v1::ErrorStatus unknown = ErrorOf(Call("GET", "/internal/v1/nope"), 404);
  EXPECT_EQ(unknown.code(), internal::v1::ErrorStatus::NOT_FOUND);
  EXPECT_EQ(unknown.message(), "no route /internal/v1/nope");
  http::Response wrong_method = Call("GET", "/internal/v1/write");
  EXPECT_EQ(ErrorOf(wrong_method, 405).message(),
            "method GET is not allowed on /internal/v1/write; use POST");
  EXPECT_EQ(ErrorOf(wrong_method, 405).code(), internal::v1::ErrorStatus::METHOD_NOT_ALLOWED);
  internal::v1::WriteRequest request;
  AddRow(request.add_batches(), "a", 1);
  request.set_shard(5);
  EXPECT_EQ(ErrorOf(Call("POST", "/internal/v1/write", request.SerializeAsString()), 404).code(),
            internal::v1::ErrorStatus::NOT_FOUND);
  replicas_->Close();
  internal::v1::ErrorStatus closed = ErrorOf(Write(request), 503);
  EXPECT_EQ(closed.code(), internal::v1::ErrorStatus::SHUTTING_DOWN) << closed.message();
  // A topology that arrives while the worker stops opens nothing again.
  internal::v1::ErrorStatus adopt =
      ErrorOf(Call("POST", "/internal/v1/topology", Topology().SerializeAsString()), 503);
  EXPECT_EQ(adopt.code(), internal::v1::ErrorStatus::SHUTTING_DOWN) << adopt.message();
  EXPECT_EQ(Health().replicas_size(), 0);
}

// A restarted worker opens the topology it kept (LoadSaved, behind its running server) while the
// control node may send the same one: whichever comes first opens the replica, the other
// changes nothing, and the rows are there.
TEST_F(WorkerServiceTest, TheKeptTopologyAndTheControlNodesOpenTheReplicasOnce) {
  internal::v1::WriteRequest request;
  AddRow(request.add_batches(), "kept", 2.5);
  ASSERT_EQ(Written(request).results(0).code(), SubBatchResult::OK);
  for (const bool control_first : {true, false}) {
    OpenHost();
    if (control_first) {
      ASSERT_EQ(Call("POST", "/internal/v1/topology", Topology().SerializeAsString()).status, 200u);
      ASSERT_TRUE(replicas_->LoadSaved().ok());
    } else {
      ASSERT_TRUE(replicas_->LoadSaved().ok());
      ASSERT_EQ(Call("POST", "/internal/v1/topology", Topology().SerializeAsString()).status, 200u);
    }
    ExpectLeader();
    const Figures a = Aggregate();
    EXPECT_EQ(a.count, 1u) << (control_first ? "control node first" : "kept one first");
    EXPECT_EQ(a.sum, 2.5);
  }
}

// Every row is in a shard replica: a write or a query that names no shard is refused, and the
// unreplicated store's aggregate route is gone.
TEST_F(WorkerServiceTest, WritesAndQueriesNameTheirShard) {
  internal::v1::WriteRequest request;
  AddRow(request.add_batches(), "a", 1);
  internal::v1::ErrorStatus write =
      ErrorOf(Call("POST", "/internal/v1/write", request.SerializeAsString()), 422);
  EXPECT_EQ(write.code(), internal::v1::ErrorStatus::INVALID_ARGUMENT);
  EXPECT_EQ(write.message(),
            "a write names no shard: this worker keeps rows in shard replicas only");
  internal::v1::ErrorStatus query = ErrorOf(
      Call("POST", "/internal/v1/query", internal::v1::ShardQuery().SerializeAsString()), 422);
  EXPECT_EQ(query.code(), internal::v1::ErrorStatus::INVALID_ARGUMENT);
  EXPECT_EQ(ErrorOf(Call("GET", "/internal/v1/aggregate"), 404).code(),
            internal::v1::ErrorStatus::NOT_FOUND);
  EXPECT_EQ(Aggregate().count, 0u);
}

TEST_F(WorkerServiceTest, RowWithoutValueIsRejected) {
  internal::v1::WriteRequest request;
  request.add_batches()->add_rows()->set_partition_key("no-value");
  internal::v1::WriteResponse response = Written(request);
  EXPECT_EQ(response.results(0).code(), SubBatchResult::INVALID_ARGUMENT);
  EXPECT_EQ(response.results(0).error(), "value is required");
  EXPECT_EQ(Aggregate().count, 0u);
}

// A keyed part without rows records the key: a later part with the key and another batch's
// fingerprint is refused, here as on the workers that got rows.
TEST_F(WorkerServiceTest, EmptyKeyedPartRecordsTheKey) {
  internal::v1::WriteRequest first;
  internal::v1::SubBatch* empty = first.add_batches();
  empty->set_idempotency_key("k");
  empty->set_batch_fingerprint(111);
  internal::v1::WriteResponse response = Written(first);
  EXPECT_EQ(response.results(0).code(), SubBatchResult::OK);
  EXPECT_EQ(response.results(0).rows_written(), 0u);

  internal::v1::WriteRequest reuse;
  internal::v1::SubBatch* part = reuse.add_batches();
  AddRow(part, "a", 1);
  part->set_idempotency_key("k");
  part->set_batch_fingerprint(222);
  response = Written(reuse);
  EXPECT_EQ(response.results(0).code(), SubBatchResult::KEY_CONFLICT);
  EXPECT_EQ(Aggregate().count, 0u);

  // A look-up alone (check_only) is decided in the log's order, like a write.
  internal::v1::WriteRequest check;
  internal::v1::SubBatch* look = check.add_batches();
  look->set_idempotency_key("k");
  look->set_batch_fingerprint(222);
  look->set_check_only(true);
  response = Written(check);
  EXPECT_EQ(response.results(0).code(), SubBatchResult::KEY_CONFLICT);
  look->set_batch_fingerprint(111);
  response = Written(check);
  EXPECT_EQ(response.results(0).code(), SubBatchResult::DUPLICATE);
  look->set_idempotency_key("never-seen");
  response = Written(check);
  EXPECT_EQ(response.results(0).code(), SubBatchResult::OK);
}

TEST_F(WorkerServiceTest, HealthReportsRows) {
  internal::v1::WriteRequest request;
  AddRow(request.add_batches(), "a", 1);
  ASSERT_EQ(Written(request).results(0).code(), SubBatchResult::OK);
  EXPECT_EQ(Aggregate().count, 1u);  // applied: the health counts it
  internal::v1::WorkerHealthResponse h = Health();
  EXPECT_EQ(h.worker_id(), 7u);
  EXPECT_EQ(h.rows(), 1u);
  EXPECT_EQ(h.cluster_id(), 42u);
  http::Response human = Call("GET", "/health");
  EXPECT_EQ(human.status, 200u);
  EXPECT_EQ(human.content_type, "application/json");
}

// A replica host whose topology change lasts until the test releases it; its health answers
// at once (one replica of shard 3 with 5 rows). Nothing else is used.
class HeldHost final : public replica::ReplicaHost {
 public:
  std::promise<void> entered;
  std::promise<void> release;

  Status Adopt(const internal::v1::TopologyRequest&) override {
    entered.set_value();
    // Bounded, so that a service that waited for it here fails the test instead of hanging.
    release.get_future().wait_for(std::chrono::seconds(10));
    return Status::Ok();
  }
  void Health(HealthCallback done) override {
    internal::v1::ReplicaHealth health;
    health.set_shard(3);
    health.set_rows(5);
    done({health});
  }
  Status LoadSaved() override { return Status::Ok(); }
  uint64_t cluster_id() const override { return 0; }
  uint64_t epoch() const override { return 0; }
  void ChangeMembership(const internal::v1::MembershipRequest&,
                        std::function<void(Status)> done) override {
    done(Unavailable("not here"));
  }
  void Write(uint32_t, uint64_t, int64_t, const std::vector<const internal::v1::SubBatch*>&,
             storage::WriteCallback done) override {
    done(Unavailable("not here"));
  }
  void ReadWith(uint32_t, std::function<void(Result<storage::Store*>)> ready) override {
    ready(Unavailable("not here"));
  }
  void Transfer(uint32_t, uint64_t, std::function<void(Status)> done) override {
    done(Unavailable("not here"));
  }
  void StartCopy(uint32_t, uint64_t,
                 std::function<void(Result<internal::v1::CopyResponse>)> done) override {
    done(Unavailable("not here"));
  }
  Result<std::string> ReadCopyChunk(uint32_t, uint64_t, uint64_t) override {
    return Unavailable("not here");
  }
  void Close() override {}
};

// The worker serves with one HTTP thread by default: a topology change (which opens and closes
// replicas) runs beside it, so a health check (or a write) is answered while it lasts.
TEST_F(WorkerServiceTest, ATopologyChangeDoesNotHoldTheHttpThread) {
  HeldHost host;
  WorkerServiceOptions options;
  options.worker_id = kWorker;
  service_ = std::make_unique<WorkerService>(host, *store_, options);
  http::Request change;
  change.method = "POST";
  change.target = "/internal/v1/topology";
  change.body = internal::v1::TopologyRequest().SerializeAsString();
  auto adopted = asio::co_spawn(io_, service_->Handle(std::move(change)), asio::use_future);
  http::Request ask;
  ask.method = "GET";
  ask.target = "/internal/v1/health";
  auto health = asio::co_spawn(io_, service_->Handle(std::move(ask)), asio::use_future);
  io_.restart();
  for (int i = 0; i < 1000 && health.wait_for(std::chrono::seconds(0)) != std::future_status::ready;
       ++i) {
    io_.run_one_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(health.wait_for(std::chrono::seconds(0)), std::future_status::ready);
  host.entered.get_future().wait();  // the change is under way, and holds
  EXPECT_NE(adopted.wait_for(std::chrono::seconds(0)), std::future_status::ready);
  internal::v1::WorkerHealthResponse h;
  ASSERT_TRUE(h.ParseFromString(health.get().body));
  EXPECT_EQ(h.rows(), 5u);
  ASSERT_EQ(h.replicas_size(), 1);
  host.release.set_value();
  for (int i = 0;
       i < 1000 && adopted.wait_for(std::chrono::seconds(0)) != std::future_status::ready; ++i) {
    io_.run_one_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(adopted.wait_for(std::chrono::seconds(0)), std::future_status::ready);
  EXPECT_EQ(adopted.get().status, 200u);
  service_.reset();
}

}  // namespace
}  // namespace das::worker
