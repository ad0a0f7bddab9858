#include <catch2/catch.hpp>

#include "worker_state.h"

using namespace forkwatch;
using S = WorkerState;
using I = WorkerInput;
using A = WorkerAction;

namespace {
ExitFacts facts(RestartPolicy p, bool failed, int restarts = 0, int max = 3) {
  return ExitFacts{p, failed, restarts, max};
}
}  // namespace

TEST_CASE("a start spawns, an exec confirms running", "[unit]") {
  auto t = transition(S::kStopped, I::kStart);
  CHECK(t.next == S::kStarting);
  CHECK(t.action == A::kSpawn);
  t = transition(S::kStarting, I::kExecOk);
  CHECK(t.next == S::kRunning);
  CHECK(transition(S::kStarting, I::kExecFailed).next == S::kFatal);
}

TEST_CASE("restart policies decide what an unrequested exit leads to", "[unit]") {
  CHECK(transition(S::kRunning, I::kExit, facts(RestartPolicy::kNo, true)).next == S::kExited);
  CHECK(transition(S::kRunning, I::kExit, facts(RestartPolicy::kOnFailure, false)).next == S::kExited);
  auto t = transition(S::kRunning, I::kExit, facts(RestartPolicy::kOnFailure, true));
  CHECK(t.next == S::kBackoff);
  CHECK(t.action == A::kScheduleRestart);
  CHECK(transition(S::kRunning, I::kExit, facts(RestartPolicy::kAlways, false)).next == S::kBackoff);
}

TEST_CASE("max_restarts turns the next failure into fatal", "[unit]") {
  CHECK(transition(S::kRunning, I::kExit, facts(RestartPolicy::kAlways, true, 2, 3)).next == S::kBackoff);
  CHECK(transition(S::kRunning, I::kExit, facts(RestartPolicy::kAlways, true, 3, 3)).next == S::kFatal);
  CHECK(transition(S::kRunning, I::kExit, facts(RestartPolicy::kAlways, true, 0, 0)).next == S::kFatal);
}

TEST_CASE("a stop signals, escalates on timeout, and ends stopped without restart", "[unit]") {
  auto t = transition(S::kRunning, I::kStop);
  CHECK(t.next == S::kStopping);
  CHECK(t.action == A::kSendStopSignal);
  t = transition(S::kStopping, I::kStopTimeout);
  CHECK(t.action == A::kKill);
  // Even a failing exit under `always` stays stopped: the stop was asked for.
  t = transition(S::kStopping, I::kExit, facts(RestartPolicy::kAlways, true));
  CHECK(t.next == S::kStopped);
  CHECK(t.action == A::kNone);
}

TEST_CASE("backoff can be cancelled by a stop, and nonsense inputs are rejected", "[unit]") {
  auto t = transition(S::kBackoff, I::kStop);
  CHECK(t.next == S::kStopped);
  CHECK(t.action == A::kCancelRestart);
  CHECK(transition(S::kBackoff, I::kBackoffElapsed).action == A::kSpawn);
  CHECK(transition(S::kStopped, I::kExit).action == A::kRejected);
  CHECK(transition(S::kRunning, I::kExecOk).action == A::kRejected);
  CHECK(transition(S::kStopped, I::kStop).action == A::kNone);
  CHECK(transition(S::kFatal, I::kStart).next == S::kStarting);
}

TEST_CASE("the start limit admits a burst of starts per interval, then refuses until one ages out", "[unit]") {
  StartLimit limit;
  const int64_t ms = 1'000'000;
  for (int i = 0; i < kStartLimitBurst; ++i) CHECK(limit.admit(i * 100 * ms));
  CHECK_FALSE(limit.admit(kStartLimitBurst * 100 * ms));
  // The first start leaves the window exactly one interval after it was made.
  CHECK_FALSE(limit.admit(kStartLimitIntervalMs * ms - 1));
  CHECK(limit.admit(kStartLimitIntervalMs * ms));
  CHECK_FALSE(limit.admit(kStartLimitIntervalMs * ms + 1));
  limit.reset();
  CHECK(limit.admit(kStartLimitIntervalMs * ms + 2));
  CHECK(StartLimit::refusal().find("start limit") != std::string::npos);
}

TEST_CASE("a failed spawn is retried like a failure, and is fatal where no restart follows", "[unit]") {
  auto t = transition(S::kStarting, I::kSpawnFailed, facts(RestartPolicy::kOnFailure, false, 0, 3));
  CHECK(t.next == S::kBackoff);
  CHECK(t.action == A::kScheduleRestart);
  CHECK(transition(S::kStarting, I::kSpawnFailed, facts(RestartPolicy::kAlways, true, 3, 3)).next == S::kFatal);
  CHECK(transition(S::kStarting, I::kSpawnFailed, facts(RestartPolicy::kNo, true)).next == S::kFatal);
  CHECK(transition(S::kRunning, I::kSpawnFailed).action == A::kRejected);
}

// The whole table, every state × every input, with the restart policy saying
// "restart" (on-failure, a failed exit, restarts left). A change to any cell
// shows here as the one row that differs.
TEST_CASE("the state table decides every state × input, with the actions to take", "[unit]") {
  struct Row {
    S state;
    I input;
    S next;
    A action;
    A then;
  };
  const A R = A::kRejected, N = A::kNone;
  const std::vector<Row> rows = {
      {S::kStarting, I::kStart, S::kStarting, R, N},
      {S::kStarting, I::kExecOk, S::kRunning, A::kMarkReady, N},  // no ready check: ready once exec'd
      {S::kStarting, I::kExecFailed, S::kFatal, N, N},
      {S::kStarting, I::kExit, S::kBackoff, A::kScheduleRestart, N},
      {S::kStarting, I::kStop, S::kStopping, A::kSendStopSignal, N},
      {S::kStarting, I::kStopTimeout, S::kStarting, R, N},
      {S::kStarting, I::kBackoffElapsed, S::kStarting, R, N},
      {S::kStarting, I::kSpawnFailed, S::kBackoff, A::kScheduleRestart, N},
      {S::kStarting, I::kStartRefused, S::kFatal, N, N},
      {S::kRunning, I::kStart, S::kRunning, R, N},
      {S::kRunning, I::kExecOk, S::kRunning, R, N},
      {S::kRunning, I::kExecFailed, S::kRunning, R, N},
      {S::kRunning, I::kExit, S::kBackoff, A::kScheduleRestart, N},
      {S::kRunning, I::kStop, S::kStopping, A::kSendStopSignal, N},
      {S::kRunning, I::kStopTimeout, S::kRunning, R, N},
      {S::kRunning, I::kBackoffElapsed, S::kRunning, R, N},
      {S::kRunning, I::kSpawnFailed, S::kRunning, R, N},
      {S::kRunning, I::kStartRefused, S::kRunning, R, N},
      {S::kStopping, I::kStart, S::kStopping, R, N},
      {S::kStopping, I::kExecOk, S::kStopping, R, N},
      {S::kStopping, I::kExecFailed, S::kStopping, R, N},
      {S::kStopping, I::kExit, S::kStopped, N, A::kFinishStop},
      {S::kStopping, I::kStop, S::kStopping, N, N},
      {S::kStopping, I::kStopTimeout, S::kStopping, A::kKill, N},
      {S::kStopping, I::kBackoffElapsed, S::kStopping, R, N},
      {S::kStopping, I::kSpawnFailed, S::kStopping, R, N},
      {S::kStopping, I::kStartRefused, S::kStopping, R, N},
      {S::kBackoff, I::kStart, S::kStarting, A::kSpawn, N},
      {S::kBackoff, I::kExecOk, S::kBackoff, R, N},
      {S::kBackoff, I::kExecFailed, S::kBackoff, R, N},
      {S::kBackoff, I::kExit, S::kBackoff, R, N},
      {S::kBackoff, I::kStop, S::kStopped, A::kCancelRestart, A::kFinishStop},
      {S::kBackoff, I::kStopTimeout, S::kBackoff, R, N},
      {S::kBackoff, I::kBackoffElapsed, S::kStarting, A::kSpawn, N},
      {S::kBackoff, I::kSpawnFailed, S::kBackoff, R, N},
      {S::kBackoff, I::kStartRefused, S::kBackoff, R, N},
  };
  for (S done : {S::kStopped, S::kExited, S::kFatal}) {
    for (I in : {I::kExecOk, I::kExecFailed, I::kExit, I::kStopTimeout, I::kBackoffElapsed,
                 I::kSpawnFailed, I::kStartRefused}) {
      INFO(worker_state_name(done));
      CHECK(transition(done, in, facts(RestartPolicy::kOnFailure, true)).action == R);
    }
    auto start = transition(done, I::kStart);
    CHECK(start.next == S::kStarting);
    CHECK(start.action == A::kSpawn);
    CHECK(start.publish);
    auto stop = transition(done, I::kStop);
    CHECK(stop.next == done);
    CHECK(stop.action == N);
    CHECK_FALSE(stop.publish);
  }
  for (const Row& r : rows) {
    INFO(worker_state_name(r.state) << " × input " << static_cast<int>(r.input));
    const Transition t = transition(r.state, r.input, facts(RestartPolicy::kOnFailure, true, 0, 3));
    CHECK(t.next == r.next);
    CHECK(t.action == r.action);
    CHECK(t.then == r.then);
    // A state event goes out exactly when the state changed.
    CHECK(t.publish == (r.action != R && r.next != r.state));
  }
}

TEST_CASE("an exit's cause: what the status says, unless a stop began, SIGKILL after the timeout is its own", "[unit]") {
  const WaitStatus exited0 = decode_wait_status(0), by_term = decode_wait_status(SIGTERM),
                   by_kill = decode_wait_status(SIGKILL), stopped = decode_wait_status(0x137f),
                   continued = decode_wait_status(0xffff);
  const StopFacts none{};
  CHECK(exit_cause(S::kRunning, exited0, none) == ExitCause::kExited);
  CHECK(exit_cause(S::kRunning, by_kill, none) == ExitCause::kSignaled);
  CHECK(exit_cause(S::kRunning, stopped, none) == ExitCause::kStopped);
  CHECK(exit_cause(S::kRunning, continued, none) == ExitCause::kContinued);
  const StopFacts asked{ExitCause::kStopRequested, false};
  CHECK(exit_cause(S::kStopping, by_term, asked) == ExitCause::kStopRequested);
  CHECK(exit_cause(S::kStopping, exited0, asked) == ExitCause::kStopRequested);
  // Someone else's SIGKILL before our timeout is still the stop's doing only if we sent one.
  CHECK(exit_cause(S::kStopping, by_kill, asked) == ExitCause::kStopRequested);
  const StopFacts killed{ExitCause::kStopRequested, true};
  CHECK(exit_cause(S::kStopping, by_kill, killed) == ExitCause::kStopTimeoutKilled);
  CHECK(exit_cause(S::kStopping, exited0, killed) == ExitCause::kStopRequested);
  const StopFacts shutdown{ExitCause::kShutdown, false};
  CHECK(exit_cause(S::kStopping, by_term, shutdown) == ExitCause::kShutdown);
  // A leftover of a stopped worker's tree carries the stop's cause too.
  CHECK(exit_cause(S::kStopped, by_term, shutdown) == ExitCause::kShutdown);
  // A stop/continue while stopping is only that.
  CHECK(exit_cause(S::kStopping, stopped, asked) == ExitCause::kStopped);
  for (ExitCause c : {ExitCause::kExited, ExitCause::kStopTimeoutKilled, ExitCause::kOomKill, ExitCause::kStartTimeout})
    CHECK(parse_exit_cause(exit_cause_name(c)) == c);
  CHECK(describe_cause(ExitCause::kStopTimeoutKilled, by_kill) == "killed by SIGKILL after its stop timeout");
  CHECK(describe_cause(ExitCause::kStopRequested, by_term) == "stopped by request (killed by SIGTERM)");
}

TEST_CASE("readiness, health and order as inputs of the table", "[unit]") {
  ExitFacts awaits;
  awaits.awaits_ready = true;
  ExitFacts unmet;
  unmet.dependencies_met = false;
  ExitFacts failed_stop = facts(RestartPolicy::kOnFailure, false, 0, 3);
  failed_stop.stopped_as_failed = true;
  ExitFacts failed_stop_no = facts(RestartPolicy::kNo, false, 0, 3);
  failed_stop_no.stopped_as_failed = true;
  struct Row {
    S state;
    I input;
    ExitFacts f;
    S next;
    A action;
    A then;
    std::optional<ExitCause> cause;
  };
  const Row rows[] = {
      // A ready check keeps it starting; without one it is ready once exec'd.
      {S::kStarting, I::kExecOk, awaits, S::kStarting, A::kAwaitReady, A::kNone, {}},
      {S::kStarting, I::kExecOk, {}, S::kRunning, A::kMarkReady, A::kNone, {}},
      {S::kStarting, I::kReady, {}, S::kRunning, A::kMarkReady, A::kNone, {}},
      {S::kRunning, I::kReady, {}, S::kRunning, A::kMarkReady, A::kNone, {}},  // after RELOADING=1
      {S::kStopped, I::kReady, {}, S::kStopped, A::kRejected, A::kNone, {}},
      // Failures the daemon finds: a graceful stop with the cause.
      {S::kStarting, I::kStartTimeout, {}, S::kStopping, A::kSendStopSignal, A::kNone, ExitCause::kStartTimeout},
      {S::kRunning, I::kStartTimeout, {}, S::kRunning, A::kRejected, A::kNone, {}},
      {S::kRunning, I::kHealthFailed, {}, S::kStopping, A::kSendStopSignal, A::kNone, ExitCause::kHealthCheck},
      {S::kRunning, I::kWatchdogTimeout, {}, S::kStopping, A::kSendStopSignal, A::kNone, ExitCause::kWatchdog},
      {S::kStopping, I::kHealthFailed, {}, S::kStopping, A::kRejected, A::kNone, {}},
      // Its exit is a failure and the policy decides: on-failure restarts, no leaves it exited.
      {S::kStopping, I::kExit, failed_stop, S::kBackoff, A::kScheduleRestart, A::kFinishStop, {}},
      {S::kStopping, I::kExit, failed_stop_no, S::kExited, A::kNone, A::kFinishStop, {}},
      // Dependencies: unmet, a start waits; met, it spawns; a stop ends the wait.
      {S::kStopped, I::kStart, unmet, S::kWaiting, A::kNone, A::kNone, {}},
      {S::kExited, I::kStart, unmet, S::kWaiting, A::kNone, A::kNone, {}},
      {S::kBackoff, I::kStart, unmet, S::kWaiting, A::kNone, A::kNone, {}},
      {S::kWaiting, I::kDependenciesMet, {}, S::kStarting, A::kSpawn, A::kNone, {}},
      {S::kWaiting, I::kStart, unmet, S::kWaiting, A::kNone, A::kNone, {}},
      {S::kWaiting, I::kStop, {}, S::kStopped, A::kNone, A::kFinishStop, {}},
      {S::kWaiting, I::kExit, {}, S::kWaiting, A::kRejected, A::kNone, {}},
      {S::kRunning, I::kDependenciesMet, {}, S::kRunning, A::kRejected, A::kNone, {}},
  };
  for (const Row& r : rows) {
    INFO("state " << worker_state_name(r.state) << ", input " << static_cast<int>(r.input));
    const Transition t = transition(r.state, r.input, r.f);
    CHECK(t.next == r.next);
    CHECK(t.action == r.action);
    CHECK(t.then == r.then);
    CHECK(t.stop_cause == r.cause);
    CHECK(t.publish == (t.action != A::kRejected && r.next != r.state));
  }
  CHECK(worker_state_name(S::kWaiting) == "waiting");
  CHECK(stopped_as_failed(StopFacts{ExitCause::kWatchdog, false}));
  CHECK_FALSE(stopped_as_failed(StopFacts{ExitCause::kStopRequested, false}));
}
