// Family: the processes that belong to a worker, found in /proc at stop time.
// A process group misses descendants that called setsid() or double-forked;
// the subreaper's view finds them: every descendant of the worker's main
// process, every member of its group, and every orphan the daemon adopted
// whose environment carries the worker's FORKWATCH_WORKER_ID. Each is returned
// as a pidfd verified against its start time, so a reused pid is never signalled.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "fd.h"

namespace forkwatch {

// The variable every worker process (and so every descendant) is started with.
inline constexpr const char* kWorkerIdEnv = "FORKWATCH_WORKER_ID";

struct FamilyQuery {
  pid_t daemon_pid = 0;
  pid_t main_pid = -1;  // -1 when the main process is already reaped
  pid_t pgid = -1;      // the group the worker led
  int64_t worker_id = 0;
  // True for a pid that is some worker's main process (never another
  // worker's family member, even if it carries a stale group or variable).
  std::function<bool(pid_t)> is_worker_main;
};

struct FamilyMember {
  pid_t pid;
  Fd pidfd;
};

// Walks from the main process and the daemon's adopted children through the
// children files of `proc_root` (falling back to a scan of every process when
// the kernel has none); skips processes that vanish meanwhile. Never includes
// the daemon.
std::vector<FamilyMember> family_pidfds(const FamilyQuery& q, const std::string& proc_root = "/proc");

// A small procfs or cgroupfs file, whole (at most 1 MiB); empty on any error
// (the process or cgroup is gone).
std::string read_small(const std::string& path);

// Process start time (proc(5) field 22) of `pid`, or 0 if it is gone.
uint64_t process_start_time(pid_t pid, const std::string& proc_root = "/proc");

}  // namespace forkwatch
