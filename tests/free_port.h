// A free TCP port on 127.0.0.1 for a test's server, shared by the unit and integration tests.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <mutex>
#include <random>
#include <set>

namespace das::test {

// The first port of the kernel's ephemeral range (outgoing connections' source ports).
inline int EphemeralLow() {
  std::ifstream in("/proc/sys/net/ipv4/ip_local_port_range");
  int low = 32768;
  int high = 60999;
  if (!(in >> low >> high)) low = 32768;
  return low;
}

inline bool CanBind(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return ok;
}

// A port nobody listens on now, chosen below the ephemeral range (so that an outgoing
// connection does not take it as its source port before the server binds it) and never handed
// out twice by this process: two servers asked for ports one after the other never get the same
// one (the kernel's own choice, bind to port 0 then close, may give the same port twice).
inline int FreePort() {
  static std::mutex mu;
  static std::set<int> handed_out;
  static std::mt19937 rng(
      static_cast<unsigned>(::getpid()) * 7919u +
      static_cast<unsigned>(std::chrono::steady_clock::now().time_since_epoch().count()));
  std::lock_guard<std::mutex> lock(mu);
  // Above 10080, the last port browsers refuse to load a page from (net::ERR_UNSAFE_PORT): the
  // console test's headless Chromium once drew it.
  const int low = 10100;
  const int high = std::max(low + 1000, EphemeralLow() - 1);
  std::uniform_int_distribution<int> dist(low, high);
  for (int attempt = 0; attempt < 1000; ++attempt) {
    const int port = dist(rng);
    if (handed_out.count(port) != 0 || !CanBind(port)) continue;
    handed_out.insert(port);
    return port;
  }
  // None free below the ephemeral range: the kernel's choice.
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  const int port = ntohs(addr.sin_port);
  handed_out.insert(port);
  return port;
}

}  // namespace das::test
