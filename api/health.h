// HealthMonitor: decides whether the daemon is "ok" or "degraded" for
// GET /api/health and /metrics (CONTRACT.md, "Faults"): the store cannot
// write (or has not caught up since), or spawns are failing. Spawn failures
// are read from SupervisorCounters' counter; each call samples it, and a
// failure counts as recent while it is within the last kSpawnWindowNs of
// samples. Thread-safe: API threads call assess() concurrently.
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "cgroup.h"
#include "lifetime.h"
#include "store.h"

namespace forkwatch {

struct HealthReason {
  std::string code;     // "store_unwritable", "spawns_failing"
  std::string message;  // for people
  std::vector<std::pair<std::string, int64_t>> numbers;  // e.g. {"queue_depth", 1200}
};

struct Health {
  std::vector<HealthReason> reasons;  // empty: ok
  bool degraded() const { return !reasons.empty(); }
};

class HealthMonitor {
 public:
  static constexpr int64_t kSpawnWindowNs = 60'000'000'000;

  // `store` may be null (no store: nothing to say about it).
  Health assess(const db::StoreStats* store, uint64_t spawn_failures, int64_t now_mono_ns);

 private:
  std::mutex mu_;
  // (when, spawn_failures) samples, oldest first; the first is at or before
  // the window's start. Guarded by mu_; at most one per second is kept.
  std::deque<std::pair<int64_t, uint64_t>> samples_;  // guarded by mu_
};

// The GET /api/health reply: {"status":"ok"|"degraded", "reasons":[{"code",
// "message", …numbers}] (when degraded), "version", "pid", "uptime_s",
// "store":{…} (when there is a store)}.
// With `containment`: "containment" ("cgroup"|"process-group"),
// "containment_reason" when not cgroup, "cgroup_subtree" when it is (issue 13).
// With `events`: "process_events" ("proc_connector"|"sampling"), its
// "process_events_reason" when sampling, and "process_events_lost" (issue 15).
std::string health_json(const Health& h, const db::StoreStats* store, const std::string& version, int64_t pid,
                        int64_t uptime_s, const ProcessEventStats* events = nullptr,
                        const Containment* containment = nullptr);

}  // namespace forkwatch
