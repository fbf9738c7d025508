#include "support/raft_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace das::it {
namespace {

constexpr size_t kHello = 24;   // the node's: magic 4, version 4, nonce 16
constexpr size_t kHeader = 26;  // magic 4, version 4, group id 8, raft id 8, address length 2

bool ReadFully(int fd, unsigned char* buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    const ssize_t r = ::read(fd, buf + got, n - got);
    if (r <= 0) return false;
    got += static_cast<size_t>(r);
  }
  return true;
}

bool WriteFully(int fd, const unsigned char* buf, size_t n) {
  size_t sent = 0;
  while (sent < n) {
    const ssize_t w = ::send(fd, buf + sent, n - sent, MSG_NOSIGNAL);
    if (w <= 0) return false;
    sent += static_cast<size_t>(w);
  }
  return true;
}

int Connect(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

}  // namespace

RaftProxy::RaftProxy(int target_port) : target_port_(target_port) {
  listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
  const int one = 1;
  ::setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::listen(listener_, 64);
  socklen_t len = sizeof addr;
  ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  if (::pipe(wake_) != 0) wake_[0] = wake_[1] = -1;
  acceptor_ = std::thread([this] { AcceptLoop(); });
}

RaftProxy::~RaftProxy() {
  stopping_ = true;
  if (wake_[1] >= 0) (void)!::write(wake_[1], "x", 1);
  acceptor_.join();
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mu_);
    CutLocked();
    threads.swap(threads_);
  }
  for (std::thread& t : threads) t.join();
  ::close(listener_);
  ::close(wake_[0]);
  ::close(wake_[1]);
}

void RaftProxy::AcceptLoop() {
  while (!stopping_) {
    pollfd fds[2] = {{listener_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) continue;
    if (fds[1].revents != 0) return;
    const int client = ::accept(listener_, nullptr, nullptr);
    if (client < 0) continue;
    std::lock_guard lock(mu_);
    threads_.emplace_back([this, client] { Serve(client); });
  }
}

bool RaftProxy::Blocked(uint64_t sender) {
  std::lock_guard lock(mu_);
  return isolated_ || dropped_.count(sender) > 0;
}

// Waits until `fd` is readable; false when `watch` (which must stay silent meanwhile) closes,
// or the proxy stops. Never blocks past a Cut (the shutdown makes `fd` readable).
bool RaftProxy::AwaitReadable(int fd, int watch) {
  while (!stopping_) {
    pollfd fds[2] = {{fd, POLLIN, 0}, {watch, POLLIN, 0}};
    if (::poll(fds, 2, 200) < 0) return false;
    if (fds[0].revents != 0) return true;
    if (fds[1].revents != 0) return false;  // the silent side spoke or, rather, hung up
  }
  return false;
}

void RaftProxy::Serve(int client) {
  const int server = Blocked(0) ? -1 : Connect(target_port_);
  if (server < 0) {
    ::close(client);
    return;
  }
  auto link = std::make_shared<Link>(Link{client, server, 0});
  {
    std::lock_guard lock(mu_);
    if (isolated_) {
      ::close(client);
      ::close(server);
      return;
    }
    links_.push_back(link);  // from now on a Cut reaches it
  }
  // The node speaks first (its hello); then the connector's header names the sender.
  unsigned char hello[kHello];
  unsigned char header[kHeader];
  bool open = AwaitReadable(server, client) && ReadFully(server, hello, kHello) &&
              WriteFully(client, hello, kHello) && ReadFully(client, header, kHeader);
  if (open) {
    uint64_t sender = 0;
    for (int i = 0; i < 8; ++i) sender |= static_cast<uint64_t>(header[16 + i]) << (8 * i);
    std::lock_guard lock(mu_);
    link->sender = sender;
    open = !isolated_ && dropped_.count(sender) == 0;
  }
  open = open && WriteFully(server, header, kHeader);
  unsigned char buf[16384];
  while (open && !stopping_) {
    pollfd fds[2] = {{client, POLLIN, 0}, {server, POLLIN, 0}};
    if (::poll(fds, 2, 200) < 0) break;
    for (int i = 0; i < 2 && open; ++i) {
      if (fds[i].revents == 0) continue;
      const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      open = n > 0 && WriteFully(fds[1 - i].fd, buf, static_cast<size_t>(n));
    }
  }
  std::lock_guard lock(mu_);
  links_.erase(std::remove(links_.begin(), links_.end(), link), links_.end());
  ::close(client);
  ::close(server);
}

// Shuts the sockets down (their threads close them), so no byte passes after this returns.
void RaftProxy::CutLocked() {
  for (const std::shared_ptr<Link>& link : links_) {
    if (isolated_ || dropped_.count(link->sender) > 0 || stopping_) {
      ::shutdown(link->client, SHUT_RDWR);
      ::shutdown(link->server, SHUT_RDWR);
    }
  }
}

void RaftProxy::Isolate() {
  std::lock_guard lock(mu_);
  isolated_ = true;
  CutLocked();
}

void RaftProxy::DropFrom(uint64_t sender) {
  std::lock_guard lock(mu_);
  dropped_.insert(sender);
  CutLocked();
}

void RaftProxy::Heal() {
  std::lock_guard lock(mu_);
  isolated_ = false;
  dropped_.clear();
}

}  // namespace das::it
