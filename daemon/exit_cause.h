// ExitCause: why a process ended (or stopped, or continued), the `cause`
// column of wait_status and /api/history (CONTRACT.md). The supervisor
// decides it from the worker's lifecycle (worker_state.h exit_cause); the
// names are the contract's. Pure; any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "wait_status.h"

namespace forkwatch {

enum class ExitCause {
  kExited,             // it ended on its own with an exit status
  kSignaled,           // it ended on its own by a signal nobody here sent for a stop
  kStopped,            // WIFSTOPPED
  kContinued,          // WIFCONTINUED
  kStopRequested,      // it ended after a stop asked for it (API, reload, a restart)
  kStopTimeoutKilled,  // SIGKILLed after its stop timeout
  kShutdown,           // it ended because the daemon shut down
  kMemoryRestart,      // restarted for memory_restart
  kOomKill,            // the kernel's OOM killer
  kHealthCheck,
  kWatchdog,
  kStartTimeout,
};

std::string_view exit_cause_name(ExitCause c);
std::optional<ExitCause> parse_exit_cause(std::string_view name);

// What the status alone says: exited, signaled, stopped or continued.
ExitCause cause_of_status(const WaitStatus& s);

// The cause in words for people, with the status: "stopped by request
// (exited 0 after SIGTERM)", "killed by SIGKILL after its stop timeout",
// "OOM killed". `stop_signal_name` may be empty.
std::string describe_cause(ExitCause c, const WaitStatus& s, std::string_view stop_signal_name = {});

}  // namespace forkwatch
