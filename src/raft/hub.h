// Hub: one TCP port for every Raft group of this node. Peers connect to the node's one raft
// address; a handshake names the group and proves the cluster secret both ways, and the
// connection is handed to that group's replica (internal/transport.h). A connection that does
// not prove the secret is refused with a warning naming the peer (at most one a peer every
// 10 s). Every raft socket has TCP_NODELAY.
// Thread-safety: Open/Close from any thread but the loop's. Lifecycle: the hub outlives the
// groups on it (close them first); the Loop outlives the hub.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/log.h"
#include "common/status.h"
#include "raft/loop.h"

namespace das::raft {

class Hub {
 public:
  // Listens on `address` (host:port with an IP literal host). kUnavailable if it cannot. A
  // handshake, either way, that does not complete within `handshake_timeout` is given up (a
  // silent peer is dropped; a connect whose peer never acknowledges fails and raft retries).
  // `cluster_secret` empty: none (only peers without one are accepted).
  static Result<std::unique_ptr<Hub>> Open(
      Loop& loop, std::string address,
      std::chrono::milliseconds handshake_timeout = std::chrono::seconds(5),
      const std::string& cluster_secret = {});
  ~Hub();
  Hub(const Hub&) = delete;
  Hub& operator=(const Hub&) = delete;

  const std::string& address() const { return address_; }
  // Where peers are now, by raft id (host:port each): a connection to one of them dials this
  // address, not the one its groups' configurations keep (the address it had when it was added;
  // a worker that comes back elsewhere keeps its id). Replaces the previous book; ids not in it
  // are dialed at their configured address. kInvalidArgument for an address over 255 bytes.
  Status SetPeers(const std::vector<std::pair<uint64_t, std::string>>& peers);
  // Stops listening and waits until the hub released its memory. Safe to call more than once.
  // REQUIRES: every group on the hub is closed.
  void Close();

  // The C handle, for src/raft's own files.
  void* handle() const { return handle_; }

 private:
  Hub(Loop& loop, std::string address, void* handle, std::unique_ptr<LogThrottle> refusals)
      : loop_(loop),
        address_(std::move(address)),
        handle_(handle),
        refusals_(std::move(refusals)) {}
  Loop& loop_;
  const std::string address_;
  void* handle_;  // das_raft_hub*; used on the loop thread only; null once closed
  std::unique_ptr<LogThrottle> refusals_;  // the C hub's log argument: outlives it
};

}  // namespace das::raft
