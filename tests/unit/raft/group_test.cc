// Three replicas of one Raft group in one process, each on its own Loop (as three nodes would
// be), over real TCP on loopback with real logs on disk: they elect a leader, replicate and
// apply every entry in the same order, survive the loss of the leader, and a restarted replica
// catches up from its log. Waits are for events (a leader, an applied index), bounded.
#include "raft/group.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "support.h"

namespace das::raft {
namespace {

using namespace std::chrono_literals;

class GroupTest : public ::testing::Test {
 protected:
  static constexpr int kReplicas = 3;

  void SetUp() override {
    dir_ = MakeTempDir("das-raft-test");
    peers_ = LoopbackPeers(kReplicas);
    for (int i = 0; i < kReplicas; ++i) {
      Result<std::unique_ptr<Loop>> loop = Loop::Start("node-" + std::to_string(i + 1));
      ASSERT_TRUE(loop.ok()) << loop.status().ToString();
      loops_.push_back(std::move(loop).value());
      machines_.push_back(std::make_unique<Recorder>());
      groups_.emplace_back();
      ASSERT_NO_FATAL_FAILURE(OpenReplica(i));
    }
  }

  void TearDown() override {
    for (auto& group : groups_) {
      if (group) group->Close();
    }
    for (auto& loop : loops_) loop->Stop();
    std::filesystem::remove_all(dir_);
  }

  void OpenReplica(int i) {
    GroupOptions options;
    options.id = peers_[i].id;
    options.address = peers_[i].address;
    options.data_dir = dir_ + "/replica-" + std::to_string(i + 1);
    options.voters = peers_;
    options.election_timeout_ms = 1000;
    options.heartbeat_timeout_ms = 100;
    Result<std::unique_ptr<Group>> group = Group::Open(*loops_[i], options, *machines_[i]);
    ASSERT_TRUE(group.ok()) << group.status().ToString();
    groups_[i] = std::move(group).value();
  }

  // The replica (index into groups_) that leads, with every other open replica agreeing.
  int WaitForLeader() {
    std::vector<Group*> replicas;
    for (auto& group : groups_) replicas.push_back(group.get());
    return raft::WaitForLeader(replicas);
  }

  Result<uint64_t> ProposeSync(int replica, std::string entry) {
    std::promise<Result<uint64_t>> done;
    groups_[replica]->Propose(
        std::move(entry), [&done](Result<uint64_t> index) { done.set_value(std::move(index)); });
    return done.get_future().get();
  }

  // Proposes entries "<prefix>-0".. at the leader, retrying on a new leader when one is lost.
  std::vector<std::string> ProposeMany(const std::string& prefix, int n) {
    std::vector<std::string> proposed;
    for (int i = 0; i < n; ++i) {
      const std::string entry = prefix + "-" + std::to_string(i);
      Result<uint64_t> index = ProposeSync(WaitForLeader(), entry);
      EXPECT_TRUE(index.ok()) << index.status().ToString();
      if (index.ok()) proposed.push_back(entry);
    }
    return proposed;
  }

  // The entries a replica applied, without raft's own (configuration, barrier) entries.
  static std::vector<std::string> Payloads(Recorder& machine) {
    std::vector<std::string> out;
    uint64_t last = 0;
    for (const auto& [index, entry] : machine.entries()) {
      EXPECT_GT(index, last) << "indexes must increase";
      last = index;
      out.push_back(entry);
    }
    return out;
  }

  std::string dir_;
  std::vector<Peer> peers_;
  std::vector<std::unique_ptr<Loop>> loops_;
  std::vector<std::unique_ptr<Recorder>> machines_;
  std::vector<std::unique_ptr<Group>> groups_;
};

TEST_F(GroupTest, EveryReplicaAppliesEveryCommittedEntryInOrder) {
  const std::vector<std::string> proposed = ProposeMany("a", 50);
  ASSERT_EQ(proposed.size(), 50u);
  for (int i = 0; i < kReplicas; ++i) {
    ASSERT_TRUE(machines_[i]->WaitApplied(50)) << "replica " << i + 1;
    EXPECT_EQ(Payloads(*machines_[i]), proposed) << "replica " << i + 1;
  }
}

TEST_F(GroupTest, AFollowerRefusesProposalsNamingTheLeader) {
  const int leader = WaitForLeader();
  ASSERT_GE(leader, 0);
  const int follower = (leader + 1) % kReplicas;
  Result<uint64_t> refused = ProposeSync(follower, "x");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kNotLeader);
  EXPECT_EQ(refused.status().detail(), peers_[leader].address);
}

TEST_F(GroupTest, LosingTheLeaderLosesNoCommittedEntryAndARestartCatchesUp) {
  std::vector<std::string> proposed = ProposeMany("before", 20);
  const int old_leader = WaitForLeader();
  ASSERT_GE(old_leader, 0);
  groups_[old_leader]->Close();
  groups_[old_leader].reset();

  const int new_leader = WaitForLeader();
  ASSERT_GE(new_leader, 0);
  EXPECT_NE(new_leader, old_leader);
  for (const std::string& e : ProposeMany("after", 20)) proposed.push_back(e);
  for (int i = 0; i < kReplicas; ++i) {
    if (i == old_leader) continue;
    ASSERT_TRUE(machines_[i]->WaitApplied(proposed.size())) << "replica " << i + 1;
    EXPECT_EQ(Payloads(*machines_[i]), proposed) << "replica " << i + 1;
  }

  // The old leader comes back with a fresh state machine: it replays its own log, then gets
  // what it missed from the new leader.
  machines_[old_leader] = std::make_unique<Recorder>();
  ASSERT_NO_FATAL_FAILURE(OpenReplica(old_leader));
  ASSERT_TRUE(machines_[old_leader]->WaitApplied(proposed.size()));
  EXPECT_EQ(Payloads(*machines_[old_leader]), proposed);
}

TEST_F(GroupTest, BarrierAtTheLeaderCoversEveryCommittedEntry) {
  const std::vector<std::string> proposed = ProposeMany("b", 10);
  const int leader = WaitForLeader();
  ASSERT_GE(leader, 0);
  std::promise<Result<uint64_t>> done;
  groups_[leader]->Barrier([&done](Result<uint64_t> index) { done.set_value(std::move(index)); });
  Result<uint64_t> barrier = done.get_future().get();
  ASSERT_TRUE(barrier.ok()) << barrier.status().ToString();
  EXPECT_GE(groups_[leader]->Info().applied_index, *barrier);
  EXPECT_EQ(Payloads(*machines_[leader]).size(), proposed.size());
}

TEST_F(GroupTest, LeadershipMovesToTheReplicaNamed) {
  const int leader = WaitForLeader();
  ASSERT_GE(leader, 0);
  const int target = (leader + 2) % kReplicas;
  std::promise<Status> done;
  groups_[leader]->Transfer(peers_[target].id, [&done](Status s) { done.set_value(s); });
  Status moved = done.get_future().get();
  EXPECT_TRUE(moved.ok()) << moved.ToString();
  EXPECT_EQ(WaitForLeader(), target);
}

}  // namespace
}  // namespace das::raft
