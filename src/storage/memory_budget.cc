#include "storage/memory_budget.h"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <string>

namespace das::storage {
namespace {

// A cgroup limit file's value; 0 for "max", a missing file or anything unreadable.
uint64_t ReadLimit(const char* path) {
  std::ifstream in(path);
  std::string text;
  if (!(in >> text) || text.empty() || text == "max") return 0;
  try {
    return std::stoull(text);
  } catch (...) {
    return 0;
  }
}

}  // namespace

uint64_t MachineMemoryBytes() {
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page_size = sysconf(_SC_PAGE_SIZE);
  uint64_t machine = pages > 0 && page_size > 0
                         ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page_size)
                         : 0;
  for (const char* path :
       {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    const uint64_t limit = ReadLimit(path);
    // cgroup v1 says "no limit" with a number near 2^63.
    if (limit != 0 && (machine == 0 || limit < machine)) machine = limit;
  }
  return machine;
}

uint64_t DefaultDuckdbMemory(uint64_t machine_bytes) {
  if (machine_bytes == 0) return 0;
  return std::max<uint64_t>(machine_bytes / 4, uint64_t{128} << 20);
}

}  // namespace das::storage
