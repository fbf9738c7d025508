// Two Raft groups on three nodes, each node with one Loop and one Hub: both groups run over the
// same three ports, elect their own leaders, replicate independently, survive the loss of a
// node, and the node restarted on its port catches both groups up. A connection naming a group
// the node does not have, or speaking something else, is dropped without harm.
#include "raft/hub.h"

#include <stdlib.h>
#include <sys/select.h>

#include <filesystem>
#include <future>
#include <thread>

#include <gtest/gtest.h>

#include "raft/group.h"
#include "support.h"

namespace das::raft {
namespace {

constexpr int kNodes = 3;
constexpr int kGroups = 2;

class HubTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("das-hub-test");
    peers_ = LoopbackPeers(kNodes);
    for (int n = 0; n < kNodes; ++n) {
      Result<std::unique_ptr<Loop>> loop = Loop::Start("node-" + std::to_string(n + 1));
      ASSERT_TRUE(loop.ok()) << loop.status().ToString();
      loops_.push_back(std::move(loop).value());
      hubs_.emplace_back();
      groups_.emplace_back(kGroups);
      machines_.emplace_back();
      for (int g = 0; g < kGroups; ++g) machines_[n].push_back(std::make_unique<Recorder>());
      ASSERT_NO_FATAL_FAILURE(StartNode(n));
    }
  }

  void TearDown() override {
    for (int n = 0; n < kNodes; ++n) StopNode(n);
    for (auto& loop : loops_) loop->Stop();
    std::filesystem::remove_all(dir_);
  }

  void StartNode(int n) {
    Result<std::unique_ptr<Hub>> hub =
        Hub::Open(*loops_[n], peers_[n].address, std::chrono::milliseconds(500));
    ASSERT_TRUE(hub.ok()) << hub.status().ToString();
    hubs_[n] = std::move(hub).value();
    for (int g = 0; g < kGroups; ++g) {
      GroupOptions options;
      options.hub = hubs_[n].get();
      options.group_id = static_cast<uint64_t>(g + 1);
      options.id = peers_[n].id;
      options.address = peers_[n].address;
      options.data_dir =
          dir_ + "/node-" + std::to_string(n + 1) + "/group-" + std::to_string(g + 1);
      options.voters = peers_;
      options.election_timeout_ms = 1000;
      options.heartbeat_timeout_ms = 100;
      Result<std::unique_ptr<Group>> group = Group::Open(*loops_[n], options, *machines_[n][g]);
      ASSERT_TRUE(group.ok()) << group.status().ToString();
      groups_[n][g] = std::move(group).value();
    }
  }

  void StopNode(int n) {
    for (auto& group : groups_[n]) {
      if (group) group->Close();
      group.reset();
    }
    if (hubs_[n]) hubs_[n]->Close();
    hubs_[n].reset();
  }

  // The node leading group g, once every running replica of it knows a leader.
  int WaitForLeader(int g) {
    std::vector<Group*> replicas;
    for (int n = 0; n < kNodes; ++n) replicas.push_back(groups_[n][g].get());
    return raft::WaitForLeader(replicas);
  }

  // Proposes `n` entries "<prefix>-i" to group g at its leader; returns them.
  std::vector<std::string> ProposeMany(int g, const std::string& prefix, int n) {
    std::vector<std::string> proposed;
    for (int i = 0; i < n; ++i) {
      const int leader = WaitForLeader(g);
      if (leader < 0) break;
      std::promise<Result<uint64_t>> done;
      const std::string entry = prefix + "-" + std::to_string(i);
      groups_[leader][g]->Propose(entry, [&done](Result<uint64_t> r) { done.set_value(r); });
      Result<uint64_t> index = done.get_future().get();
      EXPECT_TRUE(index.ok()) << index.status().ToString();
      if (index.ok()) proposed.push_back(entry);
    }
    return proposed;
  }

  static std::vector<std::string> Payloads(Recorder& machine) {
    std::vector<std::string> out;
    for (const auto& [index, entry] : machine.entries()) out.push_back(entry);
    return out;
  }

  std::string dir_;
  std::vector<Peer> peers_;
  std::vector<std::unique_ptr<Loop>> loops_;
  std::vector<std::unique_ptr<Hub>> hubs_;
  std::vector<std::vector<std::unique_ptr<Group>>> groups_;       // [node][group]
  std::vector<std::vector<std::unique_ptr<Recorder>>> machines_;  // [node][group]
};

TEST_F(HubTest, GroupsShareOnePortPerNodeAndReplicateIndependently) {
  const std::vector<std::string> one = ProposeMany(0, "one", 20);
  const std::vector<std::string> two = ProposeMany(1, "two", 30);
  ASSERT_EQ(one.size(), 20u);
  ASSERT_EQ(two.size(), 30u);
  for (int n = 0; n < kNodes; ++n) {
    ASSERT_TRUE(machines_[n][0]->WaitApplied(20)) << "node " << n + 1;
    ASSERT_TRUE(machines_[n][1]->WaitApplied(30)) << "node " << n + 1;
    EXPECT_EQ(Payloads(*machines_[n][0]), one) << "node " << n + 1 << " group 1";
    EXPECT_EQ(Payloads(*machines_[n][1]), two) << "node " << n + 1 << " group 2";
  }
}

TEST_F(HubTest, LosingANodeLosesNoEntryAndItsRestartCatchesEveryGroupUp) {
  std::vector<std::vector<std::string>> proposed = {ProposeMany(0, "a", 10),
                                                    ProposeMany(1, "b", 10)};
  const int lost = WaitForLeader(0);
  ASSERT_GE(lost, 0);
  StopNode(lost);
  for (int g = 0; g < kGroups; ++g) {
    for (const std::string& e : ProposeMany(g, "after" + std::to_string(g), 10)) {
      proposed[g].push_back(e);
    }
  }
  for (int g = 0; g < kGroups; ++g) machines_[lost][g] = std::make_unique<Recorder>();
  ASSERT_NO_FATAL_FAILURE(StartNode(lost));
  for (int n = 0; n < kNodes; ++n) {
    for (int g = 0; g < kGroups; ++g) {
      ASSERT_TRUE(machines_[n][g]->WaitApplied(proposed[g].size()))
          << "node " << n + 1 << " group " << g + 1;
      EXPECT_EQ(Payloads(*machines_[n][g]), proposed[g]) << "node " << n + 1 << " group " << g + 1;
    }
  }
}

// A stranger on the raft port: bytes that are no handshake, and a handshake for a group the
// node does not have. Both are dropped; the groups go on.
TEST_F(HubTest, StrangersOnTheRaftPortAreDropped) {
  for (const std::string& bytes :
       {std::string("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        std::string("DASR\x01\0\0\0\x63\0\0\0\0\0\0\0", 16) +
            std::string("\x09\0\0\0\0\0\0\0\x09\0", 10) + "127.0.0.1:1"}) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const std::string& a = peers_[0].address;
    addr.sin_port = htons(static_cast<uint16_t>(std::stoi(a.substr(a.rfind(':') + 1))));
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ASSERT_EQ(::write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
    char c;
    // The hub closes the connection without an acknowledgement.
    EXPECT_LE(::read(fd, &c, 1), 0);
    ::close(fd);
  }
  EXPECT_EQ(ProposeMany(0, "still", 5).size(), 5u);
}

// A peer that connects and says nothing is dropped after the handshake timeout (500 ms here),
// and meanwhile the groups go on.
TEST_F(HubTest, ASilentPeerIsDroppedAfterTheHandshakeTimeout) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  timeval limit{30, 0};  // a bound for the test itself, far above the hub's timeout
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const std::string& a = peers_[1].address;
  addr.sin_port = htons(static_cast<uint16_t>(std::stoi(a.substr(a.rfind(':') + 1))));
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  char c;
  EXPECT_EQ(::read(fd, &c, 1), 0) << "the hub should close a silent connection";
  ::close(fd);
  EXPECT_EQ(ProposeMany(1, "go-on", 3).size(), 3u);
}

// A voter whose port accepts but never acknowledges (a hung node): each connect to it is given
// up after the handshake timeout, so raft keeps retrying it (without the timeout the first
// attempt would hang forever), while the other two replicas elect a leader and commit.
TEST(HubTimeoutTest, APeerThatNeverAcknowledgesIsRetried) {
  char tmpl[] = "/tmp/das-hub-timeout-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  const int hung = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(hung, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(hung, 16), 0);
  socklen_t len = sizeof addr;
  ::getsockname(hung, reinterpret_cast<sockaddr*>(&addr), &len);
  std::vector<Peer> peers = {{1, "127.0.0.1:" + std::to_string(FreePort())},
                             {2, "127.0.0.1:" + std::to_string(FreePort())},
                             {3, "127.0.0.1:" + std::to_string(ntohs(addr.sin_port))}};
  std::vector<std::unique_ptr<Loop>> loops;
  std::vector<std::unique_ptr<Hub>> hubs;
  std::vector<std::unique_ptr<Recorder>> machines;
  std::vector<std::unique_ptr<Group>> groups;
  for (int n = 0; n < 2; ++n) {
    loops.push_back(std::move(Loop::Start("node")).value());
    hubs.push_back(std::move(Hub::Open(*loops[n], peers[n].address, 300ms)).value());
    machines.push_back(std::make_unique<Recorder>());
    GroupOptions options;
    options.hub = hubs[n].get();
    options.group_id = 1;
    options.id = peers[n].id;
    options.address = peers[n].address;
    options.data_dir = dir + "/node-" + std::to_string(n + 1);
    options.voters = peers;
    Result<std::unique_ptr<Group>> group = Group::Open(*loops[n], options, *machines[n]);
    ASSERT_TRUE(group.ok()) << group.status().ToString();
    groups.push_back(std::move(group).value());
  }
  // Count the connections the hung voter receives, holding each open and silent.
  std::vector<int> held;
  const auto until = std::chrono::steady_clock::now() + 60s;
  while (held.size() < 4 && std::chrono::steady_clock::now() < until) {
    timeval wait{0, 100'000};
    fd_set ready;
    FD_ZERO(&ready);
    FD_SET(hung, &ready);
    if (::select(hung + 1, &ready, nullptr, nullptr, &wait) > 0)
      held.push_back(::accept(hung, nullptr, nullptr));
  }
  // Two replicas (each connects at least once) and a retry after a timeout.
  EXPECT_GE(held.size(), 4u) << "connections from the replicas to the hung voter";
  for (int fd : held) ::close(fd);
  ::close(hung);
  for (auto& group : groups) group->Close();
  for (auto& hub : hubs) hub->Close();
  for (auto& loop : loops) loop->Stop();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace das::raft
