// Issue 18's figure: descriptor counts of N supervised processes x F fds per
// sample (FdCounts::count, one stat of PID/fd each; and the socket breakdown
// it refreshes every 5 s), beside `lsof -p` and `ss -p` on the same
// processes in the same run. Forks N children (of this process, which plays
// the daemon) that each hold F descriptors, measures, kills them. Bounded:
// a fixed number of rounds. Usage: bench-fd-counts [N] [F] [ROUNDS]
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "fd_counts.h"
#include "proc_reader.h"

using namespace forkwatch;

namespace {

int64_t cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec * 1'000'000'000LL + ts.tv_nsec;
}
int64_t wall_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1'000'000'000LL + ts.tv_nsec;
}

// CPU (user + sys, children included) and wall time of a shell command, in ms.
void time_command(const char* label, const std::string& cmd) {
  struct rusage before {}, after {};
  getrusage(RUSAGE_CHILDREN, &before);
  int64_t w0 = wall_ns();
  int rc = std::system(cmd.c_str());
  int64_t w1 = wall_ns();
  getrusage(RUSAGE_CHILDREN, &after);
  auto us = [](const timeval& t) { return t.tv_sec * 1'000'000LL + t.tv_usec; };
  double cpu = (us(after.ru_utime) - us(before.ru_utime) + us(after.ru_stime) - us(before.ru_stime)) / 1000.0;
  std::printf("%-28s cpu %8.1f ms  wall %8.1f ms  (exit %d)\n", label, cpu, (w1 - w0) / 1e6, rc);
}

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 1000;
  const int f = argc > 2 ? std::atoi(argv[2]) : 20;
  const int rounds = argc > 3 ? std::atoi(argv[3]) : 20;
  std::vector<pid_t> kids;
  int ready[2];
  if (pipe2(ready, O_CLOEXEC) != 0) return 1;
  for (int i = 0; i < n; ++i) {
    pid_t p = fork();
    if (p == 0) {
      close(ready[0]);
      // 0, 1, 2 and the pipe's write end are four; open the rest on /dev/null.
      for (int k = 4; k < f; ++k) open("/dev/null", O_RDONLY);
      char c = 1;
      if (write(ready[1], &c, 1) != 1) _exit(1);
      pause();
      _exit(0);
    }
    kids.push_back(p);
  }
  close(ready[1]);
  for (int i = 0; i < n; ++i) {
    char c;
    if (read(ready[0], &c, 1) != 1) break;
  }

  ProcReader reader;
  FdCounts counts;
  ScanOptions opts;
  opts.subtree_root = getpid();
  std::vector<double> count_ms, worker_ms;
  int64_t total = 0;
  for (int r = 0; r < rounds; ++r) {
    auto s = reader.scan(opts);
    if (!s) return 1;
    int64_t c0 = cpu_ns();
    counts.count(s->processes, getpid());
    int64_t c1 = cpu_ns();
    count_ms.push_back((c1 - c0) / 1e6);
    total = 0;
    for (const auto& p : s->processes) total += std::max<int64_t>(0, p.fd_count);
    ProcessTree tree(std::move(s->processes));
    // One "worker" holding all of them: its first round refreshes the
    // socket breakdown (a readlink per descriptor), the rest reuse it.
    int64_t c2 = cpu_ns();
    counts.worker(tree, kids.front(), 1, wall_ns() + r * FdCounts::kSocketRefreshNs);
    worker_ms.push_back((cpu_ns() - c2) / 1e6);
  }
  std::sort(count_ms.begin(), count_ms.end());
  std::sort(worker_ms.begin(), worker_ms.end());
  std::printf("%d processes x %d fds: counted %lld descriptors per sample\n", n, f, static_cast<long long>(total));
  std::printf("%-28s cpu median %6.2f ms  max %6.2f ms  (%d rounds)\n", "FdCounts::count", count_ms[rounds / 2],
              count_ms.back(), rounds);

  // The socket breakdown of every process (readlink of each fd + /proc/net):
  // what a 5 s refresh costs for all of them at once.
  std::vector<pid_t> all = kids;
  FdReader fr;
  int64_t c0 = cpu_ns();
  size_t links = 0;
  for (pid_t p : all)
    if (auto l = fr.list(p, false)) links += l->size();
  std::printf("%-28s cpu %8.2f ms  (%zu links)\n", "readlink of every fd", (cpu_ns() - c0) / 1e6, links);

  std::string pids;
  for (pid_t p : kids) pids += (pids.empty() ? "" : ",") + std::to_string(p);
  time_command("lsof -p (same pids)", "lsof -n -P -p " + pids + " >/dev/null 2>&1");
  time_command("ss -p (whole machine)", "ss -a -p -n >/dev/null 2>&1");

  for (pid_t p : kids) kill(p, SIGKILL);
  for (pid_t p : kids) waitpid(p, nullptr, 0);
  return 0;
}
