// LatencyHistogram: a Prometheus-style histogram of durations with fixed
// buckets from 0.1 ms to 10 s. record() from one thread (the store's writer),
// snapshot() from any thread; every counter is an atomic, so a snapshot taken
// during a record() may be off by that one observation, never torn.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

namespace forkwatch::db {

class LatencyHistogram {
 public:
  // Upper bounds in seconds ("le" labels); +Inf is implied after the last.
  static constexpr std::array<double, 16> kBoundsSeconds = {
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
      0.05,   0.1,     0.25,   0.5,   1.0,    2.5,   5.0,  10.0};

  struct Snapshot {
    // cumulative[i]: observations <= kBoundsSeconds[i]; count includes +Inf.
    std::array<uint64_t, kBoundsSeconds.size()> cumulative{};
    uint64_t count = 0;
    int64_t sum_ns = 0;
    double sum_seconds() const { return static_cast<double>(sum_ns) / 1e9; }
    // Upper bound of the bucket holding quantile q (0..1); +Inf as -1. 0 if empty.
    double quantile_bound(double q) const;
  };

  // A negative duration (the wall clock stepped back) counts as zero.
  void record(int64_t duration_ns);
  Snapshot snapshot() const;

 private:
  // Per-bucket (not cumulative) counts; the last slot is +Inf.
  std::array<std::atomic<uint64_t>, kBoundsSeconds.size() + 1> buckets_{};
  std::atomic<int64_t> sum_ns_{0};
};

}  // namespace forkwatch::db
