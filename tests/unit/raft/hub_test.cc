// Two Raft groups on three nodes, each node with one Loop and one Hub: both groups run over the
// same three ports, elect their own leaders, replicate independently, survive the loss of a
// node, and the node restarted on its port catches both groups up. A connection naming a group
// the node does not have, or speaking something else, is dropped without harm.
#include "raft/hub.h"

#include <stdlib.h>
#include <sys/select.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <future>
#include <iostream>
#include <thread>

#include <gtest/gtest.h>

#include "raft/group.h"
#include "support.h"

namespace das::raft {
namespace {

constexpr int kNodes = 3;
constexpr int kGroups = 2;
const std::string kSecret = "the cluster's secret, 16+ bytes";

class HubTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("das-hub-test");
    peers_ = LoopbackPeers(kNodes);
    for (int n = 0; n < kNodes; ++n) {
      Result<std::unique_ptr<Loop>> loop = Loop::Start("node-" + std::to_string(n + 1));
      ASSERT_TRUE(loop.ok()) << loop.status().ToString();
      loops_.push_back(std::move(loop).value());
      // Both groups of a node in its one raft log, as on a worker.
      ASSERT_TRUE(loops_[n]->OpenLog(dir_ + "/node-" + std::to_string(n + 1) + "-log").ok());
      hubs_.emplace_back();
      groups_.emplace_back(kGroups);
      secrets_.push_back(kSecret);
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
        Hub::Open(*loops_[n], peers_[n].address, std::chrono::milliseconds(500), secrets_[n]);
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

  // Proposes `n` entries "<prefix>-i" to group g at its leader, one after the other; returns
  // them. A proposal that fails (its leader lost the lead meanwhile: a starved machine misses an
  // election timeout) is proposed again at the next leader; the first may still have committed,
  // just before the retry (Payloads drops that repeat).
  std::vector<std::string> ProposeMany(int g, const std::string& prefix, int n) {
    constexpr int kAttempts = 10;
    std::vector<std::string> proposed;
    for (int i = 0; i < n; ++i) {
      const std::string entry = prefix + "-" + std::to_string(i);
      for (int attempt = 1; attempt <= kAttempts; ++attempt) {
        const int leader = WaitForLeader(g);
        if (leader < 0) return proposed;
        std::promise<Result<uint64_t>> done;
        groups_[leader][g]->Propose(entry, [&done](Result<uint64_t> r) { done.set_value(r); });
        Result<uint64_t> index = done.get_future().get();
        if (index.ok()) {
          proposed.push_back(entry);
          break;
        }
        std::cerr << "proposal " << entry << " failed (attempt " << attempt
                  << "): " << index.status().ToString() << "\n";
      }
    }
    return proposed;
  }

  // Where replica [n][g] stands, for a failure's message: its raft state and its machine's.
  std::string Where(int n, int g) {
    const GroupInfo info = groups_[n][g]->Info();
    return "node " + std::to_string(n + 1) + " group " + std::to_string(g + 1) + ": " +
           std::string(RoleName(info.role)) + " term " + std::to_string(info.term) + " leader " +
           std::to_string(info.leader_id) + " last " + std::to_string(info.last_index) +
           " commit " + std::to_string(info.commit_index) + " applied " +
           std::to_string(info.applied_index) + ", machine has " +
           std::to_string(machines_[n][g]->entries().size()) + " entries, " +
           std::to_string(machines_[n][g]->Payloads().size()) + " distinct";
  }

  std::string dir_;
  std::vector<Peer> peers_;
  std::vector<std::unique_ptr<Loop>> loops_;
  std::vector<std::unique_ptr<Hub>> hubs_;
  std::vector<std::string> secrets_;                              // each node's cluster secret
  std::vector<std::vector<std::unique_ptr<Group>>> groups_;       // [node][group]
  std::vector<std::vector<std::unique_ptr<Recorder>>> machines_;  // [node][group]
};

TEST_F(HubTest, GroupsShareOnePortPerNodeAndReplicateIndependently) {
  const std::vector<std::string> one = ProposeMany(0, "one", 20);
  const std::vector<std::string> two = ProposeMany(1, "two", 30);
  ASSERT_EQ(one.size(), 20u);
  ASSERT_EQ(two.size(), 30u);
  for (int n = 0; n < kNodes; ++n) {
    ASSERT_TRUE(machines_[n][0]->WaitPayloads(20)) << Where(n, 0);
    ASSERT_TRUE(machines_[n][1]->WaitPayloads(30)) << Where(n, 1);
    EXPECT_EQ(machines_[n][0]->Payloads(), one) << "node " << n + 1 << " group 1";
    EXPECT_EQ(machines_[n][1]->Payloads(), two) << "node " << n + 1 << " group 2";
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
      ASSERT_TRUE(machines_[n][g]->WaitPayloads(proposed[g].size())) << Where(n, g);
      EXPECT_EQ(machines_[n][g]->Payloads(), proposed[g]) << "node " << n + 1 << " group " << g + 1;
    }
  }
}

// A node restarted on another port (a recreated container) keeps its raft id and data; its
// groups' configurations keep the old address. The others dial it where their hubs' books say
// it is now, and it catches every group up.
TEST_F(HubTest, ANodeBackOnAnotherPortIsDialedWhereTheBookSays) {
  std::vector<std::vector<std::string>> proposed = {ProposeMany(0, "a", 10),
                                                    ProposeMany(1, "b", 10)};
  const int moved = (WaitForLeader(0) + 1) % kNodes;
  StopNode(moved);
  for (int g = 0; g < kGroups; ++g) {
    for (const std::string& e : ProposeMany(g, "away" + std::to_string(g), 10)) {
      proposed[g].push_back(e);
    }
  }
  peers_[moved].address = "127.0.0.1:" + std::to_string(FreePort());
  for (int n = 0; n < kNodes; ++n) {
    if (n == moved) continue;
    ASSERT_TRUE(hubs_[n]->SetPeers({{peers_[moved].id, peers_[moved].address}}).ok());
  }
  for (int g = 0; g < kGroups; ++g) machines_[moved][g] = std::make_unique<Recorder>();
  ASSERT_NO_FATAL_FAILURE(StartNode(moved));
  for (int g = 0; g < kGroups; ++g) {
    for (const std::string& e : ProposeMany(g, "back" + std::to_string(g), 5)) {
      proposed[g].push_back(e);
    }
  }
  for (int n = 0; n < kNodes; ++n) {
    for (int g = 0; g < kGroups; ++g) {
      ASSERT_TRUE(machines_[n][g]->WaitPayloads(proposed[g].size()))
          << "node " << n + 1 << " group " << g + 1;
      EXPECT_EQ(machines_[n][g]->Payloads(), proposed[g]) << "node " << n + 1 << " group " << g + 1;
    }
  }
  // An address the handshake cannot carry is refused; the book stays as it was: the moved node
  // is still dialed where it is (a leader on another node reaches it after a reconnect).
  for (int n = 0; n < kNodes; ++n) {
    if (n == moved) continue;
    EXPECT_EQ(hubs_[n]
                  ->SetPeers({{peers_[moved].id, peers_[moved].address},
                              {9, std::string(300, 'x') + ":1"}})
                  .code(),
              StatusCode::kInvalidArgument);
  }
  StopNode(moved);
  for (int g = 0; g < kGroups; ++g) machines_[moved][g] = std::make_unique<Recorder>();
  ASSERT_NO_FATAL_FAILURE(StartNode(moved));
  for (int g = 0; g < kGroups; ++g) {
    for (const std::string& e : ProposeMany(g, "kept" + std::to_string(g), 5)) {
      proposed[g].push_back(e);
    }
    ASSERT_TRUE(machines_[moved][g]->WaitPayloads(proposed[g].size())) << "group " << g + 1;
    EXPECT_EQ(machines_[moved][g]->Payloads(), proposed[g]) << "group " << g + 1;
  }
}

// A raw connection to node n's raft port, with a bound on every read (far above the hub's
// handshake timeout) so that a hung test fails instead of hanging.
int Dial(const std::string& address) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  timeval limit{30, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(std::stoi(address.substr(address.rfind(':') + 1))));
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  return fd;
}

// Reads up to `n` bytes (fewer when the peer closes first).
std::string ReadUpTo(int fd, size_t n) {
  std::string out;
  char buf[256];
  while (out.size() < n) {
    const ssize_t got = ::read(fd, buf, std::min(sizeof buf, n - out.size()));
    if (got <= 0) break;
    out.append(buf, static_cast<size_t>(got));
  }
  return out;
}

void WriteAll(int fd, const std::string& bytes) {
  ASSERT_EQ(::write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
}

std::string Le(uint64_t v, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
  return out;
}

std::string HmacSha256(const std::string& key, const std::string& message) {
  unsigned char mac[32];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac, &len);
  return std::string(reinterpret_cast<char*>(mac), len);
}

// The connector's half of the handshake (raft/internal/transport.h), written here from the
// format's description: its header, nonce and proof for the acceptor's `hello`.
struct Handshake {
  std::string header;
  std::string nonce;
  std::string bytes;  // header + nonce + proof
};
// `target`: the raft id it means to reach (node 1, whose port every test dials, by default).
Handshake Connect(const std::string& secret, const std::string& hello, uint64_t group,
                  uint64_t raft_id, const std::string& address, uint64_t target = 1) {
  Handshake h;
  h.header = "DASR" + Le(3, 4) + Le(group, 8) + Le(raft_id, 8) + Le(target, 8) +
             Le(address.size(), 2) + address;
  h.nonce = std::string("0123456789abcdef");
  h.bytes = h.header + h.nonce +
            HmacSha256(secret, "das-raft-connect-v3" + hello.substr(8) + h.nonce + h.header);
  return h;
}

// A stranger on the raft port: bytes that are no handshake, and one of the first version
// (without a proof). The hub speaks first (its hello), then closes without an acknowledgement;
// the groups go on.
TEST_F(HubTest, StrangersOnTheRaftPortAreDropped) {
  for (const std::string& bytes :
       {std::string("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        "DASR" + Le(1, 4) + Le(1, 8) + Le(9, 8) + Le(11, 2) + "127.0.0.1:1"}) {
    const int fd = Dial(peers_[0].address);
    const std::string hello = ReadUpTo(fd, 24);
    ASSERT_EQ(hello.size(), 24u);
    EXPECT_EQ(hello.substr(0, 8), "DASR" + Le(3, 4));
    WriteAll(fd, bytes);
    char c;
    EXPECT_LE(::read(fd, &c, 1), 0) << "the hub should close without an acknowledgement";
    ::close(fd);
  }
  EXPECT_EQ(ProposeMany(0, "still", 5).size(), 5u);
}

// The handshake with the cluster secret: a proof made with the secret is acknowledged, and the
// acknowledgement proves the secret back over both nonces; a proof made with another secret, a
// handshake recorded on one connection and replayed on another (the hello's nonce differs), and
// a valid one for a group the node does not have, and one meant for another node (a peer that
// dialed the stale address of a node that moved) are all closed without an acknowledgement.
TEST_F(HubTest, OnlyAHandshakeThatProvesTheClusterSecretIsAcknowledged) {
  const std::string& address = peers_[0].address;
  {
    const int fd = Dial(address);
    const std::string hello = ReadUpTo(fd, 24);
    ASSERT_EQ(hello.size(), 24u);
    const Handshake h = Connect(kSecret, hello, 1, 77, "127.0.0.1:1");
    WriteAll(fd, h.bytes);
    const std::string ack = ReadUpTo(fd, 33);
    ASSERT_EQ(ack.size(), 33u);
    EXPECT_EQ(ack[0], '\x01');
    EXPECT_EQ(ack.substr(1),
              HmacSha256(kSecret, "das-raft-accept-v3" + hello.substr(8) + h.nonce + h.header));
    ::close(fd);
  }
  std::string recorded;
  {
    const int fd = Dial(address);
    const std::string hello = ReadUpTo(fd, 24);
    recorded = Connect(kSecret, hello, 1, 77, "127.0.0.1:1").bytes;
    ::close(fd);  // never sent here: replayed below
  }
  for (const auto& make : std::vector<std::function<std::string(const std::string&)>>{
           [](const std::string& hello) {
             return Connect("another secret, as long", hello, 1, 77, "127.0.0.1:1").bytes;
           },
           [&recorded](const std::string&) { return recorded; },
           [](const std::string& hello) {
             return Connect(kSecret, hello, 99, 77, "127.0.0.1:1").bytes;
           },
           [](const std::string& hello) {
             return Connect(kSecret, hello, 1, 77, "127.0.0.1:1", /*target=*/2).bytes;
           }}) {
    const int fd = Dial(address);
    const std::string hello = ReadUpTo(fd, 24);
    ASSERT_EQ(hello.size(), 24u);
    WriteAll(fd, make(hello));
    char c;
    EXPECT_LE(::read(fd, &c, 1), 0) << "the hub should close without an acknowledgement";
    ::close(fd);
  }
  EXPECT_EQ(ProposeMany(0, "still", 3).size(), 3u);
}

// A node whose secret differs is kept out of every group: the other two elect leaders and
// commit without it, and it receives none of their entries (there is no way in for them).
TEST_F(HubTest, ANodeWithAnotherSecretReceivesNothing) {
  StopNode(2);
  secrets_[2] = "not the cluster's secret";
  for (int g = 0; g < kGroups; ++g) machines_[2][g] = std::make_unique<Recorder>();
  ASSERT_NO_FATAL_FAILURE(StartNode(2));
  for (int g = 0; g < kGroups; ++g) {
    for (int i = 0; i < 5; ++i) {
      const int leader = raft::WaitForLeader({groups_[0][g].get(), groups_[1][g].get()});
      ASSERT_GE(leader, 0);
      std::promise<Result<uint64_t>> done;
      groups_[leader][g]->Propose("kept-out-" + std::to_string(i),
                                  [&done](Result<uint64_t> r) { done.set_value(r); });
      Result<uint64_t> index = done.get_future().get();
      ASSERT_TRUE(index.ok()) << index.status().ToString();
    }
    ASSERT_TRUE(machines_[0][g]->WaitPayloads(5));
    ASSERT_TRUE(machines_[1][g]->WaitPayloads(5));
    EXPECT_TRUE(machines_[2][g]->Payloads().empty()) << "group " << g + 1;
    EXPECT_NE(groups_[2][g]->Info().role, Role::kLeader);
  }
}

// A peer that connects and says nothing is dropped after the handshake timeout (500 ms here),
// and meanwhile the groups go on.
TEST_F(HubTest, ASilentPeerIsDroppedAfterTheHandshakeTimeout) {
  const int fd = Dial(peers_[1].address);
  EXPECT_EQ(ReadUpTo(fd, 24).size(), 24u) << "the hub's hello";
  char c;
  EXPECT_EQ(::read(fd, &c, 1), 0) << "the hub should close a silent connection";
  ::close(fd);
  EXPECT_EQ(ProposeMany(1, "go-on", 3).size(), 3u);
}

// Two real nodes (hubs proving kSecret, one group) whose third voter is a socket the test
// holds: the test plays that voter's side of every connection the two open to it.
class FakeThirdVoterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("das-hub-fake");
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ASSERT_EQ(::listen(listener_, 16), 0);
    socklen_t len = sizeof addr;
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len);
    std::vector<Peer> peers = {{1, "127.0.0.1:" + std::to_string(FreePort())},
                               {2, "127.0.0.1:" + std::to_string(FreePort())},
                               {3, "127.0.0.1:" + std::to_string(ntohs(addr.sin_port))}};
    for (int n = 0; n < 2; ++n) {
      loops_.push_back(std::move(Loop::Start("node")).value());
      ASSERT_TRUE(loops_[n]->OpenLog(dir_ + "/log-" + std::to_string(n + 1)).ok());
      hubs_.push_back(
          std::move(Hub::Open(*loops_[n], peers[n].address, HandshakeTimeout(), kSecret)).value());
      machines_.push_back(std::make_unique<Recorder>());
      GroupOptions options;
      options.hub = hubs_[n].get();
      options.group_id = 1;
      options.id = peers[n].id;
      options.address = peers[n].address;
      options.data_dir = dir_ + "/node-" + std::to_string(n + 1);
      options.voters = peers;
      Result<std::unique_ptr<Group>> group = Group::Open(*loops_[n], options, *machines_[n]);
      ASSERT_TRUE(group.ok()) << group.status().ToString();
      groups_.push_back(std::move(group).value());
    }
  }

  // Short, so that a hung voter's connections are retried often.
  virtual std::chrono::milliseconds HandshakeTimeout() const { return 300ms; }

  void TearDown() override {
    ::close(listener_);
    for (auto& group : groups_) group->Close();
    for (auto& hub : hubs_) hub->Close();
    for (auto& loop : loops_) loop->Stop();
    std::filesystem::remove_all(dir_);
  }

  // The next connection a real node opens to the fake voter (-1 after 60 s without one), with
  // a 30 s bound on each read from it.
  int AcceptOne() {
    timeval wait{60, 0};
    fd_set ready;
    FD_ZERO(&ready);
    FD_SET(listener_, &ready);
    if (::select(listener_ + 1, &ready, nullptr, nullptr, &wait) <= 0) return -1;
    const int fd = ::accept(listener_, nullptr, nullptr);
    timeval limit{30, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    return fd;
  }

  std::string dir_;
  int listener_ = -1;
  std::vector<std::unique_ptr<Loop>> loops_;
  std::vector<std::unique_ptr<Hub>> hubs_;
  std::vector<std::unique_ptr<Recorder>> machines_;
  std::vector<std::unique_ptr<Group>> groups_;
};

// A voter whose port accepts but never acknowledges (a hung node): each connect to it is given
// up after the handshake timeout, so raft keeps retrying it (without the timeout the first
// attempt would hang forever).
TEST_F(FakeThirdVoterTest, APeerThatNeverAcknowledgesIsRetried) {
  // Hold each connection open and silent: two replicas connect at least once, then retry after
  // a timeout.
  std::vector<int> held;
  for (int i = 0; i < 4; ++i) {
    const int fd = AcceptOne();
    ASSERT_GE(fd, 0) << "connection " << i + 1 << " from the replicas to the hung voter";
    held.push_back(fd);
  }
  for (int fd : held) ::close(fd);
}

// Long enough that no connector gives up while the test plays its part on a loaded machine.
class FakeAcceptorTest : public FakeThirdVoterTest {
 protected:
  std::chrono::milliseconds HandshakeTimeout() const override { return 20s; }
};

// The connector checks the acceptor's proof too: an ack whose HMAC is not the secret's gets
// the connection closed before a byte of raft traffic, and one whose HMAC holds gets raft
// traffic at once (a vote request or a heartbeat for the third voter), so the check is what
// tells the two apart.
TEST_F(FakeAcceptorTest, AnAcceptorThatCannotProveTheSecretIsSentNothing) {
  for (const bool prove : {false, true}) {
    const int fd = AcceptOne();
    ASSERT_GE(fd, 0);
    std::string hello = "DASR" + Le(3, 4) + std::string(16, 'a');
    WriteAll(fd, hello);
    const std::string header = ReadUpTo(fd, 34);
    ASSERT_EQ(header.size(), 34u);
    const size_t address_len = static_cast<unsigned char>(header[32]) |
                               static_cast<size_t>(static_cast<unsigned char>(header[33])) << 8;
    const std::string rest = ReadUpTo(fd, address_len + 16 + 32);
    ASSERT_EQ(rest.size(), address_len + 16 + 32);
    const std::string full_header = header + rest.substr(0, address_len);
    const std::string nonce = rest.substr(address_len, 16);
    EXPECT_EQ(rest.substr(address_len + 16),
              HmacSha256(kSecret, "das-raft-connect-v3" + hello.substr(8) + nonce + full_header))
        << "the connector's own proof";
    const std::string mac =
        prove ? HmacSha256(kSecret, "das-raft-accept-v3" + hello.substr(8) + nonce + full_header)
              : std::string(32, '\0');
    WriteAll(fd, "\x01" + mac);
    char c;
    if (prove) {
      EXPECT_EQ(::read(fd, &c, 1), 1) << "raft traffic after a proven ack";
    } else {
      EXPECT_EQ(::read(fd, &c, 1), 0) << "the connection closed after an unproven ack";
    }
    ::close(fd);
  }
}

}  // namespace
}  // namespace das::raft
