#include "control/worker_directory.h"

#include <utility>

namespace das::control {

void WorkerDirectory::Set(uint64_t id, const std::string& address) {
  std::shared_ptr<rpc::WorkerClient> old;
  {
    MutexLock lock(mu_);
    auto it = entries_.find(id);
    if (it != entries_.end() && it->second.address == address) return;
    Entry entry{id, address, std::shared_ptr<rpc::WorkerClient>(factory_(address))};
    if (it != entries_.end()) {
      old = std::move(it->second.client);
      it->second = std::move(entry);
    } else {
      entries_.emplace(id, std::move(entry));
    }
  }
  if (old) old->Close();
}

void WorkerDirectory::Remove(uint64_t id) {
  std::shared_ptr<rpc::WorkerClient> old;
  {
    MutexLock lock(mu_);
    auto it = entries_.find(id);
    if (it == entries_.end()) return;
    old = std::move(it->second.client);
    entries_.erase(it);
  }
  old->Close();
}

std::shared_ptr<rpc::WorkerClient> WorkerDirectory::Client(uint64_t id) const {
  MutexLock lock(mu_);
  auto it = entries_.find(id);
  return it == entries_.end() ? nullptr : it->second.client;
}

std::vector<WorkerDirectory::Entry> WorkerDirectory::Members() const {
  MutexLock lock(mu_);
  std::vector<Entry> out;
  for (const auto& [id, entry] : entries_) out.push_back(entry);
  return out;
}

size_t WorkerDirectory::size() const {
  MutexLock lock(mu_);
  return entries_.size();
}

void WorkerDirectory::CloseAll() {
  for (const Entry& entry : Members()) entry.client->Close();
}

}  // namespace das::control
