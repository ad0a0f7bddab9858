// The worker lifecycle as a state table: states × inputs -> next state and the
// actions the supervisor must carry out (spawn, signal, kill the tree, arm or
// disarm a timer, finish a stop, publish the change). Every lifecycle decision
// is taken here; the supervisor only acts. Pure; tested as a table without
// processes; called on the loop thread.
//
//   starting --exec ok--> running --exit--> exited | backoff | fatal
//   running --stop--> stopping --exit--> stopped      (kill after the timeout)
//   backoff --timer--> starting                        starting --exec failed--> fatal
//   stopped --start, dependencies unmet--> waiting --dependencies met--> starting
//   starting --exec ok, a ready check--> starting --ready--> running
//   starting --start timeout--> stopping (cause start_timeout) --exit--> the policy decides
//   running --health failed | watchdog--> stopping (cause health_check | watchdog) --exit--> the policy decides
//   running --memory over--> stopping (cause memory_restart) --exit--> stopped --> starting (a restart)
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>

#include "exit_cause.h"
#include "program_spec.h"
#include "wait_status.h"

namespace forkwatch {

enum class WorkerState { kStarting, kRunning, kStopping, kStopped, kExited, kBackoff, kFatal, kWaiting };
std::string_view worker_state_name(WorkerState s);

enum class WorkerInput {
  kStart,          // start requested (API, autostart, reload)
  kExecOk,         // the child's exec succeeded
  kExecFailed,     // the child could not exec (missing binary, bad cwd)
  kExit,           // the main process exited or was killed
  kStop,           // stop requested
  kStopTimeout,    // the stop timeout passed while stopping
  kBackoffElapsed,  // the restart delay passed
  kSpawnFailed,     // no process came to be (fork, pipe or watch failed): counts as a failure
  kStartRefused,    // the start was refused before any fork (start limit, command not found)
  kReady,            // its readiness check passed (READY=1, a probe)
  kStartTimeout,     // not ready within start_timeout_ms
  kHealthFailed,     // `failures` health probes in a row failed
  kWatchdogTimeout,  // no WATCHDOG=1 within watchdog_ms (or WATCHDOG=trigger)
  kMemoryOver,       // its tree's RSS stayed above memory_restart (memory_watch.h)
  kDependenciesMet   // every depends_on condition holds
};

enum class WorkerAction {
  kNone,
  kSpawn,            // fork and exec a new main process
  kScheduleRestart,  // arm the backoff timer
  kSendStopSignal,   // stop signal to the group, arm the kill timer
  kKill,             // SIGKILL to the group and every descendant
  kCancelRestart,    // disarm the backoff timer
  kFinishStop,       // the worker is stopped: kill leftovers, disarm the kill timer,
                     // then remove or restart it if that was asked for
  kAwaitReady,       // arm the start timeout, start the readiness probe
  kMarkReady,        // ready now: disarm the start timeout, start health checks
  kRejected          // the input makes no sense in this state (e.g. stop when stopped)
};

// What the exit means for the restart policy.
struct ExitFacts {
  RestartPolicy policy = RestartPolicy::kOnFailure;
  bool failed = false;        // not "exited 0"
  int consecutive_failures = 0;  // restarts already made since the worker was last stable
  int max_restarts = 0;
  // Start: every depends_on condition holds (else the worker waits).
  bool dependencies_met = true;
  // Exec ok: the worker has a ready check, so it stays starting until it passes.
  bool awaits_ready = false;
  // Exit while stopping: the daemon stopped it as failed (start_timeout,
  // health_check, watchdog), so the exit is a failure and the policy decides.
  bool stopped_as_failed = false;
};

struct Transition {
  WorkerState next;
  WorkerAction action;                      // first action
  WorkerAction then = WorkerAction::kNone;  // second action, after `action`
  // The state changed: a `state` event goes out and the next snapshot shows it.
  bool publish = false;
  // kSendStopSignal for a failure the daemon found: the exit's cause.
  std::optional<ExitCause> stop_cause;
  // The stop is a restart: once stopped, the worker starts again, counted
  // as a restart but not as a failure (unless a stop, a removal or the
  // shutdown comes first; the supervisor's restart_after_stop).
  bool restart_after_stop = false;
};

Transition transition(WorkerState state, WorkerInput input, const ExitFacts& facts = {});

// What the supervisor knows about a stop in progress, for the exit's cause.
struct StopFacts {
  std::optional<ExitCause> stop_cause;  // why a stop began (stop_requested, shutdown, …); none: no stop
  bool killed = false;                  // SIGKILL went out after the stop timeout
};

// The `cause` of a wait status of a worker's process (its main process, or an
// orphan of its tree) in `state`: a stop's cause once a stop began, and
// stop_timeout_killed for what our SIGKILL ended; else what the status says.
ExitCause exit_cause(WorkerState state, const WaitStatus& s, const StopFacts& f);
// The stop in progress is the daemon's verdict of failure (start_timeout,
// health_check, watchdog), not a request.
bool stopped_as_failed(const StopFacts& f);

// systemd's DefaultStartLimitBurst=5 and DefaultStartLimitIntervalSec=10s: a
// worker is started at most kStartLimitBurst times within any
// kStartLimitIntervalMs. The start past it is refused and the worker becomes
// `fatal` (systemd's "start-limit-hit"); a start or restart through the API
// clears the count, as `systemctl reset-failed` does.
inline constexpr int kStartLimitBurst = 5;
inline constexpr int64_t kStartLimitIntervalMs = 10'000;

// A worker's recent starts. Pure: the caller passes CLOCK_MONOTONIC.
class StartLimit {
 public:
  // Counts a start at `now_ns`, or returns false (and counts nothing) when it
  // would be the (burst+1)th within the interval.
  bool admit(int64_t now_ns);
  void reset() { starts_.clear(); }
  // Why a start was refused, in words, for the worker's fatal_reason.
  static std::string refusal();

 private:
  std::deque<int64_t> starts_;  // at most kStartLimitBurst, oldest first
};

}  // namespace forkwatch
