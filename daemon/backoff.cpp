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

}  // namespace forkwatch
