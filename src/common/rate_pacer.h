// RatePacer: a rate limit in bytes/s for transfers that share it (every copy a worker
// fetches). Each transfer, once it has `bytes` that it asked for at `asked`, is told when it
// may go on: after the transfers before it were paid for, plus its own bytes' share of time.
// A transfer that is slower than the rate waits for nothing; faster ones are held back to it.
// Thread-safety: Due() from any thread.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <mutex>

#include "common/mutex.h"

namespace das {

class RatePacer {
 public:
  using Clock = std::chrono::steady_clock;
  // 0: no limit.
  explicit RatePacer(uint64_t bytes_per_s) : bytes_per_s_(bytes_per_s) {}

  // When the transfer of `bytes` asked for at `asked` may go on (`asked` itself, unlimited).
  Clock::time_point Due(Clock::time_point asked, uint64_t bytes) {
    if (bytes_per_s_ == 0) return asked;
    MutexLock lock(mu_);
    paced_until_ = std::max(paced_until_, asked) +
                   std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(
                       static_cast<double>(bytes) / static_cast<double>(bytes_per_s_)));
    return paced_until_;
  }

  uint64_t bytes_per_s() const { return bytes_per_s_; }

 private:
  const uint64_t bytes_per_s_;
  Mutex mu_;
  Clock::time_point paced_until_ GUARDED_BY(mu_){};
};

}  // namespace das
