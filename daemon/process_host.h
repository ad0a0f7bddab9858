// ProcessHost: the operating system as the supervisor sees it, behind one
// seam: spawn a worker's process into its place, signal its group, list and
// signal its whole tree, kill the tree, freeze it, and reap. Two kinds sit
// behind it: ProcessGroupHost (today's process group + subreaper + pidfd
// mechanism, below) and, where cgroup v2 is writable, a cgroup per worker;
// tests give the supervisor a fake. Every method runs on the loop thread.
#pragma once

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "family.h"
#include "reaper.h"
#include "spawner.h"
#include "sys_error.h"

namespace forkwatch {

class ProcessHost {
 public:
  virtual ~ProcessHost() = default;
  // Once, before the first spawn (fd slots, signal dispositions).
  virtual Status prepare() = 0;
  // Starts one main process for `worker_id`; it leads its own process group.
  virtual Result<SpawnedChild> spawn(int64_t worker_id, const SpawnRequest& req) = 0;
  // kill(-pgid, sig): 0, or the errno.
  virtual int signal_group(pid_t pgid, int sig) = 0;
  // Every live process of a worker's tree, each as a verified pidfd.
  virtual std::vector<FamilyMember> list_tree(const FamilyQuery& q) = 0;
  virtual void signal_member(const FamilyMember& m, int sig) = 0;
  // True once no process is left in group `pgid`.
  virtual bool group_empty(pid_t pgid) = 0;
  // Freezes (true) or thaws the whole tree; fails where the host cannot.
  virtual Status freeze(int64_t worker_id, bool frozen) = 0;
  // Drains every wait status (reaper.h).
  virtual size_t reap(const std::function<bool(pid_t)>& is_own_child,
                      const std::function<void(const Reaped&)>& on_status) = 0;
  // The worker is gone for good: release what its place holds.
  virtual void release(int64_t worker_id) = 0;
  // Kills the whole tree at once (cgroup.kill): true when done, false where
  // the host has no such thing (the caller signals member by member).
  virtual bool kill_all(int64_t) { return false; }
  // The pids in the worker's place (its cgroup), whoever their parent; empty
  // where the host has no place that holds a tree.
  virtual std::vector<pid_t> members(int64_t) { return {}; }
  // The worker's place as users see it (a cgroup v2 path), or empty.
  virtual std::string place(int64_t) const { return {}; }
  // The same as a directory to read (the cgroup's, under the mount), or empty.
  virtual std::string place_dir(int64_t) const { return {}; }
  // The kernel's OOM kills in the worker's place so far, where it counts them.
  virtual std::optional<int64_t> oom_kills(int64_t) { return std::nullopt; }
  // The limits of the worker's last spawn that its place could not enforce
  // ("memory_max: no memory controller in /w-3"), one per limit.
  virtual std::vector<std::string> unenforced(int64_t) const { return {}; }
  // Blocks until the worker's place holds no process, at most `timeout_ms`.
  virtual bool wait_empty(int64_t, int /*timeout_ms*/) { return true; }
};

// Today's containment: a process group per worker, the daemon as child
// subreaper, pidfds for the descendants that left the group.
class ProcessGroupHost : public ProcessHost {
 public:
  Status prepare() override;
  Result<SpawnedChild> spawn(int64_t worker_id, const SpawnRequest& req) override;
  int signal_group(pid_t pgid, int sig) override;
  std::vector<FamilyMember> list_tree(const FamilyQuery& q) override;
  void signal_member(const FamilyMember& m, int sig) override;
  bool group_empty(pid_t pgid) override;
  Status freeze(int64_t worker_id, bool frozen) override;
  size_t reap(const std::function<bool(pid_t)>& is_own_child,
              const std::function<void(const Reaped&)>& on_status) override;
  void release(int64_t) override {}
};

}  // namespace forkwatch
