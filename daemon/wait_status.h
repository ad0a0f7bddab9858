// WaitStatus: the int that wait4() fills in, decoded into the eight W* macros.
// Pure; unit-tested against statuses produced by real children.
#pragma once

#include <cstdint>
#include <string>

namespace forkwatch {

struct WaitStatus {
  int raw = 0;
  bool exited = false;      // WIFEXITED
  int exit_status = 0;      // WEXITSTATUS, valid when exited
  bool signaled = false;    // WIFSIGNALED
  int term_sig = 0;         // WTERMSIG, valid when signaled
  bool core_dumped = false; // WCOREDUMP, valid when signaled
  bool stopped = false;     // WIFSTOPPED
  int stop_sig = 0;         // WSTOPSIG, valid when stopped
  bool continued = false;   // WIFCONTINUED

  // True when the process is gone (exited or killed), false for stop/continue.
  bool terminated() const { return exited || signaled; }
};

WaitStatus decode_wait_status(int raw);

// "exited 12", "killed by SIGSEGV (core dumped)", "stopped by SIGSTOP", "continued".
std::string describe(const WaitStatus& s);

// Resource usage from wait4, in the units of the wait_status table.
struct Rusage {
  int64_t utime_us = 0, stime_us = 0, maxrss_kb = 0;
  int64_t minflt = 0, majflt = 0, nvcsw = 0, nivcsw = 0;
};

}  // namespace forkwatch
