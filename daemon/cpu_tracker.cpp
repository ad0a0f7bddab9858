#include "cpu_tracker.h"

#include <algorithm>

namespace forkwatch {

CpuTracker::CpuTracker(long ticks_per_second)
    : ticks_per_second_(ticks_per_second > 0 ? static_cast<double>(ticks_per_second) : 100.0) {}

void CpuTracker::reset() {
  last_ns_ = -1;
  procs_.clear();
  threads_.clear();
}

void CpuTracker::update(std::vector<ProcessInfo>& processes, int64_t monotonic_ns) {
  const bool have_base = last_ns_ >= 0 && monotonic_ns > last_ns_;
  // percent = ticks / (ticks/s) / seconds * 100
  const double scale =
      have_base ? 100.0 / ticks_per_second_ / (static_cast<double>(monotonic_ns - last_ns_) / 1e9)
                : 0.0;
  // A counter that went backwards (a thread list replaced by a synthesized
  // one, or vice versa) reads as no CPU rather than as a negative figure.
  auto percent = [&](uint64_t now, uint64_t before) {
    return now > before ? static_cast<double>(now - before) * scale : 0.0;
  };

  next_procs_.clear();
  next_threads_.clear();
  for (ProcessInfo& p : processes) {
    const ProcessTicks* prev = nullptr;
    if (have_base) {
      auto it = std::lower_bound(procs_.begin(), procs_.end(), p.pid,
                                 [](const ProcessTicks& e, pid_t v) { return e.pid < v; });
      if (it != procs_.end() && it->pid == p.pid && it->starttime == p.starttime) prev = &*it;
    }
    const uint64_t ticks = p.utime + p.stime;
    p.cpu_percent = prev ? percent(ticks, prev->ticks) : 0.0;

    const auto begin = static_cast<uint32_t>(next_threads_.size());
    for (ThreadInfo& t : p.threads) {
      const uint64_t tticks = t.utime + t.stime;
      t.cpu_percent = 0.0;
      if (prev) {
        auto first = threads_.begin() + prev->thread_begin;
        auto last = threads_.begin() + prev->thread_end;
        auto it = std::lower_bound(first, last, t.tid,
                                   [](const ThreadTicks& e, pid_t v) { return e.tid < v; });
        if (it != last && it->tid == t.tid && it->starttime == t.starttime)
          t.cpu_percent = percent(tticks, it->ticks);
      }
      next_threads_.push_back({t.tid, t.starttime, tticks});
    }
    const auto end = static_cast<uint32_t>(next_threads_.size());
    auto by_tid = [](const ThreadTicks& a, const ThreadTicks& b) { return a.tid < b.tid; };
    if (!std::is_sorted(next_threads_.begin() + begin, next_threads_.end(), by_tid))
      std::sort(next_threads_.begin() + begin, next_threads_.end(), by_tid);
    next_procs_.push_back({p.pid, p.starttime, ticks, begin, end});
  }
  auto by_pid = [](const ProcessTicks& a, const ProcessTicks& b) { return a.pid < b.pid; };
  if (!std::is_sorted(next_procs_.begin(), next_procs_.end(), by_pid))
    std::sort(next_procs_.begin(), next_procs_.end(), by_pid);

  procs_.swap(next_procs_);
  threads_.swap(next_threads_);
  last_ns_ = monotonic_ns;
}

}  // namespace forkwatch
