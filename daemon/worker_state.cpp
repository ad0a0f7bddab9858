#include "worker_state.h"

#include <csignal>

namespace forkwatch {

std::string_view worker_state_name(WorkerState s) {
  switch (s) {
    case WorkerState::kStarting: return "starting";
    case WorkerState::kRunning: return "running";
    case WorkerState::kStopping: return "stopping";
    case WorkerState::kStopped: return "stopped";
    case WorkerState::kExited: return "exited";
    case WorkerState::kBackoff: return "backoff";
    case WorkerState::kFatal: return "fatal";
    case WorkerState::kWaiting: return "waiting";
  }
  return "unknown";
}

namespace {

// The restart policy's verdict on an exit that nobody asked for.
Transition on_unrequested_exit(const ExitFacts& f) {
  const bool wants_restart = f.policy == RestartPolicy::kAlways ||
                             (f.policy == RestartPolicy::kOnFailure && f.failed);
  if (!wants_restart) return {WorkerState::kExited, WorkerAction::kNone};
  if (f.consecutive_failures >= f.max_restarts) return {WorkerState::kFatal, WorkerAction::kNone};
  return {WorkerState::kBackoff, WorkerAction::kScheduleRestart};
}

// No process ran: the policy may retry (it counts toward max_restarts), but a
// worker that would not be restarted is `fatal`, never a made-up "exited".
Transition on_spawn_failure(ExitFacts f) {
  f.failed = true;
  const Transition t = on_unrequested_exit(f);
  return t.next == WorkerState::kExited ? Transition{WorkerState::kFatal, WorkerAction::kNone} : t;
}

}  // namespace

namespace {

Transition decide(WorkerState state, WorkerInput input, const ExitFacts& facts) {
  using S = WorkerState;
  using I = WorkerInput;
  using A = WorkerAction;
  const Transition rejected{state, A::kRejected};
  const Transition start = facts.dependencies_met ? Transition{S::kStarting, A::kSpawn}
                                                  : Transition{S::kWaiting, A::kNone};
  auto failed_stop = [](ExitCause c) { return Transition{S::kStopping, A::kSendStopSignal, A::kNone, false, c}; };
  // PM2's max_memory_restart: a restart whatever the restart policy says,
  // which does not bring the worker nearer to max_restarts' `fatal`.
  const Transition memory_restart{S::kStopping, A::kSendStopSignal, A::kNone, false, ExitCause::kMemoryRestart, true};
  switch (state) {
    case S::kStarting:
      switch (input) {
        case I::kExecOk:
          return facts.awaits_ready ? Transition{S::kStarting, A::kAwaitReady}
                                    : Transition{S::kRunning, A::kMarkReady};
        case I::kReady: return {S::kRunning, A::kMarkReady};
        case I::kStartTimeout: return failed_stop(ExitCause::kStartTimeout);
        case I::kHealthFailed: return failed_stop(ExitCause::kHealthCheck);
        case I::kWatchdogTimeout: return failed_stop(ExitCause::kWatchdog);
        case I::kMemoryOver: return memory_restart;
        case I::kExecFailed: return {S::kFatal, A::kNone};
        case I::kStartRefused: return {S::kFatal, A::kNone};
        case I::kSpawnFailed: return on_spawn_failure(facts);
        case I::kExit: return on_unrequested_exit(facts);
        case I::kStop: return {S::kStopping, A::kSendStopSignal};
        default: return rejected;
      }
    case S::kRunning:
      switch (input) {
        case I::kExit: return on_unrequested_exit(facts);
        case I::kReady: return {S::kRunning, A::kMarkReady};  // READY=1 again, after RELOADING=1
        case I::kHealthFailed: return failed_stop(ExitCause::kHealthCheck);
        case I::kWatchdogTimeout: return failed_stop(ExitCause::kWatchdog);
        case I::kMemoryOver: return memory_restart;
        case I::kStop: return {S::kStopping, A::kSendStopSignal};
        default: return rejected;
      }
    case S::kStopping:
      switch (input) {
        case I::kExit: {
          if (!facts.stopped_as_failed) return {S::kStopped, A::kNone, A::kFinishStop};
          ExitFacts f = facts;
          f.failed = true;
          Transition t = on_unrequested_exit(f);
          t.then = A::kFinishStop;  // leftovers killed, the kill timer disarmed
          return t;
        }
        case I::kStopTimeout: return {S::kStopping, A::kKill};
        case I::kStop: return {S::kStopping, A::kNone};  // already on its way
        default: return rejected;
      }
    case S::kBackoff:
      switch (input) {
        case I::kBackoffElapsed: return {S::kStarting, A::kSpawn};
        case I::kStart: return start;
        case I::kStop: return {S::kStopped, A::kCancelRestart, A::kFinishStop};
        default: return rejected;
      }
    case S::kWaiting:
      switch (input) {
        case I::kDependenciesMet: return {S::kStarting, A::kSpawn};
        case I::kStart: return {S::kWaiting, A::kNone};  // already waiting
        case I::kStop: return {S::kStopped, A::kNone, A::kFinishStop};
        default: return rejected;
      }
    case S::kStopped:
    case S::kExited:
    case S::kFatal:
      switch (input) {
        case I::kStart: return start;
        case I::kStop: return {state, A::kNone};  // stopping a stopped worker is a no-op
        default: return rejected;
      }
  }
  return rejected;
}

}  // namespace

Transition transition(WorkerState state, WorkerInput input, const ExitFacts& facts) {
  Transition t = decide(state, input, facts);
  t.publish = t.action != WorkerAction::kRejected && t.next != state;
  return t;
}

ExitCause exit_cause(WorkerState state, const WaitStatus& s, const StopFacts& f) {
  if (!s.terminated()) return cause_of_status(s);
  // Exited or fatal with a stop cause: what its main process left in its
  // cgroup was stopped (Supervisor::stop_leftovers).
  const bool stopping = state == WorkerState::kStopping || state == WorkerState::kStopped ||
                        state == WorkerState::kExited || state == WorkerState::kFatal;
  if (!stopping || !f.stop_cause) return cause_of_status(s);
  if (f.killed && s.signaled && s.term_sig == SIGKILL) return ExitCause::kStopTimeoutKilled;
  return *f.stop_cause;
}

bool stopped_as_failed(const StopFacts& f) {
  return f.stop_cause == ExitCause::kStartTimeout || f.stop_cause == ExitCause::kHealthCheck ||
         f.stop_cause == ExitCause::kWatchdog;
}

bool StartLimit::admit(int64_t now_ns) {
  const int64_t window_ns = kStartLimitIntervalMs * 1'000'000;
  while (!starts_.empty() && now_ns - starts_.front() >= window_ns) starts_.pop_front();
  if (starts_.size() >= static_cast<size_t>(kStartLimitBurst)) return false;
  starts_.push_back(now_ns);
  return true;
}

std::string StartLimit::refusal() {
  return "start limit hit: already " + std::to_string(kStartLimitBurst) + " starts within " +
         std::to_string(kStartLimitIntervalMs / 1000) +
         " s (systemd's StartLimitBurst); start or restart it through the API to try again";
}

}  // namespace forkwatch
