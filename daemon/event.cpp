#include "event.h"

#include <time.h>

namespace forkwatch {

std::string_view event_kind_name(EventKind kind) {
  switch (kind) {
    case EventKind::kSpawn: return "spawn";
    case EventKind::kExit: return "exit";
    case EventKind::kStop: return "stop";
    case EventKind::kContinue: return "continue";
    case EventKind::kRestart: return "restart";
    case EventKind::kAdopt: return "adopt";
    case EventKind::kState: return "state";
    case EventKind::kSample: return "sample";
    case EventKind::kProcess: return "process";
    case EventKind::kPause: return "pause";
    case EventKind::kResume: return "resume";
  }
  return "unknown";
}

static int64_t clock_ns(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

int64_t realtime_ns() { return clock_ns(CLOCK_REALTIME); }
int64_t monotonic_ns() { return clock_ns(CLOCK_MONOTONIC); }

}  // namespace forkwatch
