// Live tree changes: the forks, execs and exits the proc connector reported
// since the last /proc sample, applied to a copy of that sample's process
// list, so that GET /api/tree shows a process forked 10 ms ago without
// waiting for the next sample (issue 15). CPU, memory and thread figures
// still come from samples only: a process known only from its fork shows
// zeros until one reads it. Pure: plain data in, plain data out; the sampler
// calls it on the loop thread.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "proc_reader.h"

namespace forkwatch {

struct ProcessChange {
  enum class Op { kFork, kExec, kExit };
  Op op = Op::kFork;
  pid_t pid = 0;
  pid_t ppid = 0;
  std::string comm;               // fork: the parent's name; exec: the new one
  std::vector<std::string> argv;  // likewise
  uint64_t starttime = 0;         // clock ticks after boot, as /proc/PID/stat's: (pid, starttime) names it
};

// `procs` with `changes` applied in order: a fork adds the process (unless
// the sample already holds it), an exec renames it, an exit removes it and
// hands its children to `reaper` (the daemon is their child subreaper). A
// change for a pid whose starttime differs (a reused pid) is ignored, so a
// late event cannot remove a newer process.
std::vector<ProcessInfo> apply_process_changes(std::vector<ProcessInfo> procs, std::span<const ProcessChange> changes,
                                               pid_t reaper);

// CLOCK_BOOTTIME now, in nanoseconds: /proc's start times count from boot.
int64_t boottime_ns();

// CLOCK_MONOTONIC nanoseconds (a proc-connector stamp) as /proc's starttime
// ticks; `boot_to_mono_ns` is CLOCK_MONOTONIC minus CLOCK_BOOTTIME now.
uint64_t starttime_ticks(int64_t mono_ns, int64_t boot_to_mono_ns, long ticks_per_s);

}  // namespace forkwatch
