// Latency bookkeeping shared by the benchmarks: every sample is kept (no histogram buckets),
// sorted once at the end, and read off as exact percentiles.
// Thread-safety: none; give each thread or coroutine its own vector and Merge them at the end.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace das::bench {

using Clock = std::chrono::steady_clock;

// Exact percentiles of a set of latencies, in milliseconds.
struct LatencySummary {
  size_t samples = 0;
  double min_ms = 0;
  double p50_ms = 0;
  double p90_ms = 0;
  double p99_ms = 0;
  double p999_ms = 0;
  double max_ms = 0;
  double mean_ms = 0;
};

inline int64_t ElapsedNanos(Clock::time_point since) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - since).count();
}

inline double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// Nearest-rank percentile of sorted `ns`, in ms. REQUIRES: !ns.empty(), 0 <= p <= 1.
inline double PercentileMs(const std::vector<int64_t>& ns, double p) {
  const size_t rank = static_cast<size_t>(p * static_cast<double>(ns.size() - 1) + 0.5);
  return static_cast<double>(ns[std::min(rank, ns.size() - 1)]) / 1e6;
}

// Sorts `ns` (nanoseconds) in place and summarises it.
inline LatencySummary Summarize(std::vector<int64_t>& ns) {
  LatencySummary s;
  s.samples = ns.size();
  if (ns.empty()) return s;
  std::sort(ns.begin(), ns.end());
  double total = 0;
  for (int64_t v : ns) total += static_cast<double>(v);
  s.min_ms = static_cast<double>(ns.front()) / 1e6;
  s.p50_ms = PercentileMs(ns, 0.50);
  s.p90_ms = PercentileMs(ns, 0.90);
  s.p99_ms = PercentileMs(ns, 0.99);
  s.p999_ms = PercentileMs(ns, 0.999);
  s.max_ms = static_cast<double>(ns.back()) / 1e6;
  s.mean_ms = total / static_cast<double>(ns.size()) / 1e6;
  return s;
}

inline void PrintLatency(const char* label, const LatencySummary& s) {
  std::printf(
      "%s latency (ms, %zu samples): min %.3f  p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  "
      "max %.3f  mean %.3f\n",
      label, s.samples, s.min_ms, s.p50_ms, s.p90_ms, s.p99_ms, s.p999_ms, s.max_ms, s.mean_ms);
}

}  // namespace das::bench
