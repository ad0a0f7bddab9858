#include <catch2/catch.hpp>
#include <vector>

#include "cpu_tracker.h"

using namespace forkwatch;

namespace {

constexpr int64_t kSecond = 1'000'000'000;

ProcessInfo proc(pid_t pid, uint64_t starttime, uint64_t utime, uint64_t stime,
                 std::vector<ThreadInfo> threads = {}) {
  ProcessInfo p;
  p.pid = pid;
  p.starttime = starttime;
  p.utime = utime;
  p.stime = stime;
  p.threads = std::move(threads);
  return p;
}

ThreadInfo thread(pid_t tid, uint64_t starttime, uint64_t utime, uint64_t stime) {
  return ThreadInfo{tid, "t", 'R', utime, stime, starttime, 0};
}

}  // namespace

TEST_CASE("cpu percent is tick delta over elapsed time, per process and per thread", "[unit]") {
  CpuTracker tracker(100);
  std::vector<ProcessInfo> first{
      proc(10, 500, 100, 50, {thread(10, 500, 60, 30), thread(11, 501, 40, 20)})};
  tracker.update(first, 5 * kSecond);
  CHECK(first[0].cpu_percent == 0.0);  // no baseline yet
  CHECK(first[0].threads[0].cpu_percent == 0.0);

  // Two seconds later: thread 11 ran 150 ticks (1.5 s of 2 s), thread 10 ran 10.
  std::vector<ProcessInfo> second{
      proc(10, 500, 250, 60, {thread(10, 500, 65, 35), thread(11, 501, 140, 70)})};
  tracker.update(second, 7 * kSecond);
  CHECK(second[0].cpu_percent == Approx(80.0));  // (250+60-150) ticks / 100 / 2 s
  CHECK(second[0].threads[0].cpu_percent == Approx(5.0));
  CHECK(second[0].threads[1].cpu_percent == Approx(75.0));
}

TEST_CASE("a reused pid does not inherit the old process's ticks", "[unit]") {
  CpuTracker tracker(100);
  std::vector<ProcessInfo> a{proc(42, 1000, 5000, 0, {thread(42, 1000, 5000, 0)}),
                             proc(43, 1001, 0, 0, {thread(43, 1001, 0, 0), thread(44, 1002, 0, 0)})};
  tracker.update(a, 1 * kSecond);
  // Pid 42 is now a new process (later start) with few ticks of its own; tid 44
  // now belongs to a new thread too. Were they matched by id alone, the deltas
  // would be nonsense (negative, or huge the other way round).
  std::vector<ProcessInfo> b{proc(42, 2000, 30, 0, {thread(42, 2000, 30, 0)}),
                             proc(43, 1001, 0, 0, {thread(43, 1001, 0, 0), thread(44, 2001, 90, 0)})};
  tracker.update(b, 2 * kSecond);
  CHECK(b[0].cpu_percent == 0.0);
  CHECK(b[0].threads[0].cpu_percent == 0.0);
  CHECK(b[1].threads[1].cpu_percent == 0.0);

  // From here on the new process has a baseline of its own.
  std::vector<ProcessInfo> c{proc(42, 2000, 80, 0, {thread(42, 2000, 80, 0)})};
  tracker.update(c, 3 * kSecond);
  CHECK(c[0].cpu_percent == Approx(50.0));
  CHECK(c[0].threads[0].cpu_percent == Approx(50.0));
}

TEST_CASE("cpu tracking is robust to order, vanished entries, time going nowhere", "[unit]") {
  CpuTracker tracker(100);
  std::vector<ProcessInfo> a{proc(30, 3, 0, 0, {thread(32, 4, 0, 0), thread(30, 3, 0, 0)}),
                             proc(20, 2, 0, 0), proc(10, 1, 100, 0)};
  tracker.update(a, kSecond);
  std::vector<ProcessInfo> b{proc(10, 1, 200, 0),
                             proc(30, 3, 50, 0, {thread(30, 3, 10, 0), thread(32, 4, 40, 0)})};
  tracker.update(b, 2 * kSecond);
  CHECK(b[0].cpu_percent == Approx(100.0));
  CHECK(b[1].cpu_percent == Approx(50.0));
  CHECK(b[1].threads[0].cpu_percent == Approx(10.0));
  CHECK(b[1].threads[1].cpu_percent == Approx(40.0));

  // Same timestamp again: no division by zero, no figures.
  std::vector<ProcessInfo> c{proc(10, 1, 300, 0)};
  tracker.update(c, 2 * kSecond);
  CHECK(c[0].cpu_percent == 0.0);

  // Counters going backwards read as zero, not negative.
  std::vector<ProcessInfo> d{proc(10, 1, 100, 0)};
  tracker.update(d, 3 * kSecond);
  CHECK(d[0].cpu_percent == 0.0);

  tracker.reset();
  std::vector<ProcessInfo> e{proc(10, 1, 500, 0)};
  tracker.update(e, 4 * kSecond);
  CHECK(e[0].cpu_percent == 0.0);
}
