// The rebalancer's plan (meta/plan.h), run to its end from the cluster shapes the membership work
// meets: every step keeps each shard's voters at or above what they were, and the end state is
// the target (replication factor on distinct active workers, the witness only with two
// workers, replicas and leaders even).
#include "meta/plan.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>

namespace das::meta {
namespace {

constexpr uint64_t kWitness = 1ull << 32;

// 16 shards on workers 1 and 2 and the witness, shard s led by worker (s % 2) + 1: what a
// two-worker cluster forms today.
ClusterView TwoWorkersAndWitness() {
  ClusterView view;
  view.replication_factor = 3;
  view.witness_id = kWitness;
  view.workers = {{1, WorkerState::kActive}, {2, WorkerState::kActive}};
  for (uint32_t s = 0; s < 16; ++s) view.shards.push_back({s, {1, 2, kWitness}, s % 2 + 1});
  return view;
}

// Runs the plan until it has nothing left to do, checking every step; returns the end state.
ClusterView RunToEnd(ClusterView view, std::vector<Move>* moves = nullptr) {
  for (int step = 0; step < 1000; ++step) {
    std::optional<Move> move = NextMove(view);
    if (!move) return view;
    if (moves) moves->push_back(*move);
    const ClusterView next = Apply(view, *move);
    for (size_t i = 0; i < view.shards.size(); ++i) {
      EXPECT_GE(next.shards[i].voters.size(), std::min<size_t>(view.shards[i].voters.size(), 3))
          << "step " << step << " took a voter from shard " << i;
      std::set<uint64_t> distinct(next.shards[i].voters.begin(), next.shards[i].voters.end());
      EXPECT_EQ(distinct.size(), next.shards[i].voters.size()) << "a worker twice in a shard";
    }
    view = next;
  }
  ADD_FAILURE() << "the plan does not converge";
  return view;
}

std::map<uint64_t, int> Replicas(const ClusterView& view) {
  std::map<uint64_t, int> count;
  for (const ShardReplicas& s : view.shards) {
    for (uint64_t v : s.voters) ++count[v];
  }
  return count;
}

std::map<uint64_t, int> Leaders(const ClusterView& view) {
  std::map<uint64_t, int> count;
  for (const ShardReplicas& s : view.shards) ++count[s.leader];
  return count;
}

TEST(PlanTest, AStableTwoWorkerClusterNeedsNoMove) {
  EXPECT_EQ(NextMove(TwoWorkersAndWitness()), std::nullopt);
  const Target target = TargetOf(TwoWorkersAndWitness());
  EXPECT_EQ(target.data_replicas, 2u);
  EXPECT_TRUE(target.witness);
}

TEST(PlanTest, AThirdWorkerReplacesTheWitnessEverywhereAndTakesItsShareOfLeaders) {
  ClusterView view = TwoWorkersAndWitness();
  view.workers.push_back({3, WorkerState::kActive});
  std::vector<Move> moves;
  const ClusterView end = RunToEnd(view, &moves);
  // The first move replaces the witness of shard 0 by the new worker, one replica at a time.
  ASSERT_FALSE(moves.empty());
  EXPECT_EQ(moves.front(), (Move{Move::Kind::kReplace, 0, kWitness, 3, ""}));
  EXPECT_EQ(Replicas(end), (std::map<uint64_t, int>{{1, 16}, {2, 16}, {3, 16}}));
  for (const auto& [worker, led] : Leaders(end)) {
    EXPECT_NE(worker, kWitness);
    EXPECT_GE(led, 5) << worker;
    EXPECT_LE(led, 6) << worker;
  }
  EXPECT_EQ(NextMove(end), std::nullopt);
}

TEST(PlanTest, AFourthWorkerEvensOutReplicasWithinOne) {
  ClusterView view = RunToEnd([] {
    ClusterView v = TwoWorkersAndWitness();
    v.workers.push_back({3, WorkerState::kActive});
    return v;
  }());
  view.workers.push_back({4, WorkerState::kActive});
  const ClusterView end = RunToEnd(view);
  EXPECT_EQ(Replicas(end), (std::map<uint64_t, int>{{1, 12}, {2, 12}, {3, 12}, {4, 12}}));
  for (const ShardReplicas& s : end.shards) EXPECT_EQ(s.voters.size(), 3u);
  for (const auto& [worker, led] : Leaders(end)) EXPECT_EQ(led, 4) << worker;
}

TEST(PlanTest, ADrainedWorkerEndsWithNothingAndTheWitnessComesBackWhenTwoRemain) {
  ClusterView three = TwoWorkersAndWitness();
  three.workers.push_back({3, WorkerState::kActive});
  three = RunToEnd(three);
  three.workers[1].state = WorkerState::kDraining;  // worker 2
  const ClusterView end = RunToEnd(three);
  EXPECT_EQ(Replicas(end), (std::map<uint64_t, int>{{1, 16}, {3, 16}, {kWitness, 16}}));
  for (const ShardReplicas& s : end.shards) {
    EXPECT_NE(s.leader, 2u);
    EXPECT_NE(s.leader, kWitness);
  }
}

TEST(PlanTest, ADeadWorkersReplicasAreRecreatedWhereThereIsRoomOnly) {
  ClusterView four = TwoWorkersAndWitness();
  four.workers.push_back({3, WorkerState::kActive});
  four.workers.push_back({4, WorkerState::kActive});
  four = RunToEnd(four);
  four.workers[3].state = WorkerState::kDead;  // worker 4
  const ClusterView end = RunToEnd(four);
  EXPECT_EQ(Replicas(end), (std::map<uint64_t, int>{{1, 16}, {2, 16}, {3, 16}}));

  // With three workers and one dead there is no free worker: its votes go to the witness, so
  // every shard again has three live voters, and it keeps its replicas until they are moved.
  ClusterView three = TwoWorkersAndWitness();
  three.workers.push_back({3, WorkerState::kActive});
  three = RunToEnd(three);
  three.workers[2].state = WorkerState::kDead;
  const ClusterView after = RunToEnd(three);
  EXPECT_EQ(Replicas(after), (std::map<uint64_t, int>{{1, 16}, {2, 16}, {kWitness, 16}}));
}

TEST(PlanTest, UnderReplicatedShardsGetReplicasFirstAndTooFewWorkersMeansWaiting) {
  ClusterView view;
  view.replication_factor = 3;
  view.witness_id = kWitness;
  view.workers = {{1, WorkerState::kActive}, {2, WorkerState::kActive}, {3, WorkerState::kActive}};
  view.shards = {{0, {1, 2, 3}, 1}, {1, {2}, 2}, {2, {1, 3}, 3}};
  const std::optional<Move> first = NextMove(view);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->kind, Move::Kind::kAdd);
  EXPECT_EQ(first->shard, 1u);  // the one with fewest voters
  const ClusterView end = RunToEnd(view);
  for (const ShardReplicas& s : end.shards) EXPECT_EQ(s.voters.size(), 3u);

  ClusterView alone;
  alone.replication_factor = 3;
  alone.witness_id = kWitness;
  alone.workers = {{1, WorkerState::kActive}};
  alone.shards = {{0, {1}, 1}};
  EXPECT_EQ(NextMove(alone), std::nullopt);  // nothing can be done until workers join
}

TEST(PlanTest, ALeaderOnTheWitnessOrADrainedWorkerIsMovedToADataReplica) {
  ClusterView view = TwoWorkersAndWitness();
  view.shards[3].leader = kWitness;
  const std::optional<Move> move = NextMove(view);
  ASSERT_TRUE(move);
  EXPECT_EQ(move->kind, Move::Kind::kTransfer);
  EXPECT_EQ(move->shard, 3u);
  EXPECT_EQ(move->from, kWitness);
  EXPECT_NE(move->to, kWitness);
}

TEST(PlanTest, TheSameViewGivesTheSameMove) {
  ClusterView view = TwoWorkersAndWitness();
  view.workers.push_back({3, WorkerState::kActive});
  EXPECT_EQ(NextMove(view), NextMove(view));
}

}  // namespace
}  // namespace das::meta
