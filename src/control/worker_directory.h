// WorkerDirectory: the workers a replicated cluster has now (docs/operations.md, "Membership"), by
// id, each with its internal API address and a client for it. Workers listed in --workers are in it
// from the start; a worker that joins is added, one that rejoins from another address is
// readdressed (a new client; calls in flight finish on the old one), one that left is removed.
// Thread-safety: every method may be called from any thread concurrently.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/mutex.h"
#include "rpc/worker_client.h"

namespace das::control {

class WorkerDirectory {
 public:
  // Makes a client for "host:port" (REQUIRES: a valid address).
  using Factory = std::function<std::unique_ptr<rpc::WorkerClient>(const std::string& address)>;
  explicit WorkerDirectory(Factory factory) : factory_(std::move(factory)) {}

  struct Entry {
    uint64_t id = 0;
    std::string address;
    std::shared_ptr<rpc::WorkerClient> client;
  };

  // Adds worker `id` at `address`, or readdresses it; the same address again changes nothing.
  void Set(uint64_t id, const std::string& address);
  void Remove(uint64_t id);
  // Null when `id` is not a member.
  std::shared_ptr<rpc::WorkerClient> Client(uint64_t id) const;
  // Every member, by id.
  std::vector<Entry> Members() const;
  size_t size() const;
  // Closes every client (later calls fail).
  void CloseAll();

 private:
  const Factory factory_;
  mutable Mutex mu_;
  std::map<uint64_t, Entry> entries_ GUARDED_BY(mu_);
};

}  // namespace das::control
