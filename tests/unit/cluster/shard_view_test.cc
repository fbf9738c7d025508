// ShardViews: each shard's replicas' reports, its leader (the highest term's) and commit index.
#include "cluster/shard_view.h"

#include <gtest/gtest.h>

#include "cluster/topology_plan.h"
#include "rpc/topology.h"

namespace das::cluster {
namespace {

using internal::v1::ReplicaHealth;

ReplicaHealth Report(uint32_t shard, const std::string& role, uint64_t term, uint64_t commit) {
  ReplicaHealth report;
  report.set_shard(shard);
  report.set_role(role);
  report.set_term(term);
  report.set_commit_index(commit);
  return report;
}

internal::v1::WorkerHealthResponse Worker(std::vector<ReplicaHealth> replicas) {
  internal::v1::WorkerHealthResponse health;
  for (ReplicaHealth& r : replicas) *health.add_replicas() = std::move(r);
  return health;
}

TEST(ShardViewsTest, TheLeaderOfTheHighestTermLeadsAndEveryReportIsKept) {
  HealthMap health;
  // Worker 1 still thinks it leads shard 0 in term 3; worker 2 leads it in term 4.
  health.emplace(1, Worker({Report(0, "leader", 3, 10), Report(1, "follower", 2, 7)}));
  health.emplace(2, Worker({Report(0, "leader", 4, 12), Report(1, "leader", 2, 8)}));
  health.emplace(3, Unavailable("down"));  // says nothing
  const std::vector<ShardView> views = ShardViews(2, health, {Report(1, "follower", 5, 0)});
  ASSERT_EQ(views.size(), 2u);
  EXPECT_EQ(views[0].leader, 2u);
  EXPECT_EQ(views[0].term, 4u);
  EXPECT_EQ(views[0].commit_index, 12u);
  EXPECT_EQ(views[0].reports.size(), 2u);
  EXPECT_EQ(views[1].leader, 2u);
  EXPECT_EQ(views[1].commit_index, 8u);
  // The witness's later term is the shard's term (an election may be running).
  EXPECT_EQ(views[1].term, 5u);
  EXPECT_EQ(views[1].reports.count(rpc::kWitnessNodeId), 1u);
  EXPECT_FALSE(EveryShardLedByData(ShardViews(3, health, {})));  // shard 2: no leader
  EXPECT_TRUE(EveryShardLedByData(views));
}

TEST(ShardViewsTest, AShardLedByTheWitnessOrNobodyIsNotLedByData) {
  HealthMap health;
  health.emplace(1, Worker({Report(0, "follower", 2, 5), Report(7, "leader", 1, 1)}));
  const std::vector<ShardView> views = ShardViews(1, health, {Report(0, "leader", 2, 5)});
  ASSERT_EQ(views.size(), 1u);  // shard 7 is past the last: ignored
  EXPECT_EQ(views[0].leader, rpc::kWitnessNodeId);
  EXPECT_FALSE(EveryShardLedByData(views));
  EXPECT_FALSE(EveryShardLedByData({ShardView{}}));
}

// One voter a shard: a shard nobody reports on (its worker is down) is not waited for, one that
// is reported but not led is, and nothing led at all is not ready.
TEST(ShardViewsTest, EveryReachableShardLedSkipsShardsNobodyReportsOn) {
  HealthMap health;
  health.emplace(1, Worker({Report(0, "leader", 2, 5), Report(2, "leader", 2, 3)}));
  health.emplace(2, Unavailable("down"));  // holds shards 1 and 3
  EXPECT_TRUE(EveryReachableShardLed(ShardViews(4, health, {})));
  EXPECT_FALSE(EveryShardLedByData(ShardViews(4, health, {})));
  health.insert_or_assign(1, Worker({Report(0, "leader", 2, 5), Report(2, "candidate", 3, 3)}));
  EXPECT_FALSE(EveryReachableShardLed(ShardViews(4, health, {})));
  EXPECT_FALSE(EveryReachableShardLed(ShardViews(4, HealthMap{}, {})));
}

// A placement of shard 2 over slots [512, 768) with voters 1, 2 and the witness, node 3 joining.
internal::v1::ShardPlacement Placement() {
  internal::v1::ShardPlacement placement;
  placement.set_shard(2);
  placement.set_first_slot(512);
  placement.set_end_slot(768);
  placement.add_voters(1);
  placement.add_voters(2);
  placement.add_voters(rpc::kWitnessNodeId);
  placement.add_joining(3);
  return placement;
}

ReplicaHealth Stored(uint32_t shard, const std::string& role, uint64_t term, uint64_t commit,
                     uint64_t stored) {
  ReplicaHealth report = Report(shard, role, term, commit);
  report.set_applied_index(stored);
  report.set_stored_index(stored);
  return report;
}

// What /health says of a shard: every voter and the joining replica, and healthy only while a
// data replica leads and every voter is live and caught up.
TEST(DescribeShardTest, AShardIsHealthyWhileADataReplicaLeadsAndEveryVoterIsCaughtUp) {
  HealthMap health;
  health.emplace(1, Worker({Stored(2, "leader", 4, 100, 100)}));
  health.emplace(2, Worker({Stored(2, "follower", 4, 100, 90)}));
  health.emplace(3, Worker({Stored(2, "spare", 4, 100, 0)}));
  const std::vector<ReplicaHealth> witness{Stored(2, "follower", 4, 100, 100)};
  das::v1::ShardStatus shard = DescribeShard(Placement(), ShardViews(3, health, witness)[2]);
  EXPECT_EQ(shard.shard(), 2u);
  EXPECT_EQ(shard.first_slot(), 512u);
  EXPECT_EQ(shard.end_slot(), 768u);
  EXPECT_EQ(shard.leader(), rpc::NodeName(1));
  EXPECT_EQ(shard.term(), 4u);
  EXPECT_EQ(shard.commit_index(), 100u);
  ASSERT_EQ(shard.replicas_size(), 4);
  EXPECT_EQ(shard.replicas(1).node(), rpc::NodeName(2));
  EXPECT_EQ(shard.replicas(1).applied_index(), 90u);
  EXPECT_TRUE(shard.replicas(1).live());
  EXPECT_EQ(shard.replicas(3).node(), rpc::NodeName(3));
  EXPECT_EQ(shard.replicas(3).role(), "joining spare");
  EXPECT_TRUE(shard.healthy());  // 10 entries behind is caught up; a joining replica not counted

  // A voter too far behind, then one that did not report, then the witness leading.
  health.insert_or_assign(2, Worker({Stored(2, "follower", 4, 100, 100 - kCaughtUpEntries - 1)}));
  EXPECT_FALSE(DescribeShard(Placement(), ShardViews(3, health, witness)[2]).healthy());
  health.insert_or_assign(2, Unavailable("down"));
  shard = DescribeShard(Placement(), ShardViews(3, health, witness)[2]);
  EXPECT_EQ(shard.replicas(1).role(), "unavailable");
  EXPECT_FALSE(shard.healthy());
  health.insert_or_assign(1, Worker({Stored(2, "follower", 5, 100, 100)}));
  health.insert_or_assign(2, Worker({Stored(2, "follower", 5, 100, 100)}));
  health.erase(3);
  shard = DescribeShard(Placement(), ShardViews(3, health, {Stored(2, "leader", 5, 101, 101)})[2]);
  EXPECT_EQ(shard.leader(), rpc::NodeName(rpc::kWitnessNodeId));
  EXPECT_EQ(shard.replicas(3).role(), "joining");
  EXPECT_FALSE(shard.healthy());
}

}  // namespace
}  // namespace das::cluster
