// Prometheus text exposition of the daemon's counters and latency histograms.
#pragma once

#include <cstdint>
#include <string>

#include "latency_histogram.h"
#include "store.h"
#include "snapshot.h"

namespace forkwatch {

// The sample lines of one Prometheus histogram family from a latency histogram.
std::string render_histogram(const std::string& name, const std::string& help,
                             const db::LatencyHistogram::Snapshot& h);

struct MetricsInputs {
  const Snapshot* snapshot = nullptr;
  const SupervisorCounters* counters = nullptr;
  const db::LatencyHistogram* request_duration = nullptr;
  size_t sse_clients = 0;
  std::string store_text;  // the store's own lines (rows, batches, reap-to-record latency)
};

std::string render_metrics(const MetricsInputs& in);
// The store's lines: rows written, batches, queue depth, reap-to-record latency.
std::string render_store_metrics(const db::StoreStats& s);

}  // namespace forkwatch
