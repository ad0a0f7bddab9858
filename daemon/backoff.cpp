#include "backoff.h"

#include <algorithm>
#include <cmath>

namespace forkwatch {

int64_t restart_delay_ms(int64_t base_ms, int attempt, double random01) {
  if (base_ms <= 0) return 0;
  const int64_t cap = std::max(base_ms, kMaxBackoffMs);
  // base * 2^(attempt-1), computed without overflow.
  int64_t delay = base_ms;
  for (int i = 1; i < attempt && delay < cap; ++i) delay *= 2;
  delay = std::min(delay, cap);
  const double factor = 1.0 + kJitter * (2.0 * random01 - 1.0);
  return std::max<int64_t>(0, std::llround(static_cast<double>(delay) * factor));
}

int64_t paced_restart_delay_ms(int64_t base_ms, int attempt, double random01) {
  const int64_t configured = restart_delay_ms(base_ms, attempt, random01);
  if (attempt < 2) return configured;
  return std::max(configured, restart_delay_ms(kMinRestartDelayMs, attempt - 1, random01));
}

}  // namespace forkwatch
