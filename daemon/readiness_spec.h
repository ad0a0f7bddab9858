// How a program says it is ready and healthy, and what it waits for: the
// `ready`, `health` and `depends_on` fields of a program (CONTRACT.md,
// "Readiness, health, order"). Plain data inside ProgramSpec; parsed by
// readiness_fields.h, acted on by the supervisor. Pure; any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace forkwatch {

// One way to tell: readiness accepts every kind, health only tcp/http/exec.
enum class ProbeKind { kNone, kNotify, kTcp, kHttp, kExec, kLog, kFd };
std::string_view probe_kind_name(ProbeKind k);

struct ProbeSpec {
  ProbeKind kind = ProbeKind::kNone;
  std::string host = "127.0.0.1";  // tcp
  int port = 0;                    // tcp: 1..65535
  std::string url;                 // http: http://HOST:PORT/PATH (status 200..399 passes)
  std::vector<std::string> argv;   // exec: exit 0 passes
  std::string pattern;             // log: ECMAScript regex matched against each output line
  int fd = -1;                     // fd: s6's notification-fd, a newline on fd N (3..1023)

  bool operator==(const ProbeSpec&) const = default;
};

struct HealthSpec {
  ProbeSpec probe;  // kind kNone: no health check
  int64_t interval_ms = 10'000;
  int64_t timeout_ms = 2'000;
  int failures = 3;           // consecutive failed probes that make it unhealthy
  int64_t start_period_ms = 0;  // failures after ready within this do not count (Docker's start-period)

  bool operator==(const HealthSpec&) const = default;
};

enum class DependencyCondition { kStarted, kReady, kHealthy, kCompleted };
std::string_view dependency_condition_name(DependencyCondition c);

struct Dependency {
  std::string program;  // a config program's name
  DependencyCondition condition = DependencyCondition::kReady;
  // systemd's PartOf=: when the dependency stops or restarts, this one is
  // stopped too (and started again once the condition holds once more).
  bool part_of = false;

  bool operator==(const Dependency&) const = default;
};

// `ready: {"fd": N}`: how much of what a worker writes before its newline is
// kept (for the log line when it closes the fd without one); the rest is read
// and dropped, so the writer never blocks.
inline constexpr size_t kMaxReadyFdText = 256;

// How often a readiness probe (tcp, http, exec) is tried until it passes.
inline constexpr int64_t kReadyProbeIntervalMs = 100;
// The default start_timeout_ms for a worker with a readiness check: systemd's
// DefaultTimeoutStartSec=90s.
inline constexpr int64_t kDefaultStartTimeoutMs = 90'000;

}  // namespace forkwatch
