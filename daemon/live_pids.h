// LivePids: what a daemon starting after a crash must find. The loop thread
// records every worker's live main process (worker id, pid, process group and
// its start time, /proc/PID/stat field 22) in <state-dir>/live-pids, rewritten
// atomically (temp file + rename) at the end of each loop round in which a
// main process came or went. A SIGKILLed daemon leaves the file as it was;
// the next one, holding the state dir's lock, ends those processes before it
// starts anything (end_previous_run). A pid whose start time differs has been
// recycled for another process and is never touched.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "sys_error.h"

namespace forkwatch {

struct LivePid {
  int64_t worker_id = 0;
  pid_t pid = 0;
  pid_t pgid = 0;           // the worker leads its own group: pid, as spawned
  uint64_t start_time = 0;  // clock ticks after boot (proc(5) stat field 22)

  bool operator==(const LivePid&) const = default;
};

// One line per process: "worker_id pid pgid start_time". Malformed lines are skipped.
std::string format_live_pids(const std::vector<LivePid>& pids);
std::vector<LivePid> parse_live_pids(const std::string& text);

// Loop thread only. Reads a start time once per pid (not on the restart path:
// at the end of the round) and writes the file when the set changed.
class LivePidsFile {
 public:
  explicit LivePidsFile(std::string path) : path_(std::move(path)) {}
  Status update(const std::vector<std::pair<int64_t, pid_t>>& live);
  // A clean stop: nothing is left to find.
  void clear();

 private:
  std::string path_;
  std::unordered_map<pid_t, LivePid> known_;  // live pid -> its record
};

// What end_previous_run found: each recorded process, still running (the
// same start time) or not, and how it ended.
struct Leftover {
  LivePid recorded;
  bool running = false;  // the same process, still there when we looked
  bool killed = false;   // it needed SIGKILL after `term_wait_ms`
};

// Ends the processes the file names that are still the same processes:
// SIGTERM (and SIGCONT) to each one's group, up to `term_wait_ms` for all of
// them to go, then SIGKILL to the groups of those left. Removes the file.
// Call before anything is spawned. Returns every recorded entry.
std::vector<Leftover> end_previous_run(const std::string& path, int term_wait_ms,
                                       const std::string& proc_root = "/proc");

}  // namespace forkwatch
