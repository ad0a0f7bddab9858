// Snapshot: an immutable picture of the supervisor that the loop publishes
// after each round in which something changed. API threads read it without
// locks on supervisor state; the loop never mutates a published snapshot.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "event.h"
#include "output_log.h"
#include "process_tree.h"
#include "program_spec.h"

namespace forkwatch {

class SampleHistory;

struct WorkerView {
  int64_t id = 0;
  std::string name;
  std::string program;
  std::string state;                 // worker_state_name()
  pid_t pid = -1;                    // -1 when no process runs
  // The main process's effective ids: from the latest /proc sample when it
  // holds the process (a worker that changed them itself shows what it is),
  // else what it was started as; -1 when no process runs.
  int64_t uid = -1, gid = -1;
  int restarts = 0;                  // every restart, automatic or requested
  int64_t started_at_ns = 0;         // CLOCK_REALTIME of the last exec; 0 if never
  std::optional<WaitRecord> last_exit;
  std::vector<WaitRecord> recent_exits;  // newest last, at most Worker::kRecentExits
  ProgramSpec spec;                      // with the request's args appended
  std::string fatal_reason;              // why it is `fatal`, in words
  bool persistent = false;               // started through the API: kept across daemon restarts
  std::string cgroup;                    // its cgroup v2 path; empty under process-group containment
  std::string cgroup_dir;                // the same under the mount, for reading its figures
  bool paused = false;                   // its tree is frozen (cgroup.freeze)
  int64_t processes_left = 0;
  std::vector<std::string> limits_not_enforced;  // cgroup limits asked for but not in force, with why            // processes still in its cgroup while no main process runs
  std::shared_ptr<OutputLog> output;     // thread-safe itself
  bool ready = false;                    // passed its ready check (or runs, without one)
  int64_t ready_at_ns = 0;               // CLOCK_REALTIME; 0 until ready
  std::string status_text;               // the last STATUS= of a notify worker
  std::optional<bool> healthy;           // none: no health check, or none decided yet
  std::string waiting_for;               // state waiting: why; else empty
  int64_t probe_at_ns = 0;               // the last ready/health probe's result: when (CLOCK_REALTIME)
  std::string probe_detail;              // and what it was; empty before any
};

// A /proc sample as the API serves it: rendered once on the loop, shared by all readers.
struct TreeSample {
  int64_t taken_ns = 0;       // CLOCK_MONOTONIC
  int64_t taken_real_ns = 0;  // CLOCK_REALTIME
  bool all_scope = false;     // sampled the whole machine, not only the supervised tree
  std::string supervised_json;  // GET /api/tree?scope=supervised
  std::string all_json;         // GET /api/tree?scope=all, when all_scope
  size_t processes = 0, threads = 0;
  // The sample itself, for GET /api/processes/{pid} (rendered on request).
  std::shared_ptr<const ProcessTree> tree;
  WorkerTags tags;
  // Per-worker CPU/RSS history, for GET /api/workers/{id}/samples (thread-safe itself).
  std::shared_ptr<const SampleHistory> history;
};

struct Snapshot {
  uint64_t seq = 0;
  int64_t published_ns = 0;
  std::vector<WorkerView> workers;      // by id, ascending
  std::vector<ProgramSpec> catalogue;   // configured programs, then built-in workers
  std::shared_ptr<const TreeSample> tree;  // null until the first sample

  const WorkerView* find(int64_t id) const;
};

// Counters that only grow, readable from any thread (for /metrics and tests).
struct SupervisorCounters {
  std::atomic<uint64_t> spawns{0}, spawn_failures{0}, restarts{0};
  std::atomic<uint64_t> exited{0}, signaled{0}, core_dumped{0}, stopped{0}, continued{0};
  std::atomic<uint64_t> adopted{0}, reaped{0};
  std::atomic<uint64_t> sigchld_wakeups{0};
  // sd_notify datagrams read, and those refused: from outside the worker's
  // tree, or oversized (notify_socket.h).
  std::atomic<uint64_t> notify_datagrams{0}, notify_dropped{0}, notify_oversized{0};  // signalfd reads that found SIGCHLD
  std::atomic<uint64_t> notify_mainpid_refused{0};  // MAINPID= naming a process outside the worker's tree
  std::atomic<uint64_t> loop_wakeups{0};
  std::atomic<uint64_t> samples{0}, sample_cpu_ns{0};
  // CLOCK_MONOTONIC of the last time somebody looked at the tree (API threads
  // store, the sampler reads): unwatched, the sampler idles.
  std::atomic<int64_t> last_watch_ns{0};
};

// Holds the latest snapshot. publish() on the loop thread, latest() anywhere.
class SnapshotBox {
 public:
  void publish(std::shared_ptr<const Snapshot> s) {
    std::lock_guard lock(mu_);
    current_ = std::move(s);
  }
  std::shared_ptr<const Snapshot> latest() const {
    std::lock_guard lock(mu_);
    return current_;
  }

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const Snapshot> current_;  // guarded by mu_
};

}  // namespace forkwatch
