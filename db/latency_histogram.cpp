#include "latency_histogram.h"

namespace forkwatch::db {

void LatencyHistogram::record(int64_t duration_ns) {
  if (duration_ns < 0) duration_ns = 0;
  size_t i = 0;
  while (i < kBoundsSeconds.size() &&
         static_cast<double>(duration_ns) > kBoundsSeconds[i] * 1e9)
    ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(duration_ns, std::memory_order_relaxed);
}

LatencyHistogram::Snapshot LatencyHistogram::snapshot() const {
  Snapshot s;
  uint64_t running = 0;
  for (size_t i = 0; i < kBoundsSeconds.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    s.cumulative[i] = running;
  }
  // count is at least the sum of the buckets, so le="+Inf" never falls below
  // the last finite bucket even while record() runs.
  s.count = running + buckets_.back().load(std::memory_order_relaxed);
  s.sum_ns = sum_ns_.load(std::memory_order_relaxed);
  return s;
}

double LatencyHistogram::Snapshot::quantile_bound(double q) const {
  if (count == 0) return 0;
  double rank = q * static_cast<double>(count);
  for (size_t i = 0; i < cumulative.size(); ++i)
    if (static_cast<double>(cumulative[i]) >= rank) return kBoundsSeconds[i];
  return -1;
}

}  // namespace forkwatch::db
