// ProgramSpec: what to run and how to keep it running, as written in the
// config file or in a POST /api/workers request. Plain data; validated by
// config.h. A Config is the whole --config file.
#pragma once

#include <csignal>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "readiness_spec.h"

namespace forkwatch {

enum class RestartPolicy { kNo, kOnFailure, kAlways };
// What happens to the rest of a worker's cgroup when its main process dies
// and it is restarted (systemd's KillMode=): control-group stops and kills
// what is left before the replacement starts; process leaves it alone.
enum class KillMode { kControlGroup, kProcess };
std::string_view restart_policy_name(RestartPolicy p);

struct ProgramSpec {
  std::string name;
  std::vector<std::string> command;  // argv; a bare command[0] is looked up at spawn time
  int instances = 1;
  bool autostart = true;
  RestartPolicy restart = RestartPolicy::kOnFailure;
  int64_t restart_delay_ms = 100;
  int max_restarts = 10;  // consecutive automatic restarts before `fatal`
  int stop_signal = SIGTERM;
  int64_t stop_timeout_ms = 5000;
  std::map<std::string, std::string> env;  // added to the daemon's environment
  // Names a POST /api/workers request may set in `env` beyond the locale
  // and TZ (env_rule.h); never one that `env` sets or a loader variable.
  std::vector<std::string> api_env;
  std::string cwd;                         // empty: the daemon's cwd
  bool capture_output = true;              // "output": "capture" (pipes, logs) or "discard" (/dev/null)
  bool builtin = false;                    // one of the built-in worker programs
  // Readiness, health, order (readiness_spec.h). A worker with a `ready`
  // check is `starting` until it passes, at most start_timeout_ms (0: no limit).
  ProbeSpec ready;
  int64_t start_timeout_ms = kDefaultStartTimeoutMs;
  HealthSpec health;
  int64_t watchdog_ms = 0;  // notify workers: WATCHDOG=1 at least this often; 0: off
  std::vector<Dependency> depends_on;

  // Identity and limits (identity.h applies them in the child). Names are
  // kept as written ("postgres", or "999" for a number) and resolved at each
  // start; the config load and the API resolve them once to refuse bad ones.
  std::string user;                        // empty: the daemon's own
  std::string group;                       // empty: the user's primary group
  int umask = -1;                          // 0..0777; -1: inherit the daemon's
  // Resource name (limit_names()) -> {soft, hard}; kLimitInfinity for "unlimited".
  std::map<std::string, std::pair<uint64_t, uint64_t>> limits;
  std::optional<int> nice;                 // -20..19
  std::optional<int> oom_score_adj;        // -1000..1000
  bool no_new_privs = false;
  std::string env_file;                    // absolute path; read at each start
  KillMode kill_mode = KillMode::kControlGroup;
  // A daemonizing program (systemd's Type=forking) writes its main pid here;
  // once the first process exits 0 the worker follows that pid. Empty: none.
  std::string pid_file;
  // cgroup limits (memory.max, memory.high, pids.max, cpu.max), written into
  // the worker's cgroup before its first process runs; -1: none. Where the
  // controller is not in the worker's cgroup the limit is accepted and shown
  // as not enforced (docs/config.md).
  int64_t memory_max = -1, memory_high = -1, pids_max = -1;
  double cpu_max = -1;  // a fraction of one core: 0.5 is "50000 100000"
  // Bytes: the daemon restarts the worker gracefully once the resident memory
  // of its whole tree stays above this for two samples (memory_watch.h),
  // with or without cgroups; -1: never.
  int64_t memory_restart = -1;

  bool operator==(const ProgramSpec&) const = default;
};

struct Config {
  std::vector<ProgramSpec> programs;
};

// Limits that keep a config or request from asking for absurd things.
inline constexpr int kMaxInstances = 1000;
inline constexpr int kMaxArgs = 256;
inline constexpr size_t kMaxArgBytes = 4096;
inline constexpr uint64_t kLimitInfinity = ~uint64_t{0};  // RLIM_INFINITY
inline constexpr int64_t kMaxDelayMs = 24LL * 3600 * 1000;
// How long after its first process exited a pid_file must name a live process.
inline constexpr int64_t kPidFileTimeoutMs = 5000;

}  // namespace forkwatch
