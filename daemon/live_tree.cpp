#include "live_tree.h"

#include <time.h>

#include <algorithm>
#include <unordered_map>

namespace forkwatch {

int64_t boottime_ns() {
  timespec ts{};
  clock_gettime(CLOCK_BOOTTIME, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

uint64_t starttime_ticks(int64_t mono_ns, int64_t boot_to_mono_ns, long ticks_per_s) {
  const int64_t boot_ns = mono_ns - boot_to_mono_ns;
  return boot_ns <= 0 ? 0 : static_cast<uint64_t>(boot_ns / (1'000'000'000 / ticks_per_s));
}

std::vector<ProcessInfo> apply_process_changes(std::vector<ProcessInfo> procs, std::span<const ProcessChange> changes,
                                               pid_t reaper) {
  std::unordered_map<pid_t, size_t> at;
  for (size_t i = 0; i < procs.size(); ++i) at.emplace(procs[i].pid, i);
  std::vector<bool> gone(procs.size(), false);
  // A tick of slack either way: the kernel's stamp and stat's start time are
  // taken at different points of the fork.
  auto same = [](const ProcessInfo& p, const ProcessChange& c) {
    return p.starttime + 1 >= c.starttime && c.starttime + 1 >= p.starttime;
  };
  for (const ProcessChange& c : changes) {
    auto it = at.find(c.pid);
    const bool known = it != at.end() && !gone[it->second];
    switch (c.op) {
      case ProcessChange::Op::kFork: {
        if (known) break;  // the sample has it (or a newer one of that pid)
        ProcessInfo p;
        p.pid = c.pid;
        p.ppid = c.ppid;
        p.comm = c.comm;
        p.cmdline = c.argv;
        p.state = 'R';
        p.starttime = c.starttime;
        p.num_threads = 1;
        if (auto parent = at.find(c.ppid); parent != at.end() && !gone[parent->second]) {
          p.pgid = procs[parent->second].pgid;
          p.sid = procs[parent->second].sid;
        }
        at[c.pid] = procs.size();
        procs.push_back(std::move(p));
        gone.push_back(false);
        break;
      }
      case ProcessChange::Op::kExec:
        if (known && same(procs[it->second], c)) {
          procs[it->second].comm = c.comm;
          procs[it->second].cmdline = c.argv;
        }
        break;
      case ProcessChange::Op::kExit:
        if (!known || !same(procs[it->second], c)) break;
        gone[it->second] = true;
        for (size_t i = 0; i < procs.size(); ++i)
          if (!gone[i] && procs[i].ppid == c.pid) procs[i].ppid = reaper;
        break;
    }
  }
  std::vector<ProcessInfo> out;
  out.reserve(procs.size());
  for (size_t i = 0; i < procs.size(); ++i)
    if (!gone[i]) out.push_back(std::move(procs[i]));
  return out;
}

}  // namespace forkwatch
