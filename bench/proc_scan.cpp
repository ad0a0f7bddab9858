// bench-proc-scan: the CPU cost of one full /proc sample (scan + threads + CPU
// deltas + tree build + JSON render), issue 4's figures:
//   1,000 processes x 10 threads  <= 50 ms CPU;  10,000 processes <= 500 ms CPU;
//   a whole-machine scan against `ps -eLf` and `top -b -n1`, same processes, same run.
// It forks the processes itself (children of this program, each starting its
// extra threads and then pausing), measures, and kills and reaps them all.
//
// Usage: bench-proc-scan [--procs N] [--threads T] [--big N] [--reps R] [--no-big]
//                        [--no-tools]
//        bench-proc-scan --scan-once [--no-threads]   (one whole-machine sample; the
//        bench runs itself this way to compare with ps and top as fresh processes)
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cpu_tracker.h"
#include "proc_reader.h"
#include "process_tree.h"

using namespace forkwatch;

namespace {

double now_ms(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}
double cpu_ms() { return now_ms(CLOCK_PROCESS_CPUTIME_ID); }
double wall_ms() { return now_ms(CLOCK_MONOTONIC); }

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// ---- the processes under test

void* idle_thread(void* arg) {
  char name[16];
  snprintf(name, sizeof name, "scan-w%ld", reinterpret_cast<long>(arg));
  pthread_setname_np(pthread_self(), name);
  for (;;) pause();
  return nullptr;
}

// Forks n children; each starts threads-1 extra threads, reports ready, pauses.
// The parent is single-threaded, so the children may call pthread_create.
std::vector<pid_t> spawn(int n, int threads) {
  int ready[2];
  if (pipe2(ready, O_CLOEXEC) != 0) {
    perror("pipe2");
    exit(1);
  }
  const pid_t parent = getpid();
  std::vector<pid_t> pids;
  pids.reserve(n);
  for (int i = 0; i < n; ++i) {
    pid_t pid = fork();
    if (pid < 0) {
      perror("fork");
      break;
    }
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the bench
      if (getppid() != parent) _exit(0);
      close(ready[0]);
      pthread_attr_t attr;
      pthread_attr_init(&attr);
      pthread_attr_setstacksize(&attr, 64 * 1024);
      for (long t = 1; t < threads; ++t) {
        pthread_t th;
        if (pthread_create(&th, &attr, idle_thread, reinterpret_cast<void*>(t)) != 0) _exit(1);
      }
      char c = 'r';
      if (write(ready[1], &c, 1) != 1) _exit(1);
      for (;;) pause();
    }
    pids.push_back(pid);
  }
  close(ready[1]);
  // Wait (bounded) until every child has all its threads.
  size_t got = 0;
  const double deadline = wall_ms() + 120'000;
  char buf[4096];
  while (got < pids.size() && wall_ms() < deadline) {
    pollfd p{ready[0], POLLIN, 0};
    if (poll(&p, 1, 1000) <= 0) continue;
    ssize_t r = read(ready[0], buf, sizeof buf);
    if (r <= 0) break;
    got += static_cast<size_t>(r);
  }
  close(ready[0]);
  if (got < pids.size()) fprintf(stderr, "only %zu of %zu children became ready\n", got, pids.size());
  return pids;
}

void reap_all(std::vector<pid_t>& pids) {
  for (pid_t p : pids) kill(p, SIGKILL);
  for (pid_t p : pids)
    while (waitpid(p, nullptr, 0) < 0 && errno == EINTR) {
    }
  pids.clear();
}

// ---- one sample, timed by phase

struct Timing {
  double scan = 0, cpu = 0, tree = 0, json = 0, total = 0, wall = 0;
  size_t procs = 0, threads = 0, bytes = 0;
};

Timing sample(ProcReader& reader, CpuTracker& tracker, const ScanOptions& opt, TreeScope scope,
              pid_t root) {
  Timing t;
  double w0 = wall_ms(), c0 = cpu_ms();
  auto s = reader.scan(opt);
  if (!s) {
    fprintf(stderr, "scan: %s\n", s.error().message().c_str());
    exit(1);
  }
  double c1 = cpu_ms();
  tracker.update(s->processes, s->monotonic_ns);
  double c2 = cpu_ms();
  t.procs = s->stats.processes;
  t.threads = s->stats.threads;
  ProcessTree tree(std::move(s->processes), s->monotonic_ns);
  double c3 = cpu_ms();
  std::string json = tree_json(tree, scope, root, {});
  double c4 = cpu_ms();
  t.scan = c1 - c0;
  t.cpu = c2 - c1;
  t.tree = c3 - c2;
  t.json = c4 - c3;
  t.total = c4 - c0;
  t.wall = wall_ms() - w0;
  t.bytes = json.size();
  return t;
}

void report(const char* label, int reps, ProcReader& reader, CpuTracker& tracker,
            const ScanOptions& opt, TreeScope scope, pid_t root) {
  std::vector<double> scan, cpu, tree, json, total, wall;
  Timing last;
  for (int i = 0; i < reps; ++i) {
    last = sample(reader, tracker, opt, scope, root);
    scan.push_back(last.scan);
    cpu.push_back(last.cpu);
    tree.push_back(last.tree);
    json.push_back(last.json);
    total.push_back(last.total);
    wall.push_back(last.wall);
  }
  printf("%-64s %6zu procs %6zu threads | CPU ms median %7.2f (scan %.2f, cpu%% %.2f, tree %.2f, "
         "json %.2f) | wall %7.2f | min %.2f max %.2f | json %zu KiB\n",
         label, last.procs, last.threads, median(total), median(scan), median(cpu), median(tree),
         median(json), median(wall), *std::min_element(total.begin(), total.end()),
         *std::max_element(total.begin(), total.end()), last.bytes / 1024);
}

size_t g_open_files = 0;  // the reader's budget of kept stat files; set in main

// Cold and steady samples of one configuration.
void measure(const char* what, int reps, const ScanOptions& opt, TreeScope scope, pid_t root) {
  char label[128];
  // Cold: a fresh reader each time, so every file is opened and every cmdline
  // read (as ps does).
  std::vector<double> cold;
  Timing t;
  for (int i = 0; i < std::max(3, reps / 2); ++i) {
    ProcReader fresh("/proc", g_open_files);
    CpuTracker tracker(sysconf(_SC_CLK_TCK));
    t = sample(fresh, tracker, opt, scope, root);
    cold.push_back(t.total);
  }
  snprintf(label, sizeof label, "%s: first sample (all files opened)", what);
  printf("%-64s %6zu procs %6zu threads | CPU ms median %7.2f\n", label, t.procs, t.threads,
         median(cold));

  struct Mode {
    const char* name;
    size_t budget;
    bool always;
  } modes[] = {
      {"steady, idle threads reused (the sampler)", g_open_files, false},
      {"steady, every thread re-read via kept files", g_open_files, true},
      {"steady, every thread re-read, open+read+close", 0, true},
  };
  for (const Mode& m : modes) {
    ProcReader reader("/proc", m.budget);
    reader.set_always_read_threads(m.always);
    CpuTracker tracker(sysconf(_SC_CLK_TCK));
    sample(reader, tracker, opt, scope, root);  // open files, read cmdlines, set CPU baselines
    snprintf(label, sizeof label, "%s: %s", what, m.name);
    report(label, reps, reader, tracker, opt, scope, root);
    printf("%-64s thread files read in the last sample: %zu, files kept open: %zu\n", "",
           reader.threads_read(), reader.open_files());
  }
}

// ---- per-call costs

void syscall_costs(const std::vector<pid_t>& pids) {
  if (pids.empty()) return;
  int proc = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  char path[64], buf[4096];
  auto per_call_us = [&](auto&& op) {
    double c0 = cpu_ms();
    size_t n = 0;
    for (pid_t p : pids) n += op(p);
    return (cpu_ms() - c0) * 1000.0 / static_cast<double>(std::max<size_t>(n, 1));
  };
  double stat_us = per_call_us([&](pid_t p) {
    snprintf(path, sizeof path, "%d/stat", p);
    int fd = openat(proc, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t r = read(fd, buf, sizeof buf);
    close(fd);
    return r > 0 ? 1 : 0;
  });
  double open_close_us = per_call_us([&](pid_t p) {
    snprintf(path, sizeof path, "%d/stat", p);
    int fd = openat(proc, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    close(fd);
    return 1;
  });
  std::vector<int> fds;
  for (pid_t p : pids) {
    snprintf(path, sizeof path, "%d/stat", p);
    fds.push_back(openat(proc, path, O_RDONLY | O_CLOEXEC));
  }
  double c0 = cpu_ms();
  for (int fd : fds) (void)!pread(fd, buf, sizeof buf, 0);
  double pread_us = (cpu_ms() - c0) * 1000.0 / static_cast<double>(fds.size());
  for (int fd : fds) close(fd);
  double task_stat_us = per_call_us([&](pid_t p) {
    snprintf(path, sizeof path, "%d/task/%d/stat", p, p);
    int fd = openat(proc, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t r = read(fd, buf, sizeof buf);
    close(fd);
    return r > 0 ? 1 : 0;
  });
  double listdir_us = per_call_us([&](pid_t p) {
    snprintf(path, sizeof path, "%d/task", p);
    int fd = openat(proc, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return 0;
    while (getdents64(fd, buf, sizeof buf) > 0) {
    }
    close(fd);
    return 1;
  });
  double cmdline_us = per_call_us([&](pid_t p) {
    snprintf(path, sizeof path, "%d/cmdline", p);
    int fd = openat(proc, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    while (read(fd, buf, sizeof buf) > 0) {
    }
    close(fd);
    return 1;
  });
  double status_us = per_call_us([&](pid_t p) {
    snprintf(path, sizeof path, "%d/status", p);
    int fd = openat(proc, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t r = read(fd, buf, sizeof buf);
    close(fd);
    return r > 0 ? 1 : 0;
  });
  close(proc);
  printf("per-call CPU, us: open+read+close PID/stat %.2f (open+close alone %.2f; pread on an "
         "open fd %.2f) | task/TID/stat %.2f | list task/ %.2f | cmdline %.2f | status %.2f\n",
         stat_us, open_close_us, pread_us, task_stat_us, listdir_us, cmdline_us, status_us);
}

// ---- other tools, run as child processes

struct ToolRun {
  double wall = 0, cpu = 0;
};

ToolRun run_tool(const std::vector<const char*>& argv) {
  double w0 = wall_ms();
  pid_t pid = fork();
  if (pid == 0) {
    int null = open("/dev/null", O_WRONLY);
    dup2(null, 1);
    dup2(null, 2);
    execvp(argv[0], const_cast<char* const*>(argv.data()));
    _exit(127);
  }
  int status = 0;
  rusage ru{};
  while (wait4(pid, &status, 0, &ru) < 0 && errno == EINTR) {
  }
  ToolRun r;
  r.wall = wall_ms() - w0;
  r.cpu = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
          (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    fprintf(stderr, "%s: status %d\n", argv[0], status);
  return r;
}

ToolRun median_tool(const std::vector<const char*>& argv, int reps) {
  std::vector<double> wall, cpu;
  for (int i = 0; i < reps; ++i) {
    ToolRun r = run_tool(argv);
    wall.push_back(r.wall);
    cpu.push_back(r.cpu);
  }
  return {median(wall), median(cpu)};
}

void compare_tools(int reps) {
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return;
  exe[n] = 0;
  ToolRun ours = median_tool({exe, "--scan-once", nullptr}, reps);
  ToolRun ours_p = median_tool({exe, "--scan-once", "--no-threads", nullptr}, reps);
  ToolRun ps = median_tool({"ps", "-eLf", nullptr}, reps);
  ToolRun top = median_tool({"top", "-b", "-n1", nullptr}, reps);
  ToolRun toph = median_tool({"top", "-H", "-b", "-n1", nullptr}, reps);
  printf("whole machine, each a fresh process (median of %d), CPU ms / wall ms:\n", reps);
  printf("  bench-proc-scan --scan-once (threads)   %8.1f / %8.1f\n", ours.cpu, ours.wall);
  printf("  bench-proc-scan --scan-once --no-threads %7.1f / %8.1f\n", ours_p.cpu, ours_p.wall);
  auto line = [&](const char* name, const ToolRun& r, const ToolRun& base) {
    printf("  %-39s %8.1f / %8.1f   vs ours: CPU %.1fx, wall %.1fx\n", name, r.cpu, r.wall,
           r.cpu / base.cpu, r.wall / base.wall);
  };
  line("ps -eLf (threads) vs ours (threads)", ps, ours);
  line("top -H -b -n1 (threads) vs ours (threads)", toph, ours);
  line("top -b -n1 vs ours (threads)", top, ours);
  line("top -b -n1 vs ours (no threads)", top, ours_p);
}

int scan_once(bool threads) {
  ProcReader reader;
  CpuTracker tracker(sysconf(_SC_CLK_TCK));
  ScanOptions opt;
  opt.threads = threads;
  Timing t = sample(reader, tracker, opt, TreeScope::kAll, 0);
  return t.procs > 0 ? 0 : 1;
}

void run_config(const char* name, int procs, int threads, int reps, bool tools) {
  printf("\n== %s: %d processes x %d threads (children of pid %d) ==\n", name, procs, threads,
         getpid());
  double w0 = wall_ms();
  std::vector<pid_t> pids = spawn(procs, threads);
  printf("spawned %zu in %.0f ms\n", pids.size(), wall_ms() - w0);

  ScanOptions subtree;
  subtree.subtree_root = getpid();
  measure("supervised", reps, subtree, TreeScope::kSupervised, getpid());
  measure("whole machine", reps, {}, TreeScope::kAll, 0);
  syscall_costs(pids);
  if (tools) compare_tools(std::max(3, reps / 2));

  w0 = wall_ms();
  reap_all(pids);
  printf("killed and reaped in %.0f ms\n", wall_ms() - w0);
}

}  // namespace

int main(int argc, char** argv) {
  int procs = 1000, threads = 10, big = 10000, reps = 11;
  bool do_big = true, tools = true;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? atoi(argv[++i]) : 0; };
    if (a == "--scan-once") {
      bool no_threads = i + 1 < argc && std::string(argv[i + 1]) == "--no-threads";
      return scan_once(!no_threads);
    }
    if (a == "--procs") procs = next();
    else if (a == "--threads") threads = next();
    else if (a == "--big") big = next();
    else if (a == "--reps") reps = std::max(1, next());
    else if (a == "--no-big") do_big = false;
    else if (a == "--no-tools") tools = false;
    else {
      fprintf(stderr, "usage: %s [--procs N] [--threads T] [--big N] [--reps R] [--no-big] "
              "[--no-tools] | --scan-once\n", argv[0]);
      return 2;
    }
  }
  alarm(1800);  // a hung run ends; the children follow through PDEATHSIG
  // Keep every stat file open, as a daemon that raised its soft limit would.
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  g_open_files = rl.rlim_cur > 1024 ? static_cast<size_t>(rl.rlim_cur) - 512 : 0;
  printf("bench-proc-scan: %ld CPUs, CLK_TCK %ld, page %ld, kept-file budget %zu\n",
         sysconf(_SC_NPROCESSORS_ONLN), sysconf(_SC_CLK_TCK), sysconf(_SC_PAGESIZE), g_open_files);
  run_config("target 1", procs, threads, reps, tools);
  if (do_big) run_config("target 2", big, 1, reps, tools);
  return 0;
}
