// WitnessKeeper: the control node's witness (control/witness.h) across the topology's epochs:
// opened the first time the topology names it, given each newer epoch, read by /health,
// closed last.
// Thread-safety: Keep from one thread at a time (the replication loop); Health from any
// thread; Close (or the destructor) once nothing calls Keep or Health any more.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "control/witness.h"
#include "das/v1/internal.pb.h"

namespace das::control {

class WitnessKeeper {
 public:
  explicit WitnessKeeper(WitnessOptions options) : options_(std::move(options)) {}
  ~WitnessKeeper() { Close(); }
  WitnessKeeper(const WitnessKeeper&) = delete;
  WitnessKeeper& operator=(const WitnessKeeper&) = delete;

  // Makes the witness hold `topology` when it names the witness (opened at the first such
  // epoch). Whether it holds `topology`'s epoch now; a failure is logged and tried again at the
  // next call.
  bool Keep(const internal::v1::Topology& topology);
  // The witness's replicas (none before it opened), without blocking the thread.
  boost::asio::awaitable<std::vector<internal::v1::ReplicaHealth>> Health();
  void Close();

 private:
  const WitnessOptions options_;
  std::unique_ptr<Witness> witness_;  // set once by Keep
  std::atomic<Witness*> view_{nullptr};
  uint64_t epoch_ = 0;  // Keep only: the epoch the witness holds
};

}  // namespace das::control
