#include "metrics/process_metrics.h"

#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace das::metrics {
namespace {

using Kind = ScrapedFamily::Kind;

ScrapedFamily One(std::string name, std::string help, Kind kind, double value, Labels labels = {}) {
  ScrapedFamily family;
  family.name = std::move(name);
  family.help = std::move(help);
  family.kind = kind;
  family.samples.push_back({std::move(labels), value});
  return family;
}

// Fields 14 (utime), 15 (stime), 22 (starttime, in clock ticks since boot) and 23 (vsize, bytes)
// of /proc/self/stat; the command name (field 2) may hold spaces, so fields count after its ')'.
struct Stat {
  double cpu_seconds = 0;
  double start_ticks = 0;
  double virtual_bytes = 0;
  bool ok = false;
};

Stat ReadStat() {
  std::ifstream in("/proc/self/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  Stat stat;
  const size_t close = text.rfind(')');
  if (close == std::string::npos) return stat;
  std::istringstream fields(text.substr(close + 2));
  std::vector<std::string> f;
  for (std::string field; fields >> field;) f.push_back(field);
  // f[0] is field 3 (state).
  if (f.size() < 21) return stat;
  const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  stat.cpu_seconds = (std::stod(f[11]) + std::stod(f[12])) / tick;
  stat.start_ticks = std::stod(f[19]);
  stat.virtual_bytes = std::stod(f[20]);
  stat.ok = true;
  return stat;
}

double BootTimeSeconds() {
  std::ifstream in("/proc/stat");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("btime ", 0) == 0) return std::stod(line.substr(6));
  }
  return 0;
}

double ResidentBytes() {
  std::ifstream in("/proc/self/statm");
  double pages_total = 0;
  double pages_resident = 0;
  in >> pages_total >> pages_resident;
  return pages_resident * static_cast<double>(sysconf(_SC_PAGESIZE));
}

double OpenFds() {
  std::error_code error;
  double n = 0;
  for (std::filesystem::directory_iterator it("/proc/self/fd", error), end; !error && it != end;
       it.increment(error)) {
    ++n;
  }
  return n;
}

}  // namespace

void AddProcessMetrics(Registry& registry) {
  const double boot = BootTimeSeconds();
  registry.AddCollector([boot, version = std::string(DAS_VERSION)] {
    std::vector<ScrapedFamily> families;
    const Stat stat = ReadStat();
    if (stat.ok) {
      families.push_back(One("process_cpu_seconds_total", "User and system CPU time spent",
                             Kind::kCounter, stat.cpu_seconds));
      families.push_back(One("process_virtual_memory_bytes", "Virtual memory size", Kind::kGauge,
                             stat.virtual_bytes));
      families.push_back(One("process_start_time_seconds",
                             "Start time of the process since the Unix epoch", Kind::kGauge,
                             boot + stat.start_ticks / static_cast<double>(sysconf(_SC_CLK_TCK))));
    }
    families.push_back(One("process_resident_memory_bytes", "Resident memory size", Kind::kGauge,
                           ResidentBytes()));
    families.push_back(One("process_open_fds", "Open file descriptors", Kind::kGauge, OpenFds()));
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
      families.push_back(One("process_max_fds", "The limit of open file descriptors", Kind::kGauge,
                             static_cast<double>(limit.rlim_cur)));
    }
    families.push_back(One("das_build_info", "1, labelled with the version this node runs",
                           Kind::kGauge, 1, {{"version", version}}));
    return families;
  });
}

}  // namespace das::metrics
