#include "raft/hub.h"

#include <future>
#include <utility>

#include "raft/internal/raft_c.h"

namespace das::raft {

namespace {

// A refused connection, from the loop thread: a warning, at most one a peer every 10 s.
void LogRefusal(void* arg, const char* peer, const char* line) {
  std::string_view host(peer);
  host = host.substr(0, host.rfind(':'));  // every connection has a port of its own
  const std::optional<uint64_t> held_back =
      static_cast<LogThrottle*>(arg)->Admit(host, std::chrono::steady_clock::now());
  if (!held_back) return;
  if (*held_back == 0) {
    spdlog::warn("{}", line);
  } else {
    spdlog::warn("{} ({} more from {} since the last such line)", line, *held_back, host);
  }
}

}  // namespace

Result<std::unique_ptr<Hub>> Hub::Open(Loop& loop, std::string address,
                                       std::chrono::milliseconds handshake_timeout,
                                       const std::string& cluster_secret) {
  auto refusals = std::make_unique<LogThrottle>(std::chrono::seconds(10));
  das_raft_hub* hub = nullptr;
  char errmsg[256] = {0};
  int rv = 0;
  loop.RunSync([&] {
    rv = das_raft_hub_open(static_cast<uv_loop_t*>(loop.uv_loop()), address.c_str(),
                           static_cast<unsigned>(handshake_timeout.count()), cluster_secret.data(),
                           cluster_secret.size(), &LogRefusal, refusals.get(), &hub, errmsg,
                           sizeof errmsg);
  });
  if (rv != 0) return Unavailable("raft transport: " + std::string(errmsg));
  return std::unique_ptr<Hub>(new Hub(loop, std::move(address), hub, std::move(refusals)));
}

Hub::~Hub() { Close(); }

Status Hub::SetPeers(const std::vector<std::pair<uint64_t, std::string>>& peers) {
  std::vector<uint64_t> ids;
  std::vector<const char*> addresses;
  for (const auto& [id, address] : peers) {
    ids.push_back(id);
    addresses.push_back(address.c_str());
  }
  int rv = 0;
  const bool ran = loop_.RunSync([&] {
    if (handle_ == nullptr) return;
    rv = das_raft_hub_set_peers(static_cast<das_raft_hub*>(handle_), ids.data(), addresses.data(),
                                ids.size());
  });
  if (!ran || handle_ == nullptr) return Unavailable("raft transport: closed");
  if (rv != 0) return InvalidArgument("raft transport: a peer address is longer than 255 bytes");
  return Status::Ok();
}

void Hub::Close() {
  if (handle_ == nullptr) return;
  auto* hub = static_cast<das_raft_hub*>(std::exchange(handle_, nullptr));
  std::promise<void> closed;
  const bool posted = loop_.RunSync([&] {
    das_raft_hub_close(
        hub, [](void* arg) { static_cast<std::promise<void>*>(arg)->set_value(); }, &closed);
  });
  if (posted) closed.get_future().get();
}

}  // namespace das::raft
