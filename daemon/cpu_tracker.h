// CpuTracker: turns the tick counters of consecutive samples into CPU percent
// per process and per thread. Percent of one core =
//   delta_ticks / ticks_per_second / elapsed_seconds * 100.
// Processes are keyed by (pid, starttime) and threads by (tid, starttime), so
// a reused pid starts from zero instead of inheriting the old process's ticks.
// A process or thread seen for the first time gets 0 (no baseline yet).
// Pure (the caller passes the time); not thread-safe: owned by the sampler.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <vector>

#include "proc_reader.h"

namespace forkwatch {

class CpuTracker {
 public:
  // ticks_per_second is sysconf(_SC_CLK_TCK) in the daemon (100 on Linux).
  explicit CpuTracker(long ticks_per_second);

  // Sets cpu_percent of every process and thread in `processes` from the
  // ticks remembered by the previous update, then remembers these ticks.
  // `monotonic_ns` is when the sample was taken (ProcSample::monotonic_ns).
  // Input in any order; a ProcReader sample (sorted by pid, threads by tid) is fastest.
  void update(std::vector<ProcessInfo>& processes, int64_t monotonic_ns);

  // Forgets every baseline; the next update sets all percentages to 0.
  void reset();

 private:
  struct ThreadTicks {
    pid_t tid;
    uint64_t starttime;
    uint64_t ticks;
  };
  struct ProcessTicks {
    pid_t pid;
    uint64_t starttime;
    uint64_t ticks;
    uint32_t thread_begin;  // this process's threads in threads_[begin, end), sorted by tid
    uint32_t thread_end;
  };

  double ticks_per_second_;
  int64_t last_ns_ = -1;  // -1: no previous sample
  std::vector<ProcessTicks> procs_;  // sorted by pid
  std::vector<ThreadTicks> threads_;
  std::vector<ProcessTicks> next_procs_;  // reused buffers
  std::vector<ThreadTicks> next_threads_;
};

}  // namespace forkwatch
