// RaftProxy: a TCP proxy in front of one node's raft port, for partition tests. Peers dial the
// proxy (the node advertises its port with --raft-advertise-port); it passes the node's hello
// on, reads the first 26 bytes the peer sends (our transport's handshake: magic, version, group
// id, the sender's raft id, address length) and forwards everything, both ways. It never
// changes a byte, so the handshake's proofs of the cluster secret hold through it. A partition is
// made of two rules: Isolate() on the cut-off node's own proxy drops every connection to it, and
// DropFrom(id) on every other proxy drops connections the cut-off node opens. Heal() lifts both.
// Thread-safety: every method from any thread. Lifecycle: the destructor stops the proxy and
// joins its threads.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

namespace das::it {

class RaftProxy {
 public:
  // Listens on a free loopback port and forwards to 127.0.0.1:`target_port`.
  explicit RaftProxy(int target_port);
  ~RaftProxy();
  RaftProxy(const RaftProxy&) = delete;
  RaftProxy& operator=(const RaftProxy&) = delete;

  int port() const { return port_; }
  // Drops every connection through this proxy, now and later.
  void Isolate();
  // Drops the connections whose handshake names raft id `sender`, now and later.
  void DropFrom(uint64_t sender);
  void Heal();

 private:
  struct Link {
    int client = -1;
    int server = -1;
    uint64_t sender = 0;
  };
  void AcceptLoop();
  void Serve(int client);
  bool AwaitReadable(int fd, int watch);
  bool Blocked(uint64_t sender);
  void CutLocked();

  const int target_port_;
  int listener_ = -1;
  int port_ = 0;
  int wake_[2] = {-1, -1};  // a pipe that wakes the accept loop to stop
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;

  std::mutex mu_;
  bool isolated_ = false;                     // GUARDED_BY(mu_)
  std::set<uint64_t> dropped_;                // GUARDED_BY(mu_)
  std::vector<std::shared_ptr<Link>> links_;  // GUARDED_BY(mu_)
  std::vector<std::thread> threads_;          // GUARDED_BY(mu_)
};

}  // namespace das::it
