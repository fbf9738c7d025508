#include "common/clock.h"

namespace das {
namespace {

class RealClock final : public Clock {
 public:
  Monotonic Now() const override { return std::chrono::steady_clock::now(); }
  int64_t WallMicros() const override {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

}  // namespace

const Clock& Clock::Real() {
  static const RealClock kReal;
  return kReal;
}

ManualClock::ManualClock()
    : monotonic_ns_(std::chrono::steady_clock::now().time_since_epoch().count()),
      wall_us_(Real().WallMicros()) {}

}  // namespace das
