// The rows the benchmarks write: keys "k<n>" drawn uniformly from a key space of `key_space`
// keys, values uniform in [0, 1000). Shared so that das-bench and duckdb-ceiling store alike.
#pragma once

#include <cinttypes>
#include <cstdio>
#include <random>
#include <string>

namespace das::bench {

inline std::string RandomKey(std::mt19937_64& rng, uint64_t key_space) {
  // snprintf rather than "k" + std::to_string(): g++ 12 -O3 reports a false -Wrestrict there.
  char buffer[24];
  const int n = std::snprintf(buffer, sizeof(buffer), "k%" PRIu64, rng() % key_space);
  return std::string(buffer, static_cast<size_t>(n));
}

inline double RandomValue(std::mt19937_64& rng) {
  return std::uniform_real_distribution<double>(0.0, 1000.0)(rng);
}

}  // namespace das::bench
