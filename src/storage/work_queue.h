// WorkQueue: a closable multi-producer queue of tasks for a store's threads.
// Thread-safety: every method may be called from any thread.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <vector>

#include "common/mutex.h"

namespace das::storage {

// A closable multi-producer queue. Once closed, Push fails and consumers drain what is left.
template <typename T>
class WorkQueue {
 public:
  // Takes `item` (moves from it) unless the queue is closed.
  bool Push(T& item) {
    {
      MutexLock lock(mu_);
      if (closed_) return false;
      items_.push_back(std::move(item));
    }
    cv_.notify_one();
    return true;
  }

  // Blocks for the front item, then takes the next ones while their summed weight stays within
  // `max_weight` (the first is always taken). Empty once closed and drained.
  template <typename WeightFn>
  std::vector<T> PopGroup(size_t max_weight, WeightFn weight) {
    UniqueLock lock(mu_);
    while (!closed_ && items_.empty()) cv_.wait(lock.native());
    std::vector<T> group;
    size_t total = 0;
    while (!items_.empty() && (group.empty() || total + weight(items_.front()) <= max_weight)) {
      total += weight(items_.front());
      group.push_back(std::move(items_.front()));
      items_.pop_front();
    }
    return group;
  }

  void Close() {
    {
      MutexLock lock(mu_);
      closed_ = true;
    }
    cv_.notify_all();
  }

  size_t size() const {
    MutexLock lock(mu_);
    return items_.size();
  }

 private:
  mutable Mutex mu_;
  std::condition_variable cv_;
  std::deque<T> items_ GUARDED_BY(mu_);
  bool closed_ GUARDED_BY(mu_) = false;
};

}  // namespace das::storage
