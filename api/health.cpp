#include "health.h"


#include <nlohmann/json.hpp>

#include "json_dump.h"

namespace forkwatch {

Health HealthMonitor::assess(const db::StoreStats* store, uint64_t spawn_failures, int64_t now_mono_ns) {
  Health h;
  if (store && store->degraded) {
    HealthReason r{"store_unwritable",
                   store->last_error.empty() ? "the store has not caught up yet"
                                             : "the store cannot write: " + store->last_error,
                   {{"queue_depth", static_cast<int64_t>(store->queue_depth)},
                    {"queue_limit", static_cast<int64_t>(store->max_queue_items)},
                    {"dropped", static_cast<int64_t>(store->items_dropped)},
                    {"degraded_for_ms", store->degraded_for_ns / 1'000'000}}};
    h.reasons.push_back(std::move(r));
  }
  uint64_t recent = 0;
  {
    std::lock_guard lock(mu_);
    // The daemon started with none; that first sample anchors the window.
    if (samples_.empty()) samples_.emplace_back(now_mono_ns, 0);
    if (now_mono_ns - samples_.back().first >= 1'000'000'000 || spawn_failures != samples_.back().second)
      samples_.emplace_back(now_mono_ns, spawn_failures);
    // Keep one sample at or before the window's start to count from.
    while (samples_.size() > 1 && samples_[1].first <= now_mono_ns - kSpawnWindowNs) samples_.pop_front();
    recent = spawn_failures - std::min(spawn_failures, samples_.front().second);
  }
  if (recent > 0)
    h.reasons.push_back({"spawns_failing",
                         std::to_string(recent) + " spawns failed in the last 60 s (see each worker's "
                                                  "fatal_reason and the daemon's log)",
                         {{"spawn_failures", static_cast<int64_t>(recent)},
                          {"spawn_failures_total", static_cast<int64_t>(spawn_failures)}}});
  return h;
}

std::string health_json(const Health& h, const db::StoreStats* store, const std::string& version, int64_t pid,
                        int64_t uptime_s, const ProcessEventStats* events, const Containment* containment) {
  nlohmann::json out = {
      {"status", h.degraded() ? "degraded" : "ok"}, {"version", version}, {"pid", pid}, {"uptime_s", uptime_s}};
  if (h.degraded()) {
    nlohmann::json reasons = nlohmann::json::array();
    for (const HealthReason& r : h.reasons) {
      nlohmann::json j = {{"code", r.code}, {"message", r.message}};
      for (const auto& [k, v] : r.numbers) j[k] = v;
      reasons.push_back(std::move(j));
    }
    out["reasons"] = std::move(reasons);
  }
  if (events) {
    out["process_events"] = events->mode;
    out["process_events_lost"] = events->lost.load();
    if (!events->reason.empty()) out["process_events_reason"] = events->reason;
    out["process_events_stats"] = {{"events", events->events.load()},   {"gaps", events->gaps.load()},
                                   {"overruns", events->overruns.load()}, {"malformed", events->malformed.load()},
                                   {"lifetimes", events->lifetimes.load()},
                                   {"thread_lifetimes", events->thread_lifetimes.load()},
                                   {"rcvbuf_bytes", events->rcvbuf.load()},
                                   {"argv_lost", events->argv_lost.load()}};
  }
  if (containment) {
    out["containment"] = containment->mode;
    if (containment->mode == "cgroup") out["cgroup_subtree"] = containment->subtree;
    else out["containment_reason"] = containment->reason;
  }
  if (store)
    out["store"] = {{"queue_depth", store->queue_depth},
                    {"queue_limit", store->max_queue_items},
                    {"dropped", store->items_dropped},
                    {"dropped_wait_statuses", store->wait_rows_dropped},
                    {"write_errors", store->write_errors},
                    {"last_outage_ms", store->last_outage_ns / 1'000'000},
                    {"last_catch_up_ms", store->last_catch_up_ns / 1'000'000},
                    {"db_bytes", store->db_bytes}};
  return dump_json(out);
}

}  // namespace forkwatch
