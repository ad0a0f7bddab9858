// Restart delays: capped exponential backoff with jitter, starting from the
// program's restart_delay_ms. Pure; the caller supplies the random number.
#pragma once

#include <cstdint>

namespace forkwatch {

// A worker that stayed up this long is healthy again: its failure count resets.
inline constexpr int64_t kStableAfterMs = 10'000;
// No delay grows beyond this (unless restart_delay_ms itself is larger).
inline constexpr int64_t kMaxBackoffMs = 30'000;
// Each delay varies by up to ±20 % so that crashed siblings don't restart in lockstep.
inline constexpr double kJitter = 0.2;

// The delay before restart number `attempt` (1 for the first restart after a
// failure). `random01` is uniform in [0, 1).
int64_t restart_delay_ms(int64_t base_ms, int attempt, double random01);

// The floor under every configured backoff: systemd's RestartSec default.
// A worker that keeps failing is paced whatever restart_delay_ms says, so a
// zero-delay crash loop cannot take the daemon's core.
inline constexpr int64_t kMinRestartDelayMs = 100;

// The delay the supervisor uses: the configured backoff, but from the second
// consecutive restart on never below kMinRestartDelayMs x 2^(attempt-2). The
// first restart after a stable run keeps the configured delay (0 stays
// immediate), so one crash still costs about a millisecond of downtime.
int64_t paced_restart_delay_ms(int64_t base_ms, int attempt, double random01);

}  // namespace forkwatch
