// Reaper: drains every wait status the kernel holds for this process. One
// SIGCHLD can stand for a thousand exits (signals coalesce), so each wake-up
// loops wait4 until it returns 0 or ECHILD; EINTR is retried. Every status is
// collected before the first `on_status` call. Loop thread only.
#pragma once

#include <sys/types.h>

#include <functional>

#include "wait_status.h"

namespace forkwatch {

struct Reaped {
  pid_t pid = 0;
  int raw = 0;
  Rusage rusage;
  int64_t ts_ns = 0;  // CLOCK_REALTIME when wait4 returned it
  pid_t pgid = -1;    // for pids that are not our own children: the group it was in, else -1
  int64_t owner = 0;  // for those: the worker whose place (cgroup) it was in, else 0
};

// `is_own_child(pid)`: true for a process this daemon forked. Others are
// adopted orphans; for them the process group is read before the zombie is
// reaped (it is gone after), so the orphan can be attributed to its worker.
// Returns how many statuses were reaped.
// `owner_of(pid)`, when given, names the worker an adopted zombie belongs to
// (its cgroup, still readable until it is reaped).
size_t reap_all(const std::function<bool(pid_t)>& is_own_child,
                const std::function<void(const Reaped&)>& on_status,
                const std::function<int64_t(pid_t)>& owner_of = {});

}  // namespace forkwatch
