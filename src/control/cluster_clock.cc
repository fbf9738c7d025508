#include "control/cluster_clock.h"

#include <algorithm>
#include <cstdlib>
#include <vector>

namespace das::control {

ClusterClock::ClusterClock(const Clock& clock, std::chrono::milliseconds bound,
                           std::chrono::milliseconds fresh_for)
    : clock_(clock), bound_(bound), fresh_for_(fresh_for) {}

ClusterClock::Offset ClusterClock::Record(uint64_t worker, int64_t sent_wall_us,
                                          Clock::Monotonic sent, Clock::Monotonic received,
                                          int64_t remote_us) {
  const int64_t round_trip_us = std::max<int64_t>(
      0, std::chrono::duration_cast<std::chrono::microseconds>(received - sent).count());
  Offset offset{remote_us - (sent_wall_us + round_trip_us / 2), round_trip_us / 2, received};
  {
    MutexLock lock(mu_);
    offsets_[worker] = offset;
  }
  Refresh();
  return offset;
}

void ClusterClock::Forget(uint64_t worker) {
  {
    MutexLock lock(mu_);
    offsets_.erase(worker);
  }
  Refresh();
}

void ClusterClock::Refresh() { correction_us_.store(CorrectionUs(), std::memory_order_relaxed); }

std::optional<ClusterClock::Offset> ClusterClock::Of(uint64_t worker) const {
  MutexLock lock(mu_);
  auto it = offsets_.find(worker);
  if (it == offsets_.end()) return std::nullopt;
  return it->second;
}

std::map<uint64_t, ClusterClock::Offset> ClusterClock::All() const {
  MutexLock lock(mu_);
  return offsets_;
}

bool ClusterClock::PastBound(const Offset& offset) const {
  const int64_t bound_us = std::chrono::duration_cast<std::chrono::microseconds>(bound_).count();
  return std::llabs(offset.offset_us) - offset.uncertainty_us > bound_us;
}

int64_t ClusterClock::CorrectionUs() const {
  // Every clock's offset from this node's: its own (0) and each fresh probe's.
  std::vector<int64_t> offsets{0};
  const Clock::Monotonic now = clock_.Now();
  {
    MutexLock lock(mu_);
    for (const auto& [worker, offset] : offsets_) {
      if (now - offset.measured_at <= fresh_for_) offsets.push_back(offset.offset_us);
    }
  }
  std::sort(offsets.begin(), offsets.end());
  const size_t n = offsets.size();
  int64_t median = offsets[n / 2];
  if (n % 2 == 0) {
    // A tie between the two middle clocks: this node's own stands if it lies between them,
    // else the one nearer to it.
    const int64_t low = offsets[n / 2 - 1];
    const int64_t high = offsets[n / 2];
    median = low <= 0 && 0 <= high ? 0 : (std::llabs(low) < std::llabs(high) ? low : high);
  }
  const int64_t bound_us = std::chrono::duration_cast<std::chrono::microseconds>(bound_).count();
  return std::llabs(median) > bound_us ? median : 0;
}

}  // namespace das::control
