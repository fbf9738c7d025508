// ClusterClock: what the control node knows of the workers' clocks, and the time it stamps rows
// with (each internal write carries it; the rows' ingest time is that, raised per shard to stay
// increasing), so that no single node's wrong clock hides rows from time-range queries.
//
// A probe (ClockProbe) reads a worker's wall clock over one round trip; its offset is the
// worker's reading minus this node's wall clock at the probe's midpoint, give or take half the
// round trip (the way CockroachDB's RemoteClockMonitor measures). An offset is past the bound
// when it is beyond --max-clock-offset-ms even after its uncertainty.
//
// The cluster's time is this node's wall clock, plus a correction: the median of every fresh
// offset and this node's own (0), applied only when that median is past the bound. So a worker
// whose clock is wrong never moves it (no worker stamps rows), and a control node whose clock is
// wrong is outvoted by two workers that agree; with a tie (one worker, or one fresh offset on
// each side) this node's own clock stands. Pure: no I/O, a Clock injected.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>

#include "common/clock.h"
#include "common/mutex.h"

namespace das::control {

class ClusterClock {
 public:
  struct Offset {
    int64_t offset_us = 0;       // worker minus this node
    int64_t uncertainty_us = 0;  // half the probe's round trip
    Clock::Monotonic measured_at{};
  };

  // `bound`: --max-clock-offset-ms. An offset older than `fresh_for` no longer counts towards
  // the correction (the worker stopped answering probes). `clock` outlives this.
  ClusterClock(const Clock& clock, std::chrono::milliseconds bound,
               std::chrono::milliseconds fresh_for);
  ClusterClock(const ClusterClock&) = delete;
  ClusterClock& operator=(const ClusterClock&) = delete;

  // A probe of `worker` sent at this node's `sent_wall_us` / `sent` and answered at `received`
  // with the worker's wall clock `remote_us`. Returns the offset it recorded.
  Offset Record(uint64_t worker, int64_t sent_wall_us, Clock::Monotonic sent,
                Clock::Monotonic received, int64_t remote_us);
  // `worker` left the cluster.
  void Forget(uint64_t worker);

  std::optional<Offset> Of(uint64_t worker) const;
  std::map<uint64_t, Offset> All() const;
  bool PastBound(const Offset& offset) const;
  std::chrono::milliseconds bound() const { return bound_; }
  const Clock& clock() const { return clock_; }

  // Added to this node's wall clock to give the cluster's time (see above), computed now.
  int64_t CorrectionUs() const;
  // Keeps CorrectionUs() for NowUs() (Record and Forget do too; the probe once a round, so that
  // offsets going stale count).
  void Refresh();
  // The cluster's time, in microseconds since the Unix epoch: this node's clock plus the
  // correction last kept (an atomic read: every internal write asks).
  int64_t NowUs() const {
    return clock_.WallMicros() + correction_us_.load(std::memory_order_relaxed);
  }

 private:
  const Clock& clock_;
  const std::chrono::milliseconds bound_;
  const std::chrono::milliseconds fresh_for_;
  mutable Mutex mu_;
  std::map<uint64_t, Offset> offsets_ GUARDED_BY(mu_);
  std::atomic<int64_t> correction_us_{0};
};

}  // namespace das::control
