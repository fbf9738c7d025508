#include "control/cluster_map.h"

#include <charconv>
#include <set>

#include "common/hash.h"

namespace das::control {

namespace {

Result<WorkerAddress> ParseWorker(std::string_view entry) {
  size_t colon = entry.rfind(':');
  if (colon == std::string_view::npos || colon == 0) {
    return InvalidArgument("worker '" + std::string(entry) + "' is not host:port");
  }
  std::string_view port_text = entry.substr(colon + 1);
  unsigned port = 0;
  auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || ptr != port_text.data() + port_text.size() || port == 0 ||
      port > 65535) {
    return InvalidArgument("worker '" + std::string(entry) + "' has no valid port");
  }
  return WorkerAddress{std::string(entry.substr(0, colon)), static_cast<uint16_t>(port)};
}

}  // namespace

Result<std::vector<WorkerAddress>> ParseWorkerList(std::string_view text) {
  std::vector<WorkerAddress> workers;
  while (!text.empty()) {
    size_t comma = text.find(',');
    std::string_view entry = text.substr(0, comma);
    while (!entry.empty() && entry.front() == ' ') entry.remove_prefix(1);
    while (!entry.empty() && entry.back() == ' ') entry.remove_suffix(1);
    if (!entry.empty()) {
      ASSIGN_OR_RETURN(WorkerAddress w, ParseWorker(entry));
      workers.push_back(std::move(w));
    }
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return workers;
}

Result<ClusterMap> ClusterMap::Create(std::vector<WorkerAddress> workers, bool allow_empty) {
  if (workers.empty() && !allow_empty) {
    return InvalidArgument("the cluster needs at least one worker");
  }
  std::set<std::string> seen;
  for (const WorkerAddress& w : workers) {
    if (!seen.insert(w.ToString()).second) {
      return InvalidArgument("worker " + w.ToString() + " is listed twice");
    }
  }
  return ClusterMap(std::move(workers));
}

ClusterMap::ClusterMap(std::vector<WorkerAddress> workers) {
  workers_.reserve(workers.size());
  for (size_t i = 0; i < workers.size(); ++i) {
    workers_.push_back(WorkerInfo{static_cast<WorkerId>(i + 1), std::move(workers[i])});
  }
}

const WorkerInfo* ClusterMap::Find(WorkerId id) const {
  // Ids are 1..N in order today; a search keeps this right when they are not.
  for (const WorkerInfo& w : workers_) {
    if (w.id == id) return &w;
  }
  return nullptr;
}

uint32_t ClusterMap::SlotOf(std::string_view partition_key) {
  return static_cast<uint32_t>(HashPartitionKey(partition_key) % kSlots);
}

}  // namespace das::control
