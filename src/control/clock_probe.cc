#include "control/clock_probe.h"

#include <algorithm>
#include <cstdlib>
#include <string>

#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "control/gather.h"

namespace das::control {

namespace asio = boost::asio;

namespace {

int64_t Millis(int64_t us) { return us / 1000; }

}  // namespace

ClockProbe::ClockProbe(asio::any_io_executor executor, ClusterClock& clock, Members members,
                       std::chrono::milliseconds interval, std::chrono::milliseconds deadline)
    : strand_(asio::make_strand(executor)),
      clock_(clock),
      members_(std::move(members)),
      interval_(interval),
      deadline_(deadline),
      timer_(strand_) {}

void ClockProbe::Start() {
  {
    MutexLock lock(mu_);
    running_ = true;
  }
  asio::co_spawn(strand_, Run(), asio::detached);
}

void ClockProbe::Stop() {
  UniqueLock lock(mu_);
  stopping_ = true;
  asio::post(strand_, [this] { timer_.cancel(); });
  if (!stopped_.wait_for(lock.native(), deadline_ + interval_ + std::chrono::seconds(1),
                         [this]() REQUIRES(mu_) { return !running_; })) {
    spdlog::warn("clock probe: a round is still in flight; stopping anyway");
  }
}

asio::awaitable<void> ClockProbe::Run() {
  for (;;) {
    {
      MutexLock lock(mu_);
      if (stopping_) break;
    }
    asio::awaitable<void> round = ProbeAll();
    co_await std::move(round);
    {
      MutexLock lock(mu_);
      if (stopping_) break;
    }
    timer_.expires_after(interval_);
    auto [ignored] = co_await timer_.async_wait(asio::as_tuple(asio::use_awaitable));
    (void)ignored;
  }
  MutexLock lock(mu_);
  running_ = false;
  stopped_.notify_all();
}

asio::awaitable<void> ClockProbe::ProbeAll() {
  const std::vector<Member> members = members_();
  // A worker that left is forgotten (its gauges go with it).
  for (const auto& [worker, offset] : clock_.All()) {
    const bool member =
        std::any_of(members.begin(), members.end(),
                    [worker = worker](const Member& m) { return m.first == worker; });
    if (!member) {
      clock_.Forget(worker);
      past_bound_.erase(worker);
    }
  }
  std::vector<asio::awaitable<Result<ClusterClock::Offset>>> probes;
  for (const Member& member : members) probes.push_back(ProbeOne(member));
  asio::awaitable<std::vector<Result<ClusterClock::Offset>>> gather =
      GatherAll<ClusterClock::Offset>(strand_, std::move(probes));
  std::vector<Result<ClusterClock::Offset>> offsets = co_await std::move(gather);
  for (size_t i = 0; i < offsets.size(); ++i) {
    if (offsets[i].ok()) Note(members[i].first, *offsets[i]);
  }
  NoteCorrection();
}

asio::awaitable<Result<ClusterClock::Offset>> ClockProbe::ProbeOne(Member member) {
  const Clock& local = clock_.clock();
  const int64_t sent_wall_us = local.WallMicros();
  const Clock::Monotonic sent = local.Now();
  asio::awaitable<Result<internal::v1::ClockResponse>> call = member.second->Clock(deadline_);
  Result<internal::v1::ClockResponse> answer = co_await std::move(call);
  if (!answer.ok()) co_return std::move(answer).status();
  co_return clock_.Record(member.first, sent_wall_us, sent, local.Now(), answer->wall_time_us());
}

void ClockProbe::Note(uint64_t worker, const ClusterClock::Offset& offset) {
  const bool past = clock_.PastBound(offset);
  if (past == past_bound_.contains(worker)) return;
  if (past) {
    past_bound_.insert(worker);
    spdlog::warn(
        "worker {}'s clock is {} ms {} the control node's (+-{} ms), past --max-clock-offset-ms "
        "{}: rows are stamped with the cluster's time, not its clock; fix its time source",
        worker, std::llabs(Millis(offset.offset_us)), offset.offset_us < 0 ? "behind" : "ahead of",
        Millis(offset.uncertainty_us), clock_.bound().count());
  } else {
    past_bound_.erase(worker);
    spdlog::info("worker {}'s clock is back within {} ms of the control node's ({} ms off)", worker,
                 clock_.bound().count(), Millis(offset.offset_us));
  }
}

void ClockProbe::NoteCorrection() {
  clock_.Refresh();
  const int64_t correction_us = clock_.CorrectionUs();
  if ((correction_us != 0) == (logged_correction_us_ != 0)) return;
  logged_correction_us_ = correction_us;
  if (correction_us != 0) {
    spdlog::warn(
        "this control node's clock is {} ms off the median of the cluster's clocks, past "
        "--max-clock-offset-ms {}: rows are stamped with its time corrected by that; fix its "
        "time source",
        -Millis(correction_us), clock_.bound().count());
  } else {
    spdlog::info("this control node's clock agrees with the cluster's again; no correction");
  }
}

std::vector<metrics::ScrapedFamily> ClockFamilies(const ClusterClock& clock) {
  using Family = metrics::ScrapedFamily;
  Family offset{"das_clock_offset_seconds",
                "Each worker's wall clock minus the control node's, as last probed",
                Family::Kind::kGauge,
                {}};
  Family uncertainty{"das_clock_offset_uncertainty_seconds",
                     "Half the round trip of the probe that measured das_clock_offset_seconds",
                     Family::Kind::kGauge,
                     {}};
  for (const auto& [worker, measured] : clock.All()) {
    const metrics::Labels labels{{"worker", std::to_string(worker)}};
    offset.samples.push_back({labels, static_cast<double>(measured.offset_us) / 1e6});
    uncertainty.samples.push_back({labels, static_cast<double>(measured.uncertainty_us) / 1e6});
  }
  Family correction{
      "das_clock_correction_seconds",
      "Added to the control node's clock to stamp rows (0 unless the cluster's clocks outvote it)",
      Family::Kind::kGauge,
      {{{}, static_cast<double>(clock.CorrectionUs()) / 1e6}}};
  Family bound{"das_clock_max_offset_seconds",
               "--max-clock-offset-ms, in seconds",
               Family::Kind::kGauge,
               {{{}, static_cast<double>(clock.bound().count()) / 1e3}}};
  return {std::move(offset), std::move(uncertainty), std::move(correction), std::move(bound)};
}

}  // namespace das::control
