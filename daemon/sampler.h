// Sampler: takes /proc samples on the loop's timer and publishes them as a
// TreeSample (rendered once, served by every API reader) plus a `sample`
// event. Full rate (--sample-ms) only while somebody watches (an SSE client,
// or a tree request in the last minute); unwatched, it only checks every few
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
  };
  void add(int64_t worker_id, Point p);
  void forget_except(const std::unordered_map<int64_t, bool>& live);
  // A JSON array of {"ts_ns","cpu_percent","rss_bytes","processes","threads"}, oldest first.
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
  SampleHistory& history() { return *history_; }

 private:
  void tick();
  void sample(bool all);
  bool watched() const;

  EventLoop& loop_;
  SupervisorCounters& counters_;
  const int64_t sample_ns_;
  std::function<WorkerTags()> worker_tags_;
  std::function<void(Event)> emit_;
  ProcReader reader_;
  CpuTracker cpu_;
  std::shared_ptr<const TreeSample> latest_;
  std::shared_ptr<SampleHistory> history_ = std::make_shared<SampleHistory>();
  int64_t all_until_ns_ = 0;
  EventLoop::TimerId timer_ = 0;
  bool fresh_ = false;
};

}  // namespace forkwatch
