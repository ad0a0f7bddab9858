// The per-worker series of /metrics (CONTRACT.md, "Metrics for a fleet"),
// labelled program, worker and id. WorkerTally is an EventSink: it counts each
// worker's exits by how and cause and the CPU time of its processes that are
// gone, which no snapshot keeps. publish() runs on the loop thread; the
// renderer reads it from API pool threads (one mutex). The series of a worker
// exist exactly while it is in the snapshot, so a removed worker's disappear
// and there are at most --max-workers workers' worth (docs/fleet.md).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "event.h"
#include "snapshot.h"

namespace forkwatch {

// The `cause` label of an exit: the cause the supervisor recorded
// (exit_cause.h: exited, signaled, stop_requested, stop_timeout_killed, ...).
std::string_view exit_cause_label(const WaitRecord& r);
// The `how` label: "exited" (WIFEXITED) or "signaled" (WIFSIGNALED).
std::string_view exit_how(const WaitStatus& s);

class WorkerTally : public EventSink {
 public:
  void publish(const Event& e) override;

  struct Exits {
    std::string_view how, cause;  // static strings
    uint64_t count = 0;
  };
  struct Worker {
    std::vector<Exits> exits;  // few: one per (how, cause) seen
    // CPU seconds of the worker's processes reaped at or before `folded_to_ns`
    // (wait4's rusage, which holds the children they reaped themselves).
    double gone_cpu_s = 0;
    int64_t folded_to_ns = 0;
    std::vector<std::pair<int64_t, double>> pending;  // (reaped at, CPU s), not yet folded
  };

  // Calls fn(WorkerView, Worker) for each worker in `snapshot` under the
  // tally's lock, first folding the CPU of processes reaped by `sample_real_ns` (the
  // sample whose live processes are added to it; INT64_MAX without one), so
  // that a process counts either live or gone, never both nor neither.
  template <class Fn>
  void visit(const Snapshot& snapshot, int64_t sample_real_ns, Fn fn);

 private:
  void fold(Worker& w, int64_t upto_ns);
  // Drops workers removed since: absent from the snapshot although older
  // than its newest worker (ids only grow, so a worker newer than the
  // snapshot is kept until a snapshot shows it).
  void forget_absent(const Snapshot& snapshot);

  std::mutex mu_;
  std::unordered_map<int64_t, Worker> workers_;  // guarded by mu_
};

// Appends every per-worker family to `out`: up, state, restarts, exits, CPU,
// memory, processes, threads, ready, healthy, start time.
void render_worker_metrics(std::string& out, const Snapshot& snapshot, WorkerTally* tally);

// Prometheus label value escaping (exposition formats): \\, \" and \n.
void append_label_value(std::string& out, std::string_view v);

template <class Fn>
void WorkerTally::visit(const Snapshot& snapshot, int64_t sample_real_ns, Fn fn) {
  std::lock_guard lock(mu_);
  static const Worker kNone;
  size_t matched = 0;
  for (const auto& w : snapshot.workers) {
    auto it = workers_.find(w.id);
    if (it == workers_.end()) {
      fn(w, kNone);
      continue;
    }
    ++matched;
    fold(it->second, sample_real_ns);
    fn(w, std::as_const(it->second));
  }
  if (matched < workers_.size()) forget_absent(snapshot);
}

}  // namespace forkwatch
