#include <catch2/catch.hpp>

#include "backoff.h"

using forkwatch::restart_delay_ms;

TEST_CASE("backoff doubles from the base delay and stops at the cap", "[unit]") {
  // random01 = 0.5 means no jitter.
  CHECK(restart_delay_ms(100, 1, 0.5) == 100);
  CHECK(restart_delay_ms(100, 2, 0.5) == 200);
  CHECK(restart_delay_ms(100, 3, 0.5) == 400);
  CHECK(restart_delay_ms(100, 20, 0.5) == forkwatch::kMaxBackoffMs);
  CHECK(restart_delay_ms(100, 1'000'000, 0.5) == forkwatch::kMaxBackoffMs);
}

TEST_CASE("backoff jitter stays within 20 percent either way", "[unit]") {
  CHECK(restart_delay_ms(1000, 1, 0.0) == 800);
  CHECK(restart_delay_ms(1000, 1, 0.999999) == 1200);
  for (double r = 0; r < 1; r += 0.01) {
    auto d = restart_delay_ms(1000, 2, r);
    CHECK(d >= 1600);
    CHECK(d <= 2400);
  }
}

TEST_CASE("a zero restart delay restarts at once, and a huge base is its own cap", "[unit]") {
  CHECK(restart_delay_ms(0, 5, 0.9) == 0);
  CHECK(restart_delay_ms(60'000, 3, 0.5) == 60'000);
}

TEST_CASE("paced delays keep a zero-delay first restart but floor every later one", "[unit]") {
  using forkwatch::kMinRestartDelayMs;
  using forkwatch::paced_restart_delay_ms;
  CHECK(paced_restart_delay_ms(0, 1, 0.5) == 0);
  CHECK(paced_restart_delay_ms(0, 2, 0.5) == kMinRestartDelayMs);
  CHECK(paced_restart_delay_ms(0, 3, 0.5) == 2 * kMinRestartDelayMs);
  CHECK(paced_restart_delay_ms(0, 1'000'000, 0.5) == forkwatch::kMaxBackoffMs);
  // Jitter may take a floored delay below the floor by at most kJitter.
  CHECK(paced_restart_delay_ms(0, 2, 0.0) >= kMinRestartDelayMs * (1 - forkwatch::kJitter));
  // A configured delay above the floor is kept as it was.
  CHECK(paced_restart_delay_ms(1000, 2, 0.5) == 2000);
}
