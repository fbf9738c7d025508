// ShardLeader's retry rule (DecideAfterFailure): what follows a failed attempt at a replica.
#include "control/shard_leader.h"

#include <gtest/gtest.h>

#include <vector>

#include "rpc/topology.h"

namespace das::control {
namespace {

using Action = AfterFailure::Action;

const std::vector<uint64_t> kThree = {1, 2, 3};

TEST(ShardLeaderRuleTest, ANotLeaderHintIsFollowedAtOnce) {
  const AfterFailure after = DecideAfterFailure(NotLeader("not me", "3"), 1, kThree);
  EXPECT_EQ(after.action, Action::kRetry);
  EXPECT_EQ(after.next, 3u);
  EXPECT_FALSE(after.pause);
  EXPECT_FALSE(after.target_failed);  // it answered: it is no failed worker
}

TEST(ShardLeaderRuleTest, ANotLeaderWithoutAUsableHintAsksTheNextAfterAPause) {
  // No hint (an election runs), itself, the witness (it never serves), a node not among the
  // data replicas, something that is no node id: the next replica, round, after a pause.
  for (const std::string& hint :
       {std::string(), std::string("3"), std::to_string(rpc::kWitnessNodeId), std::string("9"),
        std::string("x")}) {
    const AfterFailure after = DecideAfterFailure(NotLeader("not me", hint), 3, kThree);
    EXPECT_EQ(after.action, Action::kRetry) << hint;
    EXPECT_EQ(after.next, 1u) << hint;
    EXPECT_TRUE(after.pause) << hint;
    EXPECT_FALSE(after.target_failed) << hint;
  }
}

TEST(ShardLeaderRuleTest, AnUnreachableReplicaFailsAndTheNextIsAsked) {
  for (const Status& failure : {Unavailable("refused"), DeadlineExceeded("slow"),
                                Status(StatusCode::kShuttingDown, "stopping")}) {
    const AfterFailure after = DecideAfterFailure(failure, 1, kThree);
    EXPECT_EQ(after.action, Action::kRetry) << failure.ToString();
    EXPECT_EQ(after.next, 2u);
    EXPECT_TRUE(after.pause);
    EXPECT_TRUE(after.target_failed);
  }
}

TEST(ShardLeaderRuleTest, TheOnlyReplicaUnreachableIsGivenUpAtOnce) {
  const AfterFailure after = DecideAfterFailure(Unavailable("refused"), 1, {1});
  EXPECT_EQ(after.action, Action::kGiveUp);
  EXPECT_TRUE(after.target_failed);
  // A slow one may still answer the next attempt.
  EXPECT_EQ(DecideAfterFailure(DeadlineExceeded("slow"), 1, {1}).action, Action::kRetry);
}

TEST(ShardLeaderRuleTest, AnyOtherFailureIsTheAnswer) {
  for (const Status& failure : {InvalidArgument("bad"), NotFound("no such route"), Internal("disk"),
                                Status(StatusCode::kAlreadyExists, "other rows")}) {
    const AfterFailure after = DecideAfterFailure(failure, 2, kThree);
    EXPECT_EQ(after.action, Action::kReturn) << failure.ToString();
    EXPECT_TRUE(after.target_failed);
  }
}

}  // namespace
}  // namespace das::control
