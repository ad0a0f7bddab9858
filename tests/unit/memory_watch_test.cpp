#include <catch2/catch.hpp>

#include "memory_watch.h"
#include "worker_state.h"

using namespace forkwatch;

namespace {
ProcessInfo proc(pid_t pid, pid_t ppid, int64_t rss) {
  ProcessInfo p;
  p.pid = pid;
  p.ppid = ppid;
  p.starttime = static_cast<uint64_t>(pid);  // a parent never starts after its child
  p.rss_bytes = rss;
  return p;
}
}  // namespace

TEST_CASE("memory_restart: two samples in a row over the limit restart, a single spike does not", "[unit]") {
  constexpr int64_t kLimit = 200 << 20;
  struct Row {
    int before;
    int64_t rss;
    int64_t limit;
    int after;
    bool restart;
  };
  const Row rows[] = {
      {0, kLimit + 1, kLimit, 1, false},  // the first sample over: a spike, so far
      {1, kLimit + 1, kLimit, 2, true},   // the second in a row: restart
      {1, kLimit, kLimit, 0, false},      // at the limit is not over: the count starts again
      {1, 10 << 20, kLimit, 0, false},    // back under after a spike
      {0, 0, kLimit, 0, false},           // no process of the worker in the sample
      {0, kLimit + 1, -1, 0, false},      // no limit
      {0, kLimit + 1, 0, 0, false},
  };
  for (const Row& r : rows) {
    INFO("before " << r.before << ", rss " << r.rss << ", limit " << r.limit);
    const MemoryVerdict v = judge_memory(r.before, r.rss, r.limit);
    CHECK(v.samples_over == r.after);
    CHECK(v.restart == r.restart);
  }
  // A sequence of samples: over, under, over, under… never restarts; over, over does.
  int n = 0;
  for (int64_t rss : {kLimit * 2, int64_t{1}, kLimit * 2, int64_t{1}, kLimit * 2}) {
    const MemoryVerdict v = judge_memory(n, rss, kLimit);
    CHECK_FALSE(v.restart);
    n = v.samples_over;
  }
  CHECK(judge_memory(n, kLimit * 2, kLimit).restart);
  CHECK(kMemorySamplesOver == 2);
}

TEST_CASE("memory_restart: a worker's tree RSS sums its tagged processes and their descendants, each once", "[unit]") {
  // Worker 1: main 10 with child 11 and grandchild 12; 13 left its tree
  // (setsid, reparented to the daemon 1) but its cgroup holds it, so it is
  // tagged; 11 is tagged too (a cgroup member below the main process).
  // Worker 2: main 20 only. 30 belongs to nobody.
  ProcessTree tree({proc(1, 0, 1), proc(10, 1, 100), proc(11, 10, 20), proc(12, 11, 3), proc(13, 1, 4000),
                    proc(20, 1, 50), proc(30, 1, 99999)});
  WorkerTags tags{{10, {1, "a"}}, {11, {1, "a"}}, {13, {1, "a"}}, {20, {2, "b"}}, {40, {3, "gone"}}};
  const auto rss = tree_rss_by_worker(tree, tags);
  CHECK(rss.at(1) == 100 + 20 + 3 + 4000);
  CHECK(rss.at(2) == 50);
  CHECK_FALSE(rss.contains(3));  // its pid is not in the sample
  CHECK(mib_text(212LL << 20) == "212.0 MiB");
}

TEST_CASE("memory_restart as an input of the state table: a graceful stop, then a restart that is no failure", "[unit]") {
  using S = WorkerState;
  for (S s : {S::kRunning, S::kStarting}) {
    INFO(worker_state_name(s));
    const Transition t = transition(s, WorkerInput::kMemoryOver);
    CHECK(t.next == S::kStopping);
    CHECK(t.action == WorkerAction::kSendStopSignal);
    CHECK(t.stop_cause == ExitCause::kMemoryRestart);
    CHECK(t.restart_after_stop);
    CHECK(t.publish);
  }
  for (S s : {S::kStopping, S::kStopped, S::kExited, S::kBackoff, S::kFatal, S::kWaiting}) {
    INFO(worker_state_name(s));
    CHECK(transition(s, WorkerInput::kMemoryOver).action == WorkerAction::kRejected);
  }
  // Its exit ends the stop without the restart policy or max_restarts: the
  // supervisor's restart_after_stop starts it again (kFinishStop).
  ExitFacts f{RestartPolicy::kNo, true, 3, 3};
  f.stopped_as_failed = stopped_as_failed(StopFacts{ExitCause::kMemoryRestart, false});
  CHECK_FALSE(f.stopped_as_failed);
  const Transition t = transition(S::kStopping, WorkerInput::kExit, f);
  CHECK(t.next == S::kStopped);
  CHECK(t.then == WorkerAction::kFinishStop);
  CHECK(exit_cause(S::kStopping, decode_wait_status(SIGTERM), StopFacts{ExitCause::kMemoryRestart, false}) ==
        ExitCause::kMemoryRestart);
  // Health failures are not restarts of that kind: the policy decides them.
  CHECK_FALSE(transition(S::kRunning, WorkerInput::kHealthFailed).restart_after_stop);
}
