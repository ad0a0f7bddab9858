// The worker lifecycle as a state table: states × inputs -> next state and the
// one action the supervisor must take. Pure; tested without processes.
//
//   starting --exec ok--> running --exit--> exited | backoff | fatal
//   running --stop--> stopping --exit--> stopped      (kill after the timeout)
//   backoff --timer--> starting                        starting --exec failed--> fatal
#pragma once

#include <string_view>

#include "program_spec.h"

namespace forkwatch {

enum class WorkerState { kStarting, kRunning, kStopping, kStopped, kExited, kBackoff, kFatal };
std::string_view worker_state_name(WorkerState s);

enum class WorkerInput {
  kStart,          // start requested (API, autostart, reload)
  kExecOk,         // the child's exec succeeded
  kExecFailed,     // the child could not exec (missing binary, bad cwd)
  kExit,           // the main process exited or was killed
  kStop,           // stop requested
  kStopTimeout,    // the stop timeout passed while stopping
  kBackoffElapsed  // the restart delay passed
};

enum class WorkerAction {
  kNone,
  kSpawn,            // fork and exec a new main process
  kScheduleRestart,  // arm the backoff timer
  kSendStopSignal,   // stop signal to the group, arm the kill timer
  kKill,             // SIGKILL to the group and every descendant
  kCancelRestart,    // disarm the backoff timer
  kRejected          // the input makes no sense in this state (e.g. stop when stopped)
};

// What the exit means for the restart policy.
struct ExitFacts {
  RestartPolicy policy = RestartPolicy::kOnFailure;
  bool failed = false;        // not "exited 0"
  int consecutive_failures = 0;  // restarts already made since the worker was last stable
  int max_restarts = 0;
};

struct Transition {
  WorkerState next;
  WorkerAction action;
};

Transition transition(WorkerState state, WorkerInput input, const ExitFacts& facts = {});

}  // namespace forkwatch
