// Cgroup v2 containment: a cgroup per worker (CgroupHost, a ProcessHost) and
// the pure functions that find the hierarchy and the daemon's own cgroup from
// /proc/self/mountinfo and /proc/self/cgroup. The daemon moves itself into a
// leaf of its subtree ("no internal processes") and makes `w-ID` beside it for
// each worker; workers are cloned straight into theirs (CLONE_INTO_CGROUP).
// CgroupHost runs on the loop thread; open_cgroup_host runs once in main.
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "fd.h"
#include "process_host.h"
#include "sys_error.h"

namespace forkwatch {

// The mount point of the cgroup2 file system in mountinfo text (proc(5)),
// with octal escapes (\040) decoded; nullopt when there is none.
std::optional<std::string> find_cgroup2_mount(std::string_view mountinfo);
// The v2 path ("0::PATH" line) of /proc/PID/cgroup text; nullopt when absent.
std::optional<std::string> parse_own_cgroup(std::string_view proc_cgroup);
// The worker id of a cgroup path `path` (relative to the hierarchy) when it is
// `subtree_rel` + "/w-ID" (or below it); 0 otherwise.
int64_t worker_of_cgroup(std::string_view path, std::string_view subtree_rel);
// The value of `key` in a flat-keyed file (cgroup.events, cpu.stat,
// memory.events): "populated 1\nfrozen 0\n"; nullopt when absent.
std::optional<int64_t> keyed_value(std::string_view text, std::string_view key);
// PSI "some avg10=0.00 avg60=… total=N" line's total (microseconds stalled).
std::optional<int64_t> psi_some_total(std::string_view text);

// What main decided, for GET /api/health.
struct Containment {
  std::string mode = "process-group";  // "cgroup" or "process-group"
  std::string reason;                  // why not cgroup; empty when it is
  std::string subtree;                 // the daemon's subtree (hierarchy-relative) when cgroup
};

// Per-worker figures read from its cgroup (cpu.stat counts reaped children).
struct CgroupStats {
  int64_t cpu_usage_usec = 0, cpu_user_usec = 0, cpu_system_usec = 0;
  std::optional<int64_t> cpu_pressure_us, memory_pressure_us, io_pressure_us;  // PSI some total
  std::optional<int64_t> memory_current, pids_current, oom_kills;              // where the controller is
  int64_t processes = 0;
};

// Reads them from cgroup directory `dir` (absolute); any thread (read-only
// files of cgroupfs, no supervisor state). Absent files are absent figures.
CgroupStats read_cgroup_stats(const std::string& dir);

class CgroupHost : public ProcessHost {
 public:
  // `mount` is the hierarchy's mount point, `subtree_rel` the subtree's path
  // in it (created if missing), `leave_to_rel` the cgroup the daemon goes back
  // to at close(). Moves the daemon into subtree/daemon.
  static Result<std::unique_ptr<CgroupHost>> create(std::string mount, std::string subtree_rel,
                                                     std::string leave_to_rel, bool made_subtree);
  ~CgroupHost() override;

  Status prepare() override;
  Result<SpawnedChild> spawn(int64_t worker_id, const SpawnRequest& req) override;
  int signal_group(pid_t pgid, int sig) override;
  std::vector<FamilyMember> list_tree(const FamilyQuery& q) override;
  void signal_member(const FamilyMember& m, int sig) override;
  bool group_empty(pid_t pgid) override;
  Status freeze(int64_t worker_id, bool frozen) override;
  size_t reap(const std::function<bool(pid_t)>& is_own_child,
              const std::function<void(const Reaped&)>& on_status) override;
  void release(int64_t worker_id) override;
  bool kill_all(int64_t worker_id) override;
  std::vector<pid_t> members(int64_t worker_id) override;
  std::string place(int64_t worker_id) const override;
  std::string place_dir(int64_t worker_id) const override { return worker_dir(worker_id); }
  std::optional<int64_t> oom_kills(int64_t worker_id) override;
  bool wait_empty(int64_t worker_id, int timeout_ms) override;

  std::vector<std::string> unenforced(int64_t worker_id) const override;
  // Writes the request's limits into the worker's cgroup files; what cannot
  // be written (no such file: the controller is not there) is remembered
  // for unenforced(). Called by spawn() before the clone.
  void apply_limits(int64_t worker_id, const SpawnRequest& req);

  CgroupStats stats(int64_t worker_id);
  // Kills every worker cgroup, waits (bounded) until each is empty, removes
  // them, moves the daemon back and removes what it made. Idempotent.
  void close();
  const std::string& dir() const { return dir_; }

  // Waits until `cgroup.events` of `dir` says `key` is `want` (POLLPRI
  // wakes on each change), at most `timeout_ms`; true when it does.
  static bool wait_events(const std::string& dir, std::string_view key, int64_t want, int timeout_ms);

 private:
  CgroupHost() = default;
  std::string worker_dir(int64_t id) const { return dir_ + "/w-" + std::to_string(id); }
  Status ensure_made(int64_t id);  // mkdir w-ID once

  std::string mount_, subtree_rel_, leave_to_rel_, dir_;
  bool made_subtree_ = false, closed_ = false;
  std::set<int64_t> made_;  // workers whose w-ID this host made (and removes)
  std::set<int64_t> killed_;  // workers whose cgroup was written cgroup.kill since its last spawn
  std::map<int64_t, std::vector<std::string>> unenforced_;  // worker id -> limits not in force
};

// Decides the containment at start: `root_flag` is --cgroup-root (a path in
// the cgroup2 file system, or empty: the daemon's own cgroup, alone in it
// under systemd's Delegate=yes, else a forkwatchd-PID subtree below it), and
// `wanted` is --containment ("auto", "cgroup", "process-group"). `why` gets
// the reason when the answer is the process-group host.
std::unique_ptr<ProcessHost> open_process_host(const std::string& root_flag, const std::string& wanted,
                                               Containment& out);

}  // namespace forkwatch
