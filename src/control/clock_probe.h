// ClockProbe: the control node's background loop that reads every worker's wall clock once an
// interval (GET /internal/v1/clock) and records the offsets in a ClusterClock. It logs once when
// a worker's offset passes the bound and once when it is back, and once when this node's own
// clock is outvoted (the cluster's time corrected) and when it is not any more.
//
// Lifecycle: Start() once, Stop() before the ClusterClock and the members' clients go; Stop()
// cancels the wait between rounds and waits for a round in flight (bounded by its deadline).
// Thread-safety: Start() and Stop() from one thread; the loop runs on its own strand.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <utility>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include "common/mutex.h"
#include "control/cluster_clock.h"
#include "metrics/registry.h"
#include "rpc/worker_client.h"

namespace das::control {

class ClockProbe {
 public:
  using Member = std::pair<uint64_t, std::shared_ptr<rpc::WorkerClient>>;
  // The workers to probe now (called once a round, on the loop's strand).
  using Members = std::function<std::vector<Member>()>;

  // `clock` outlives the probe.
  ClockProbe(boost::asio::any_io_executor executor, ClusterClock& clock, Members members,
             std::chrono::milliseconds interval, std::chrono::milliseconds deadline);
  ClockProbe(const ClockProbe&) = delete;
  ClockProbe& operator=(const ClockProbe&) = delete;

  ~ClockProbe() { Stop(); }

  void Start();
  // Idempotent.
  void Stop();

 private:
  boost::asio::awaitable<void> Run();
  boost::asio::awaitable<void> ProbeAll();
  boost::asio::awaitable<Result<ClusterClock::Offset>> ProbeOne(Member member);
  void Note(uint64_t worker, const ClusterClock::Offset& offset);
  void NoteCorrection();

  boost::asio::strand<boost::asio::any_io_executor> strand_;
  ClusterClock& clock_;
  const Members members_;
  const std::chrono::milliseconds interval_;
  const std::chrono::milliseconds deadline_;
  boost::asio::steady_timer timer_;   // on strand_
  std::set<uint64_t> past_bound_;     // on strand_: the workers logged as past the bound
  int64_t logged_correction_us_ = 0;  // on strand_

  Mutex mu_;
  std::condition_variable stopped_;
  bool running_ GUARDED_BY(mu_) = false;
  bool stopping_ GUARDED_BY(mu_) = false;
};

// The clock's gauges for GET /metrics, read at scrape time: each worker's offset and its
// uncertainty (seconds), the correction of this node's clock and the bound.
std::vector<metrics::ScrapedFamily> ClockFamilies(const ClusterClock& clock);

}  // namespace das::control
