#include <catch2/catch.hpp>

#include "latency_histogram.h"

using forkwatch::db::LatencyHistogram;

TEST_CASE("latency histogram buckets are cumulative with inclusive upper bounds", "[unit]") {
  LatencyHistogram h;
  h.record(100'000);          // exactly 0.1 ms: the first bucket (le is inclusive)
  h.record(100'001);          // just above: the second
  h.record(-5);               // a clock step back counts as 0
  h.record(3'000'000);        // 3 ms: le 0.005
  h.record(20'000'000'000);   // 20 s: only +Inf
  LatencyHistogram::Snapshot s = h.snapshot();
  CHECK(s.count == 5);
  CHECK(s.sum_ns == 100'000 + 100'001 + 0 + 3'000'000 + 20'000'000'000);
  CHECK(s.cumulative[0] == 2);  // le 0.0001
  CHECK(s.cumulative[1] == 3);  // le 0.00025
  CHECK(s.cumulative[4] == 3);  // le 0.0025
  CHECK(s.cumulative[5] == 4);  // le 0.005
  CHECK(s.cumulative.back() == 4);  // le 10: the 20 s one is beyond
  for (size_t i = 1; i < s.cumulative.size(); ++i) CHECK(s.cumulative[i] >= s.cumulative[i - 1]);
  CHECK(s.sum_seconds() == Approx(20.003200001));
}

TEST_CASE("latency histogram quantile bound names the bucket of the quantile", "[unit]") {
  LatencyHistogram h;
  CHECK(h.snapshot().quantile_bound(0.5) == 0);
  for (int i = 0; i < 99; ++i) h.record(400'000);  // 0.4 ms: le 0.0005
  h.record(30'000'000'000);                         // one beyond every bucket
  LatencyHistogram::Snapshot s = h.snapshot();
  CHECK(s.quantile_bound(0.5) == 0.0005);
  CHECK(s.quantile_bound(0.99) == 0.0005);
  CHECK(s.quantile_bound(1.0) == -1);  // +Inf
}
