// ClusterRecord and LoadClusterState without a socket: the workers' clients are made but never
// called, the clock is the test's, and cluster.pb is a real file read back by a new record, as
// a restarted control node reads it. Then the move executor over such a record, its workers at
// ports where nothing listens.
#include "control/cluster_record.h"

#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include "../../free_port.h"
#include "../temp_dir.h"
#include "cluster/membership.h"
#include "control/leader_balancer.h"
#include "control/move_executor.h"
#include "control/saved_state.h"
#include "control/topology_pusher.h"
#include "control/witness_keeper.h"
#include "rpc/topology.h"

namespace das::control {
namespace {

using internal::v1::ReplicaMove;
using internal::v1::WorkerHealthResponse;
using TimePoint = std::chrono::steady_clock::time_point;

constexpr uint64_t kW = rpc::kWitnessNodeId;

class ClusterRecordTest : public testing::Test {
 protected:
  ClusterRecordTest() {
    options_.replication_factor = 3;
    options_.shards = 4;
    options_.state_path = dir_.path() + "/cluster.pb";
    options_.witness_address = "127.0.0.1:9900";
    options_.dead_worker_after = std::chrono::seconds(300);
  }

  // A record of what options_.state_path keeps (or of `workers`' plan with none), as a
  // (re)started control node makes it.
  void Open(const std::vector<WorkerInfo>& workers = {}) {
    record_.reset();
    Result<LoadedState> loaded = LoadClusterState(options_, workers);
    ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
    directory_ = std::make_unique<WorkerDirectory>([this](const std::string& address) {
      const size_t colon = address.rfind(':');
      return rpc::WorkerClient::Create(
          io_.get_executor(),
          rpc::WorkerClientOptions{address.substr(0, colon),
                                   static_cast<uint16_t>(std::stoi(address.substr(colon + 1))), 1,
                                   nullptr});
    });
    record_ = std::make_unique<ClusterRecord>(
        options_, std::move(loaded->state), loaded->formed, *directory_,
        [this](const internal::v1::Topology& topology) { changed_.push_back(topology.epoch()); },
        [this] { return now_; });
  }

  void Join(uint64_t id, uint16_t port) {
    internal::v1::JoinRequest request;
    request.set_node_id(id);
    request.set_http_address("127.0.0.1:" + std::to_string(port));
    request.set_raft_port(static_cast<uint32_t>(port + 100));
    Result<internal::v1::JoinResponse> joined = record_->Join(request);
    ASSERT_TRUE(joined.ok()) << joined.status().ToString();
  }

  // Workers 1 and 2 join and form the cluster (with the witness: two workers, factor 3).
  void Form(uint16_t port1 = 9001, uint16_t port2 = 9002) {
    Open();
    Join(1, port1);
    EXPECT_FALSE(record_->Form({}));  // one worker is not enough
    Join(2, port2);
    ASSERT_TRUE(record_->Form({}));
  }

  // Every shard led by its preferred worker, which reports nothing else.
  std::vector<cluster::ShardView> LedViews() const {
    std::vector<cluster::ShardView> views;
    const internal::v1::Topology topology = record_->topology();
    for (const internal::v1::ShardPlacement& p : topology.placements()) {
      cluster::ShardView& view = views.emplace_back();
      view.leader = p.preferred_leader();
      view.reports[view.leader] = internal::v1::ReplicaHealth();
    }
    return views;
  }

  // Whether `node` is joining `shard` in the record's topology.
  bool Joining(uint32_t shard, uint64_t node) const {
    const internal::v1::Topology topology = record_->topology();
    return cluster::Contains(topology.placements(static_cast<int>(shard)).joining(), node);
  }

  static Result<WorkerHealthResponse> Answer(uint64_t cluster_id, uint64_t epoch) {
    WorkerHealthResponse health;
    health.set_cluster_id(cluster_id);
    health.set_epoch(epoch);
    return health;
  }

  TempDir dir_{"das_cluster_record"};
  boost::asio::io_context io_;
  RecordOptions options_;
  TimePoint now_ = TimePoint() + std::chrono::hours(1);
  std::vector<uint64_t> changed_;  // the epochs placements_changed saw
  std::unique_ptr<WorkerDirectory> directory_;
  std::unique_ptr<ClusterRecord> record_;
};

TEST_F(ClusterRecordTest, TheFirstWorkersThatJoinFormTheClusterAndItIsKept) {
  Form();
  const internal::v1::Topology formed = record_->topology();
  EXPECT_NE(formed.cluster_id(), 0u);
  EXPECT_EQ(formed.placements_size(), 4);
  EXPECT_NE(rpc::FindNode(formed, kW), nullptr);
  EXPECT_EQ(changed_.size(), 1u);  // the shards' leaders learnt their replicas
  EXPECT_EQ(directory_->size(), 2u);

  Open();  // a restart reads cluster.pb
  EXPECT_TRUE(record_->formed());
  EXPECT_EQ(record_->topology().SerializeAsString(), formed.SerializeAsString());
  EXPECT_EQ(directory_->size(), 2u);
}

TEST_F(ClusterRecordTest, AWorkerListFormsOnceEveryRaftPortIsKnown) {
  const std::vector<WorkerInfo> workers = {{1, {"127.0.0.1", 9001}}, {2, {"127.0.0.1", 9002}}};
  Open(workers);
  EXPECT_FALSE(record_->formed());
  WorkerHealthResponse one;
  one.set_worker_id(1);
  one.set_raft_port(9101);
  cluster::HealthMap health;
  health.emplace(1, one);
  health.emplace(2, Unavailable("not yet"));
  EXPECT_FALSE(record_->Form(health));
  EXPECT_FALSE(std::ifstream(options_.state_path).good());
  WorkerHealthResponse two = one;
  two.set_worker_id(2);
  two.set_raft_port(9102);
  health.insert_or_assign(2, two);
  ASSERT_TRUE(record_->Form(health));
  EXPECT_EQ(rpc::FindNode(record_->topology(), 2)->raft_address(), "127.0.0.1:9102");
  Open(workers);
  EXPECT_TRUE(record_->formed());
}

TEST_F(ClusterRecordTest, AWorkerGetsTheTopologyUntilItHoldsTheCurrentEpoch) {
  Form();
  const uint64_t cluster = record_->topology().cluster_id();
  const uint64_t epoch = record_->epoch();
  EXPECT_TRUE(record_->NeedsTopology(1, Answer(0, 0)));
  EXPECT_TRUE(record_->NeedsTopology(1, Unavailable("down")));  // never adopted: tried anyway
  EXPECT_FALSE(record_->Settled());
  record_->NoteAdopted(1, epoch);
  record_->NoteAdopted(2, epoch);
  EXPECT_FALSE(record_->NeedsTopology(1, Answer(cluster, epoch)));
  EXPECT_FALSE(record_->NeedsTopology(1, Unavailable("down")));  // at a later tick
  // It says it holds an older epoch than it adopted: it lost it, and is sent it again.
  EXPECT_TRUE(record_->NeedsTopology(1, Answer(cluster, epoch - 1)));
  // It holds another cluster now: its data directory was replaced; not given this one.
  EXPECT_FALSE(record_->NeedsTopology(1, Answer(cluster + 1, 0)));
  record_->NoteAdopted(1, epoch - 1);  // an older answer arriving late changes nothing
  EXPECT_FALSE(record_->NeedsTopology(1, Answer(cluster, epoch)));
  EXPECT_FALSE(record_->CurrentOrNextMove());  // two workers and the witness: balanced
  EXPECT_TRUE(record_->Settled());
  Open();
  EXPECT_TRUE(record_->Settled());
  EXPECT_FALSE(record_->NeedsTopology(2, Answer(cluster, epoch)));  // adoption is kept
}

TEST_F(ClusterRecordTest, AWorkerSilentTooLongIsDeadUntilItAnswers) {
  Form();
  EXPECT_EQ(record_->WorkerStateName(1), "active");
  cluster::HealthMap health;
  health.emplace(1, WorkerHealthResponse());
  health.emplace(2, Unavailable("down"));
  record_->NoteAlive(health, true);
  // Worker 2 did not answer: a read that did not need it does not count it.
  EXPECT_EQ(record_->RespondingWorkers({}, {}), 1u);
  EXPECT_EQ(record_->RespondingWorkers({2}, {}), 2u);
  EXPECT_EQ(record_->RespondingWorkers({}, {1}), 0u);
  now_ += options_.dead_worker_after;
  EXPECT_EQ(record_->WorkerStateName(2), "active");  // not yet past the bound
  now_ += std::chrono::seconds(1);
  EXPECT_EQ(record_->WorkerStateName(2), "dead");
  EXPECT_EQ(record_->WorkerStateName(1), "dead");  // its answer was as long ago
  record_->NoteAlive(health, false);               // a /health's failures do not count
  EXPECT_EQ(record_->WorkerStateName(1), "active");
  EXPECT_EQ(record_->WorkerStateName(2), "dead");
}

TEST_F(ClusterRecordTest, APlannedMoveIsKeptAndARestartedNodeCarriesItOn) {
  Form();
  Join(3, 9003);  // a third worker: the witness's votes move to it
  const std::optional<ReplicaMove> move = record_->CurrentOrNextMove();
  ASSERT_TRUE(move);
  EXPECT_EQ(move->kind(), ReplicaMove::REPLACE);
  EXPECT_EQ(move->from(), kW);
  EXPECT_EQ(move->to(), 3u);
  EXPECT_EQ(record_->MovingShard(), move->shard());
  das::v1::Rebalance rebalance;
  record_->DescribeRebalance(rebalance);
  EXPECT_NE(rebalance.current_move().find("worker-3"), std::string::npos)
      << rebalance.current_move();
  EXPECT_GE(rebalance.moves_pending(), 4u);  // every shard's witness replica
  EXPECT_FALSE(rebalance.balanced());

  const uint64_t epoch = record_->epoch();
  const size_t changes = changed_.size();
  const ClusterRecord::PlannedStep announce = record_->PlanStep(LedViews());
  EXPECT_EQ(announce.step.effect, cluster::MoveEffect::kAnnounced);
  EXPECT_EQ(announce.step.io, cluster::MoveIo::kNone);
  EXPECT_TRUE(record_->KeepStep(announce).advanced);
  EXPECT_EQ(record_->epoch(), epoch + 1);
  EXPECT_EQ(changed_.size(), changes + 1);
  EXPECT_TRUE(Joining(move->shard(), 3));

  Open();  // a restart finds the move at its next stage
  const std::optional<ReplicaMove> kept = record_->CurrentOrNextMove();
  ASSERT_TRUE(kept);
  EXPECT_EQ(kept->shard(), move->shard());
  EXPECT_EQ(kept->stage(), cluster::kAddSpare);
  const ClusterRecord::PlannedStep spare = record_->PlanStep(LedViews());
  EXPECT_EQ(spare.step.hold_epoch, 3u);  // worker 3 must hold the epoch that names it first
  EXPECT_EQ(spare.step.io, cluster::MoveIo::kMembership);

  // Worker 3 goes silent for too long before it votes: the move is rolled back.
  now_ += options_.dead_worker_after + std::chrono::seconds(1);
  cluster::HealthMap alive;
  alive.emplace(1, WorkerHealthResponse());
  alive.emplace(2, WorkerHealthResponse());
  record_->NoteAlive(alive, true);
  const ClusterRecord::PlannedStep back = record_->PlanStep(LedViews());
  EXPECT_EQ(back.step.effect, cluster::MoveEffect::kRolledBack);
  EXPECT_EQ(back.step.membership.op(), internal::v1::MembershipRequest::REMOVE);
  EXPECT_EQ(back.step.membership.node_id(), 3u);
  record_->KeepStep(back);
  EXPECT_FALSE(Joining(move->shard(), 3));
}

TEST_F(ClusterRecordTest, ADecommissionedWorkerWithNoReplicaLeaves) {
  Form();
  Join(3, 9003);
  EXPECT_EQ(record_->Decommission(77).code(), StatusCode::kNotFound);
  ASSERT_TRUE(record_->Decommission(3).ok());
  EXPECT_TRUE(record_->Decommission(3).ok());  // again: nothing more
  EXPECT_EQ(record_->WorkerStateName(3), "draining");
  // Worker 3 holds no replica yet: the next plan lets it leave, and plans nothing for it.
  EXPECT_FALSE(record_->CurrentOrNextMove());
  EXPECT_EQ(directory_->size(), 2u);
  EXPECT_EQ(record_->WorkerStateName(3), "dead");
  Open();
  EXPECT_EQ(directory_->size(), 2u);  // departed for good
  internal::v1::JoinRequest again;
  again.set_node_id(3);
  again.set_http_address("127.0.0.1:9003");
  again.set_raft_port(9103);
  EXPECT_EQ(record_->Join(again).status().code(), StatusCode::kNotFound);
}

TEST_F(ClusterRecordTest, TheMapFollowsAGroupThatChangedItsVotersAndKeepsIt) {
  Form();
  Join(3, 9003);
  const uint64_t epoch = record_->epoch();
  std::vector<cluster::ShardView> views = LedViews();
  internal::v1::ReplicaHealth& report = views[0].reports[views[0].leader];
  for (uint64_t v : {uint64_t{1}, uint64_t{2}, uint64_t{3}}) {
    internal::v1::GroupMember& m = *report.add_members();
    m.set_node_id(v);
    m.set_role(internal::v1::GroupMember::VOTER);
  }
  const size_t changes = changed_.size();
  record_->FollowGroups(views);
  EXPECT_EQ(record_->epoch(), epoch + 1);
  EXPECT_EQ(changed_.size(), changes + 1);
  Open();
  const internal::v1::Topology topology = record_->topology();
  const auto& voters = topology.placements(0).voters();
  EXPECT_EQ(std::vector<uint64_t>(voters.begin(), voters.end()), (std::vector<uint64_t>{1, 2, 3}));
}

TEST_F(ClusterRecordTest, WithoutReplicationThereIsNoMembership) {
  options_.replication_factor = 1;
  Open({{1, {"127.0.0.1", 9001}}});
  internal::v1::JoinRequest request;
  request.set_http_address("127.0.0.1:9002");
  request.set_raft_port(9102);
  EXPECT_EQ(record_->Join(request).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(record_->Decommission(1).code(), StatusCode::kFailedPrecondition);
}

TEST_F(ClusterRecordTest, ASavedClusterOfOtherFlagsIsRefused) {
  Form();
  const std::vector<WorkerInfo> none;
  RecordOptions other = options_;
  other.shards = 8;
  EXPECT_EQ(LoadClusterState(other, none).status().code(), StatusCode::kInvalidArgument);
  other = options_;
  other.replication_factor = 5;
  EXPECT_EQ(LoadClusterState(other, none).status().code(), StatusCode::kInvalidArgument);
  other = options_;
  other.witness_address = "127.0.0.1:9901";
  const Status moved = LoadClusterState(other, none).status();
  EXPECT_EQ(moved.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(moved.message().find("--raft-port"), std::string::npos) << moved.message();
  // A listed worker the saved cluster does not hold at that address.
  const Status elsewhere = LoadClusterState(options_, {{1, {"127.0.0.1", 9555}}}).status();
  EXPECT_EQ(elsewhere.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(elsewhere.message().find("127.0.0.1:9555"), std::string::npos) << elsewhere.message();
  EXPECT_TRUE(LoadClusterState(options_, {{1, {"127.0.0.1", 9001}}}).ok());

  std::ofstream(options_.state_path, std::ios::trunc) << "\xff\xff\xff";
  EXPECT_EQ(LoadClusterState(options_, none).status().code(), StatusCode::kInternal);
}

// The move executor keeps a step only once its I/O succeeded: here every worker's port refuses
// connections (nothing listens there), so a step that needs a worker changes nothing.
class MoveExecutorTest : public ClusterRecordTest {
 protected:
  uint16_t Refusing() { return static_cast<uint16_t>(test::FreePort()); }

  // One tick's rebalance with `views`, to its end.
  void Rebalance(const std::vector<cluster::ShardView>& views) {
    std::vector<std::unique_ptr<ShardLeader>> leaders;
    for (uint32_t s = 0; s < options_.shards; ++s) {
      leaders.push_back(std::make_unique<ShardLeader>(io_.get_executor(), s,
                                                      std::vector<uint64_t>{1, 2}, *directory_));
    }
    std::atomic<bool> stopping{false};
    TopologyPusher pusher(io_.get_executor(), *record_, *directory_);
    WitnessKeeper witness(WitnessOptions{});  // never opened: no move here goes to it
    LeaderBalancer balancer(io_.get_executor(), leaders, *directory_, stopping);
    MoveExecutor moves({*record_, *directory_, leaders, pusher, witness, balancer, stopping});
    auto done = boost::asio::co_spawn(io_, moves.Rebalance(views), boost::asio::use_future);
    io_.restart();
    io_.run();
    done.get();
  }

  // What cluster.pb holds now.
  internal::v1::ControlState Saved() const {
    internal::v1::ControlState state;
    std::ifstream file(options_.state_path, std::ios::binary);
    EXPECT_TRUE(state.ParseFromIstream(&file));
    return state;
  }
  std::optional<ReplicaMove> Move() const {
    const internal::v1::ControlState state = Saved();
    if (state.move().kind() == ReplicaMove::NONE) return std::nullopt;
    return state.move();
  }
};

TEST_F(MoveExecutorTest, AStepWhoseWorkerCannotBeReachedIsNotKept) {
  Form(Refusing(), Refusing());
  Join(3, Refusing());
  const std::optional<ReplicaMove> planned = record_->CurrentOrNextMove();
  ASSERT_TRUE(planned);
  const uint64_t epoch = record_->epoch();

  // The announcement needs no I/O and is kept; the spare needs worker 3 to hold the epoch that
  // names it, and the push to it is refused: the move waits at that stage.
  Rebalance(LedViews());
  std::optional<ReplicaMove> move = Move();
  ASSERT_TRUE(move);
  EXPECT_EQ(move->shard(), planned->shard());
  EXPECT_EQ(move->stage(), cluster::kAddSpare);
  EXPECT_EQ(Saved().topology().epoch(), epoch + 1);
  EXPECT_EQ(Saved().adopted_epochs().count(3), 0u);

  // Again, and again: nothing more is kept while the worker cannot be reached.
  Rebalance(LedViews());
  move = Move();
  ASSERT_TRUE(move);
  EXPECT_EQ(move->stage(), cluster::kAddSpare);
  EXPECT_EQ(Saved().topology().epoch(), epoch + 1);

  // A shard without a data leader this tick: no step is even tried.
  std::vector<cluster::ShardView> leaderless = LedViews();
  leaderless[0].leader = 0;
  const std::string before = Saved().SerializeAsString();
  Rebalance(leaderless);
  EXPECT_EQ(Saved().SerializeAsString(), before);
}

}  // namespace
}  // namespace das::control
