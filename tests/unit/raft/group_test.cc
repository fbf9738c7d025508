// Three replicas of one Raft group in one process, each on its own Loop (as three nodes would
// be), over real TCP on loopback with real logs on disk: they elect a leader, replicate and
// apply every entry in the same order, survive the loss of the leader, and a restarted replica
// catches up from its log. Waits are for events (a leader, an applied index), bounded.
#include "raft/group.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
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
      ASSERT_NO_FATAL_FAILURE(OpenLog(i));
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

  // Node i's one raft log (Loop::OpenLog), as the worker's and the control node's.
  void OpenLog(int i, size_t segment_bytes = 1024 * 1024) {
    const Status opened =
        loops_[i]->OpenLog(dir_ + "/node-" + std::to_string(i + 1) + "-log", segment_bytes);
    ASSERT_TRUE(opened.ok()) << opened.ToString();
  }

  void OpenReplica(int i) {
    GroupOptions options;
    options.id = peers_[i].id;
    options.address = peers_[i].address;
    options.data_dir = dir_ + "/replica-" + std::to_string(i + 1);
    options.voters = peers_;
    options.election_timeout_ms = 1000;
    options.heartbeat_timeout_ms = 100;
    options.snapshot_threshold = snapshot_threshold_;
    options.snapshot_trailing = snapshot_trailing_;
    options.segment_size = segment_size_;
    loops_[i]->SetLogBudget(log_budget_);
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

  unsigned snapshot_threshold_ = 1024;
  unsigned snapshot_trailing_ = 8192;
  size_t segment_size_ = 1024 * 1024;
  uint64_t log_budget_ = 0;
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
  EXPECT_EQ(refused.status().detail(), std::to_string(peers_[leader].id));
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

// Describe() never waits for the loop: while the loop is busy it returns at once and answers
// later, on the loop, with what Info() and Members() would say.
TEST_F(GroupTest, DescribeAnswersOnTheLoopWithoutWaitingForIt) {
  const int leader = WaitForLeader();
  ASSERT_GE(leader, 0);
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::promise<void> busy;
  ASSERT_TRUE(loops_[leader]->Post([&busy, released] {
    busy.set_value();
    released.wait();
  }));
  busy.get_future().wait();  // the loop thread is held now
  std::promise<std::pair<GroupInfo, std::vector<Member>>> described;
  std::atomic<bool> on_loop{false};
  groups_[leader]->Describe([&, leader](GroupInfo info, std::vector<Member> members) {
    on_loop = loops_[leader]->InLoopThread();
    described.set_value({std::move(info), std::move(members)});
  });
  std::future<std::pair<GroupInfo, std::vector<Member>>> answer = described.get_future();
  EXPECT_EQ(answer.wait_for(0s), std::future_status::timeout);  // Describe returned, unanswered
  release.set_value();
  const auto [info, members] = answer.get();
  EXPECT_TRUE(on_loop);
  EXPECT_EQ(info.role, Role::kLeader);
  EXPECT_EQ(info.leader_id, peers_[leader].id);
  EXPECT_EQ(members.size(), static_cast<size_t>(kReplicas));

  // DescribeAll: every group at once (here on three loops), one answer, in the order asked.
  std::vector<std::pair<Group*, std::shared_ptr<const void>>> groups;
  for (int i = kReplicas - 1; i >= 0; --i) groups.emplace_back(groups_[i].get(), nullptr);
  std::promise<std::vector<GroupDescription>> all;
  DescribeAll(std::move(groups),
              [&all](std::vector<GroupDescription> described) { all.set_value(described); });
  const std::vector<GroupDescription> everyone = all.get_future().get();
  ASSERT_EQ(everyone.size(), static_cast<size_t>(kReplicas));
  for (int i = 0; i < kReplicas; ++i) {
    const int replica = kReplicas - 1 - i;
    EXPECT_EQ(everyone[i].info.role, replica == leader ? Role::kLeader : Role::kFollower);
    EXPECT_EQ(everyone[i].info.leader_id, peers_[leader].id);
    EXPECT_EQ(everyone[i].members.size(), static_cast<size_t>(kReplicas));
  }
}

// Info() counts the snapshots a replica's state machine took and those it restored: libraft
// takes one once `snapshot_threshold` entries were applied since the last, and a replica that
// starts from its data directory restores the newest.
TEST_F(GroupTest, SnapshotsTakenAndRestoredAreCounted) {
  for (auto& group : groups_) group->Close();
  snapshot_threshold_ = 16;
  for (int i = 0; i < kReplicas; ++i) {
    machines_[i] = std::make_unique<Recorder>();
    ASSERT_NO_FATAL_FAILURE(OpenReplica(i));
  }
  for (int i = 0; i < kReplicas; ++i) EXPECT_EQ(groups_[i]->Info().snapshots_taken, 0u);
  // libraft takes no snapshot while the last one is still being written: a second one taken
  // means the first is on disk.
  for (int round = 0; round < 20 && groups_[0]->Info().snapshots_taken < 2; ++round) {
    ASSERT_EQ(ProposeMany("snap" + std::to_string(round), 20).size(), 20u);
  }
  ASSERT_GE(groups_[0]->Info().snapshots_taken, 2u);
  EXPECT_EQ(groups_[0]->Info().snapshots_restored, 0u);

  groups_[0]->Close();
  machines_[0] = std::make_unique<Recorder>();
  ASSERT_NO_FATAL_FAILURE(OpenReplica(0));
  const GroupInfo restarted = groups_[0]->Info();
  EXPECT_EQ(restarted.snapshots_restored, 1u);
  EXPECT_EQ(restarted.snapshots_taken, 0u);
}

// A restarted replica gets back, before its snapshot is restored, every entry its log kept up
// to that snapshot (raft applies only what follows it): a state machine whose durable state
// lags its snapshot by fewer entries than the log keeps loses none of them.
TEST_F(GroupTest, ARestartReplaysWhatTheLogKeptUpToItsSnapshot) {
  for (auto& group : groups_) group->Close();
  snapshot_threshold_ = 16;
  snapshot_trailing_ = 16;
  for (int i = 0; i < kReplicas; ++i) {
    machines_[i] = std::make_unique<Recorder>();
    ASSERT_NO_FATAL_FAILURE(OpenReplica(i));
  }
  // A third snapshot taken means the second is on disk (one is written at a time).
  for (int round = 0; round < 20 && groups_[0]->Info().snapshots_taken < 3; ++round) {
    ASSERT_EQ(ProposeMany("replay" + std::to_string(round), 20).size(), 20u);
  }
  ASSERT_GE(groups_[0]->Info().snapshots_taken, 3u);
  const std::vector<Recorder::SnapshotAsked> asked = machines_[0]->snapshots();
  const std::vector<std::pair<uint64_t, std::string>> entries = machines_[0]->entries();
  const std::map<uint64_t, std::string> applied(entries.begin(), entries.end());
  for (const Recorder::SnapshotAsked& snapshot : asked) {
    EXPECT_EQ(snapshot.kept_from, snapshot.index - 16 + 1) << "16 entries kept";
  }

  groups_[0]->Close();
  machines_[0] = std::make_unique<Recorder>();
  ASSERT_NO_FATAL_FAILURE(OpenReplica(0));
  Recorder& restarted = *machines_[0];
  ASSERT_EQ(restarted.restored().size(), 1u);
  const uint64_t at = std::stoull(restarted.restored()[0].substr(std::string("recorder ").size()));
  const auto snapshot = std::find_if(
      asked.begin(), asked.end(), [at](const Recorder::SnapshotAsked& a) { return a.index == at; });
  ASSERT_NE(snapshot, asked.end()) << "restored a snapshot never taken: " << at;
  const std::vector<Recorder::Replayed> replays = restarted.replays();
  ASSERT_FALSE(replays.empty());
  EXPECT_EQ(restarted.replays_before_restore(), replays.size()) << "replayed after the restore";
  EXPECT_LE(replays.front().index, snapshot->kept_from) << "less than the log said it keeps";
  EXPECT_EQ(replays.back().index, at);
  for (size_t k = 0; k < replays.size(); ++k) {
    EXPECT_LE(replays[k].log_start, replays.front().index);
    if (k > 0) {
      EXPECT_EQ(replays[k].index, replays[k - 1].index + 1);
    }
    ASSERT_EQ(applied.count(replays[k].index), 1u) << "entry " << replays[k].index;
    EXPECT_EQ(replays[k].entry, applied.at(replays[k].index)) << "entry " << replays[k].index;
  }
}

// With a log budget (Loop::SetLogBudget), each replica keeps what fits in it: 400 entries of 16
// KiB (6.4 MB) leave each node's raft log under 1.5 MiB (16 entries kept, half the budget
// between snapshots, the segments being written); without it every entry stays (6.8 MB).
TEST_F(GroupTest, ALogBudgetBoundsTheLogInBytes) {
  for (auto& group : groups_) group->Close();
  log_budget_ = 256 * 1024;
  for (int i = 0; i < kReplicas; ++i) {
    // Small segments, so that what goes is seen: a new loop and log for each node.
    loops_[i]->Stop();
    loops_[i] = std::move(Loop::Start("node-" + std::to_string(i + 1))).value();
    std::filesystem::remove_all(dir_ + "/node-" + std::to_string(i + 1) + "-log");
    std::filesystem::remove_all(dir_ + "/replica-" + std::to_string(i + 1));
    ASSERT_NO_FATAL_FAILURE(OpenLog(i, 64 * 1024));
    machines_[i] = std::make_unique<Recorder>();
    ASSERT_NO_FATAL_FAILURE(OpenReplica(i));
  }
  const std::string payload(16 * 1024, 'x');
  constexpr int kEntries = 400;
  for (int k = 0; k < kEntries; ++k) {
    Result<uint64_t> index = ProposeSync(WaitForLeader(), payload + std::to_string(k));
    ASSERT_TRUE(index.ok()) << index.status().ToString();
  }
  for (int i = 0; i < kReplicas; ++i) {
    ASSERT_TRUE(machines_[i]->WaitApplied(kEntries));
    EXPECT_GE(groups_[i]->Info().snapshots_taken, 10u) << "replica " << i + 1;
  }
  // Measured once closed: an open replica may be writing a snapshot or removing a segment.
  for (auto& group : groups_) group->Close();
  for (int i = 0; i < kReplicas; ++i) {
    uintmax_t bytes = 0;
    for (const std::string& dir : {dir_ + "/replica-" + std::to_string(i + 1),
                                   dir_ + "/node-" + std::to_string(i + 1) + "-log"}) {
      for (const auto& file : std::filesystem::directory_iterator(dir)) {
        if (file.is_regular_file()) bytes += file.file_size();
      }
    }
    EXPECT_LT(bytes, 1536u * 1024) << "node " << i + 1 << "'s log";
  }
}

Status StatusSync(const std::function<void(std::function<void(Status)>)>& start) {
  std::promise<Status> done;
  start([&done](Status s) { done.set_value(std::move(s)); });
  return done.get_future().get();
}

// Membership (docs/operations.md, "Membership"): a replica opened with no voters waits until the
// leader adds it; as a spare it gets nothing, as a voter it first gets the whole log; a removed
// voter gets nothing more. One change at a time; only at the leader.
TEST_F(GroupTest, AJoiningReplicaGetsTheWholeLogAndARemovedOneNothingMore) {
  int leader = WaitForLeader();
  ASSERT_GE(leader, 0);
  const std::vector<std::string> before = ProposeMany("before", 20);

  // The new replica: its own loop, no voters, so it is not bootstrapped.
  const Peer joiner{4, "127.0.0.1:" + std::to_string(FreePort())};
  Result<std::unique_ptr<Loop>> loop = Loop::Start("node-4");
  ASSERT_TRUE(loop.ok());
  loops_.push_back(std::move(loop).value());
  ASSERT_NO_FATAL_FAILURE(OpenLog(3));
  machines_.push_back(std::make_unique<Recorder>());
  GroupOptions options;
  options.id = joiner.id;
  options.address = joiner.address;
  options.data_dir = dir_ + "/replica-4";
  options.election_timeout_ms = 1000;
  options.heartbeat_timeout_ms = 100;
  Result<std::unique_ptr<Group>> opened = Group::Open(*loops_.back(), options, *machines_.back());
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  groups_.push_back(std::move(opened).value());
  Group& newcomer = *groups_.back();
  Recorder& newcomer_machine = *machines_.back();

  // Only the leader changes membership.
  const int follower = (leader + 1) % kReplicas;
  Status refused = StatusSync(
      [&](auto done) { groups_[follower]->AddSpare(joiner.id, joiner.address, std::move(done)); });
  EXPECT_EQ(refused.code(), StatusCode::kNotLeader) << refused.ToString();

  ASSERT_TRUE(StatusSync([&](auto done) {
                groups_[leader]->AddSpare(joiner.id, joiner.address, std::move(done));
              }).ok());
  bool spare = false;
  for (const Member& m : groups_[leader]->Members()) {
    if (m.id == joiner.id) spare = m.role == MemberRole::kSpare && m.address == joiner.address;
  }
  EXPECT_TRUE(spare);
  EXPECT_TRUE(newcomer_machine.entries().empty()) << "a spare gets no log";

  ASSERT_TRUE(StatusSync([&](auto done) {
                groups_[leader]->Assign(joiner.id, MemberRole::kVoter, std::move(done));
              }).ok());
  ASSERT_TRUE(newcomer_machine.WaitApplied(before.size()));
  EXPECT_EQ(Payloads(newcomer_machine), before);

  // Two changes at once: the second is refused while the first is in progress.
  std::promise<Status> first;
  std::promise<Status> second;
  groups_[leader]->AddSpare(5, "127.0.0.1:1", [&first](Status s) { first.set_value(s); });
  groups_[leader]->AddSpare(6, "127.0.0.1:2", [&second](Status s) { second.set_value(s); });
  EXPECT_TRUE(first.get_future().get().ok());
  Status busy = second.get_future().get();
  EXPECT_EQ(busy.code(), StatusCode::kUnavailable) << busy.ToString();
  EXPECT_TRUE(StatusSync([&](auto done) { groups_[leader]->Remove(5, std::move(done)); }).ok());

  // A voter removed (a follower: the leader keeps leading) gets nothing more.
  const uint64_t removed_id = peers_[follower].id;
  ASSERT_TRUE(
      StatusSync([&](auto done) { groups_[leader]->Remove(removed_id, std::move(done)); }).ok());
  for (const Member& m : newcomer.Members()) EXPECT_NE(m.id, 5u);
  const size_t removed_had = machines_[follower]->entries().size();
  std::vector<std::string> all = before;
  for (const std::string& entry : ProposeMany("after", 10)) all.push_back(entry);
  ASSERT_TRUE(newcomer_machine.WaitApplied(all.size()));
  ASSERT_TRUE(machines_[leader]->WaitApplied(all.size()));
  EXPECT_EQ(Payloads(newcomer_machine), all);
  EXPECT_EQ(machines_[follower]->entries().size(), removed_had);
  std::vector<uint64_t> voters;
  for (const Member& m : groups_[leader]->Members()) {
    if (m.role == MemberRole::kVoter) voters.push_back(m.id);
  }
  std::sort(voters.begin(), voters.end());
  std::vector<uint64_t> expected;
  for (int i = 0; i < kReplicas; ++i) {
    if (i != follower) expected.push_back(peers_[i].id);
  }
  expected.push_back(joiner.id);
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(voters, expected);
}

Result<uint64_t> BarrierSync(Group& group) {
  std::promise<Result<uint64_t>> done;
  group.Barrier([&done](Result<uint64_t> index) { done.set_value(std::move(index)); });
  return done.get_future().get();
}

// A barrier of three voters is an entry in the log, each time: another node may lead.
TEST_F(GroupTest, EachBarrierOfThreeVotersIsAnEntry) {
  const int leader = WaitForLeader();
  ASSERT_GE(leader, 0);
  for (int k = 0; k < 3; ++k) {
    const uint64_t before = groups_[leader]->Info().last_index;
    Result<uint64_t> index = BarrierSync(*groups_[leader]);
    ASSERT_TRUE(index.ok()) << index.status().ToString();
    EXPECT_GT(*index, before);
    EXPECT_GT(groups_[leader]->Info().last_index, before);
  }
}

// The only voter of a group (--replication-factor 1) needs no entry for a read point once a
// barrier of its term completed: no other node can lead or commit, so its last applied index
// vouches for every committed entry. A restart is a new term: its first barrier is an entry
// again, and the read point then covers what was committed before the restart.
TEST(SoleVoterTest, AReadPointIsAnEntryOnlyOnceATerm) {
  const std::string dir = MakeTempDir("das-raft-sole");
  Result<std::unique_ptr<Loop>> loop = Loop::Start("sole");
  ASSERT_TRUE(loop.ok()) << loop.status().ToString();
  ASSERT_TRUE((*loop)->OpenLog(dir + "/log").ok());
  GroupOptions options;
  options.id = 1;
  options.address = "127.0.0.1:" + std::to_string(FreePort());
  options.data_dir = dir + "/replica";
  options.voters = {{1, options.address}};
  uint64_t proposed = 0;
  for (int start = 0; start < 2; ++start) {
    Recorder machine;
    Result<std::unique_ptr<Group>> group = Group::Open(**loop, options, machine);
    ASSERT_TRUE(group.ok()) << group.status().ToString();
    ASSERT_EQ(WaitForLeader({group->get()}), 0);
    const uint64_t before = (*group)->Info().last_index;
    Result<uint64_t> first = BarrierSync(**group);
    ASSERT_TRUE(first.ok()) << first.status().ToString();
    EXPECT_GT(*first, proposed) << "start " << start;
    EXPECT_GT((*group)->Info().last_index, before) << "the term's first barrier is an entry";

    std::promise<Result<uint64_t>> done;
    (*group)->Propose("x", [&done](Result<uint64_t> index) { done.set_value(std::move(index)); });
    Result<uint64_t> written = done.get_future().get();
    ASSERT_TRUE(written.ok()) << written.status().ToString();
    proposed = *written;
    for (int k = 0; k < 3; ++k) {
      Result<uint64_t> read = BarrierSync(**group);
      ASSERT_TRUE(read.ok()) << read.status().ToString();
      EXPECT_EQ(*read, proposed) << "the read point covers the write";
      EXPECT_EQ((*group)->Info().last_index, proposed) << "and is no entry";
    }
    (*group)->Close();
  }
  (*loop)->Stop();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace das::raft
