// ShardViews: each shard's replicas' reports, its leader (the highest term's) and commit index.
#include "cluster/shard_view.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace das::cluster
