#include "exit_cause.h"

#include <array>
#include <utility>

namespace forkwatch {
namespace {

constexpr std::array<std::pair<ExitCause, std::string_view>, 12> kNames = {{
    {ExitCause::kExited, "exited"},
    {ExitCause::kSignaled, "signaled"},
    {ExitCause::kStopped, "stopped"},
    {ExitCause::kContinued, "continued"},
    {ExitCause::kStopRequested, "stop_requested"},
    {ExitCause::kStopTimeoutKilled, "stop_timeout_killed"},
    {ExitCause::kShutdown, "shutdown"},
    {ExitCause::kMemoryRestart, "memory_restart"},
    {ExitCause::kOomKill, "oom_kill"},
    {ExitCause::kHealthCheck, "health_check"},
    {ExitCause::kWatchdog, "watchdog"},
    {ExitCause::kStartTimeout, "start_timeout"},
}};

}  // namespace

std::string_view exit_cause_name(ExitCause c) {
  for (const auto& [cause, name] : kNames)
    if (cause == c) return name;
  return "exited";
}

std::optional<ExitCause> parse_exit_cause(std::string_view name) {
  for (const auto& [cause, n] : kNames)
    if (n == name) return cause;
  return std::nullopt;
}

ExitCause cause_of_status(const WaitStatus& s) {
  if (s.stopped) return ExitCause::kStopped;
  if (s.continued) return ExitCause::kContinued;
  return s.signaled ? ExitCause::kSignaled : ExitCause::kExited;
}

std::string describe_cause(ExitCause c, const WaitStatus& s, std::string_view stop_signal_name) {
  const std::string status = describe(s);
  const std::string after = stop_signal_name.empty() ? "" : " after " + std::string(stop_signal_name);
  switch (c) {
    case ExitCause::kExited:
    case ExitCause::kSignaled:
    case ExitCause::kStopped:
    case ExitCause::kContinued: return status;
    case ExitCause::kStopRequested: return "stopped by request (" + status + after + ")";
    case ExitCause::kStopTimeoutKilled: return "killed by SIGKILL after its stop timeout";
    case ExitCause::kShutdown: return "stopped at daemon shutdown (" + status + ")";
    case ExitCause::kMemoryRestart: return "restarted: over its memory_restart (" + status + ")";
    case ExitCause::kOomKill: return "OOM killed";
    case ExitCause::kHealthCheck: return "restarted: health check failed (" + status + ")";
    case ExitCause::kWatchdog: return "killed: no watchdog keep-alive in time (" + status + ")";
    case ExitCause::kStartTimeout: return "killed: not ready within its start timeout (" + status + ")";
  }
  return status;
}

}  // namespace forkwatch
