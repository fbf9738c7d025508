// Time, injected: code that waits or expires asks a Clock instead of std::chrono, so that tests
// advance a ManualClock instead of sleeping (leveldb's Env, Seastar's manual_clock).
//
// Two readings: a monotonic one for deadlines and intervals, and the wall clock for what is
// stored (ingest timestamps, when an idempotency key was committed).
// Thread-safety: every method may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace das {

class Clock {
 public:
  using Monotonic = std::chrono::steady_clock::time_point;

  virtual ~Clock() = default;
  virtual Monotonic Now() const = 0;
  // Microseconds since the Unix epoch (the unit of DuckDB's TIMESTAMP).
  virtual int64_t WallMicros() const = 0;

  // The process's real clock; lives forever.
  static const Clock& Real();
};

// A clock that moves only when told to. Starts at the real time of its creation, so that
// values it gives look like real ones.
class ManualClock final : public Clock {
 public:
  ManualClock();
  Monotonic Now() const override {
    return Monotonic(std::chrono::nanoseconds(monotonic_ns_.load(std::memory_order_acquire)));
  }
  int64_t WallMicros() const override { return wall_us_.load(std::memory_order_acquire); }

  // Moves both readings forward by `d`.
  void Advance(std::chrono::nanoseconds d) {
    monotonic_ns_.fetch_add(d.count(), std::memory_order_acq_rel);
    wall_us_.fetch_add(std::chrono::duration_cast<std::chrono::microseconds>(d).count(),
                       std::memory_order_acq_rel);
  }

 private:
  std::atomic<int64_t> monotonic_ns_;
  std::atomic<int64_t> wall_us_;
};

}  // namespace das
