// Prometheus text exposition of the daemon's counters and latency histograms,
// and of every worker (worker_metrics.h). Rendered on an API pool thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "health.h"
#include "latency_histogram.h"
#include "snapshot.h"
#include "store.h"

namespace forkwatch {

class WorkerTally;

// The sample lines of one Prometheus histogram family from a latency histogram.
std::string render_histogram(const std::string& name, const std::string& help,
                             const db::LatencyHistogram::Snapshot& h);

struct MetricsInputs {
  const Snapshot* snapshot = nullptr;
  const SupervisorCounters* counters = nullptr;
  const db::LatencyHistogram* request_duration = nullptr;
  size_t sse_clients = 0;
  const db::StoreStats* store = nullptr;  // null: no store lines
  const Health* health = nullptr;         // null: forkwatch_degraded is left out
  WorkerTally* tally = nullptr;           // null: per-worker exits and gone CPU count zero
};

// The Prometheus text format (version 0.0.4), per-worker series included.
std::string render_metrics(const MetricsInputs& in);
// The same as OpenMetrics 1.0.0 text: counter families named without their
// samples' _total, and the closing # EOF.
std::string to_openmetrics(std::string_view prometheus_text);
// The store's lines: rows written, batches, queue depth and limit, losses,
// outages, retention, reap-to-record latency.
std::string render_store_metrics(const db::StoreStats& s);

}  // namespace forkwatch
