#include "raft/hub.h"

#include <future>
#include <utility>

#include "raft/internal/raft_c.h"

namespace das::raft {

Result<std::unique_ptr<Hub>> Hub::Open(Loop& loop, std::string address,
                                       std::chrono::milliseconds handshake_timeout) {
  das_raft_hub* hub = nullptr;
  char errmsg[256] = {0};
  int rv = 0;
  loop.RunSync([&] {
    rv = das_raft_hub_open(static_cast<uv_loop_t*>(loop.uv_loop()), address.c_str(),
                           static_cast<unsigned>(handshake_timeout.count()), &hub, errmsg,
                           sizeof errmsg);
  });
  if (rv != 0) return Unavailable("raft transport: " + std::string(errmsg));
  return std::unique_ptr<Hub>(new Hub(loop, std::move(address), hub));
}

Hub::~Hub() { Close(); }

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
