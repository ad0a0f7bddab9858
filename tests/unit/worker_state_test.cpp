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
