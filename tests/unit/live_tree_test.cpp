// The live tree between samples (live_tree.h): forks, execs and exits the
// proc connector reported, applied to a sample's process list.
#include <catch2/catch.hpp>

#include "live_tree.h"
#include "process_tree.h"

using namespace forkwatch;

namespace {

constexpr pid_t kDaemon = 100;

ProcessInfo proc(pid_t pid, pid_t ppid, std::string comm, uint64_t start) {
  ProcessInfo p;
  p.pid = pid;
  p.ppid = ppid;
  p.pgid = ppid == kDaemon ? pid : ppid;
  p.comm = std::move(comm);
  p.cmdline = {p.comm};
  p.state = 'S';
  p.starttime = start;
  p.num_threads = 1;
  return p;
}

ProcessChange change(ProcessChange::Op op, pid_t pid, pid_t ppid, std::string comm, uint64_t start) {
  ProcessChange c;
  c.op = op;
  c.pid = pid;
  c.ppid = ppid;
  c.comm = comm;
  c.argv = {comm, "60"};
  c.starttime = start;
  return c;
}

const ProcessInfo* find(const std::vector<ProcessInfo>& procs, pid_t pid) {
  for (const auto& p : procs)
    if (p.pid == pid) return &p;
  return nullptr;
}

}  // namespace

TEST_CASE("a fork and exec since the sample join the tree under their parent, an exit leaves it", "[unit]") {
  std::vector<ProcessInfo> sample{proc(kDaemon, 1, "forkwatchd", 10), proc(200, kDaemon, "sh", 20),
                                  proc(201, 200, "worker-child", 30), proc(202, 201, "grandchild", 31)};
  using Op = ProcessChange::Op;
  std::vector<ProcessChange> changes{change(Op::kFork, 300, 200, "sh", 50), change(Op::kExec, 300, 200, "sleep", 50),
                                     change(Op::kExit, 201, 200, "worker-child", 30)};
  auto live = apply_process_changes(sample, changes, kDaemon);
  const ProcessInfo* forked = find(live, 300);
  REQUIRE(forked);
  CHECK(forked->comm == "sleep");
  CHECK(forked->cmdline == std::vector<std::string>{"sleep", "60"});
  CHECK(forked->pgid == 200);  // its parent's
  CHECK(find(live, 201) == nullptr);
  // The orphan goes to the daemon, the child subreaper, and stays in the supervised tree.
  REQUIRE(find(live, 202));
  CHECK(find(live, 202)->ppid == kDaemon);
  ProcessTree tree(live);
  auto below = tree.descendants(kDaemon);
  CHECK(std::find(below.begin(), below.end(), 300) != below.end());
  CHECK(std::find(below.begin(), below.end(), 202) != below.end());
}

TEST_CASE("a late event for a reused pid leaves the newer process alone", "[unit]") {
  std::vector<ProcessInfo> sample{proc(kDaemon, 1, "forkwatchd", 10), proc(200, kDaemon, "new-one", 500)};
  using Op = ProcessChange::Op;
  // The old process 200 (started at tick 20) exec'd and exited; the sample already has the new 200.
  auto live = apply_process_changes(sample, std::vector{change(Op::kExec, 200, kDaemon, "old", 20),
                                                        change(Op::kExit, 200, kDaemon, "old", 20),
                                                        change(Op::kFork, 200, kDaemon, "dup", 500)},
                                    kDaemon);
  REQUIRE(find(live, 200));
  CHECK(find(live, 200)->comm == "new-one");
  CHECK(live.size() == 2);
}

TEST_CASE("a proc-connector stamp converts to the start time /proc/PID/stat gives", "[unit]") {
  // Booted 5 s before the monotonic clock's zero; 100 ticks a second.
  CHECK(starttime_ticks(2'000'000'000, -5'000'000'000, 100) == 700);
  CHECK(starttime_ticks(0, 1'000'000'000, 100) == 0);
}
