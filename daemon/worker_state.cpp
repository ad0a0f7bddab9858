#include "worker_state.h"

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

}  // namespace

Transition transition(WorkerState state, WorkerInput input, const ExitFacts& facts) {
  using S = WorkerState;
  using I = WorkerInput;
  using A = WorkerAction;
  const Transition rejected{state, A::kRejected};
  switch (state) {
    case S::kStarting:
      switch (input) {
        case I::kExecOk: return {S::kRunning, A::kNone};
        case I::kExecFailed: return {S::kFatal, A::kNone};
        case I::kExit: return on_unrequested_exit(facts);
        case I::kStop: return {S::kStopping, A::kSendStopSignal};
        default: return rejected;
      }
    case S::kRunning:
      switch (input) {
        case I::kExit: return on_unrequested_exit(facts);
        case I::kStop: return {S::kStopping, A::kSendStopSignal};
        default: return rejected;
      }
    case S::kStopping:
      switch (input) {
        case I::kExit: return {S::kStopped, A::kNone};
        case I::kStopTimeout: return {S::kStopping, A::kKill};
        case I::kStop: return {S::kStopping, A::kNone};  // already on its way
        default: return rejected;
      }
    case S::kBackoff:
      switch (input) {
        case I::kBackoffElapsed: return {S::kStarting, A::kSpawn};
        case I::kStart: return {S::kStarting, A::kSpawn};
        case I::kStop: return {S::kStopped, A::kCancelRestart};
        default: return rejected;
      }
    case S::kStopped:
    case S::kExited:
    case S::kFatal:
      switch (input) {
        case I::kStart: return {S::kStarting, A::kSpawn};
        case I::kStop: return {state, A::kNone};  // stopping a stopped worker is a no-op
        default: return rejected;
      }
  }
  return rejected;
}

}  // namespace forkwatch
