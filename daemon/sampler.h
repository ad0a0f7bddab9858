// Sampler: takes /proc samples on the loop's timer and publishes them as a
// TreeSample (rendered once, served by every API reader) plus a `sample`
// event. Full rate (--sample-ms) only while somebody watches (an SSE client,
// or a tree request in the last minute) or the supervisor needs samples (a
// worker with memory_restart runs); otherwise it only checks every few
// seconds whether anyone came, so an idle daemon stays idle. Loop thread only,
// except SampleHistory, which API threads read.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "cpu_tracker.h"
#include "event.h"
#include "event_loop.h"
#include "fd_counts.h"
#include "lifetime.h"
#include "live_tree.h"
#include "proc_reader.h"
#include "process_tree.h"
#include "snapshot.h"

namespace forkwatch {

// The last 10 minutes of CPU and RSS per worker (its main process and all its
// descendants), for sparklines. Thread-safe.
class SampleHistory {
 public:
  static constexpr int64_t kKeepNs = 600LL * 1'000'000'000;
  struct Point {
    int64_t ts_ns;  // CLOCK_REALTIME
    double cpu_percent;
    int64_t rss_bytes;
    int processes;
    int threads;
    int64_t fds;  // open descriptors over the worker's processes
    std::string fd_warning;  // "", "growing", "near_limit" (fd_counts.h)
  };
  void add(int64_t worker_id, Point p);
  void forget_except(const std::unordered_map<int64_t, bool>& live);
  // A JSON array of {"ts_ns","cpu_percent","rss_bytes","processes","threads","fds","fd_warning"}, oldest first.
  std::string json(int64_t worker_id) const;

 private:
  mutable std::mutex mu_;
  std::unordered_map<int64_t, std::deque<Point>> points_;  // guarded by mu_
};

class Sampler {
 public:
  static constexpr int64_t kWatchWindowNs = 60LL * 1'000'000'000;
  static constexpr int64_t kIdleCheckNs = 5LL * 1'000'000'000;

  Sampler(EventLoop& loop, SupervisorCounters& counters, int64_t sample_ms,
          std::function<WorkerTags()> worker_tags, std::function<void(Event)> emit,
          std::string proc_root = "/proc");

  void start();
  // Take a sample now (scope all when `all`; it stays all for the watch window).
  void request(bool all);
  // True once per new sample; the supervisor then republishes its snapshot.
  bool take_new_sample() { return std::exchange(fresh_, false); }
  std::shared_ptr<const TreeSample> latest() const { return latest_; }
  // A fork, exec or exit of a supervised process as the proc connector
  // reported it (`op` "fork", "exec" or "exit"): the latest tree shows it
  // within kPatchDelayNs, without a /proc read (live_tree.h). Changes are
  // batched per delay, so a fork storm costs one rebuild per delay.
  void note_change(std::string_view op, const Lifetime& l);
  static constexpr int64_t kPatchDelayNs = 20'000'000;
  static constexpr size_t kMaxChanges = 8192;  // beyond: left to the next sample
  SampleHistory& history() { return *history_; }
  // The supervisor's own use of samples (memory_restart): while `needed()`
  // the sampler samples at the full rate even when nobody watches, and after
  // each sample read from /proc (not the connector's patches) it calls
  // `on_sample` with it.
  void set_observer(std::function<bool()> needed, std::function<void(const TreeSample&)> on_sample);
  // `needed()` may have become true: from idling, sample one period from now.
  void wake();

 private:
  void tick();
  void sample(bool all);
  void patch();
  // The sample's JSON forms and counts over `procs`.
  std::shared_ptr<TreeSample> render(std::vector<ProcessInfo> procs, int64_t taken_ns, int64_t taken_real_ns, bool all);
  bool watched() const;
  bool needed() const { return needed_ && needed_(); }

  EventLoop& loop_;
  SupervisorCounters& counters_;
  const int64_t sample_ns_;
  std::function<WorkerTags()> worker_tags_;
  std::function<void(Event)> emit_;
  ProcReader reader_;
  FdCounts fd_counts_;  // after reader_: both take the same root
  CpuTracker cpu_;
  const long ticks_per_s_;
  std::shared_ptr<const TreeSample> latest_;   // the last sample with the changes since applied
  std::shared_ptr<const ProcessTree> sampled_;  // the last sample as read: what the next one is told against
  std::vector<ProcessChange> changes_;          // not yet applied to latest_
  EventLoop::TimerId patch_timer_ = 0;          // 0 while not armed
  int64_t boot_to_mono_ns_ = 0;                 // CLOCK_MONOTONIC - CLOCK_BOOTTIME, at the last sample
  std::shared_ptr<SampleHistory> history_ = std::make_shared<SampleHistory>();
  int64_t all_until_ns_ = 0;
  EventLoop::TimerId timer_ = 0;
  bool full_rate_ = false;  // timer_ is a period away, not the idle check
  bool fresh_ = false;
  std::function<bool()> needed_;
  std::function<void(const TreeSample&)> on_sample_;
};

}  // namespace forkwatch
