// bench-spawn-floor: what starting and killing processes costs this machine,
// with no supervisor at all. A C++ loop posix_spawns N sleeping probes back
// to back, SIGKILLs them and reaps them, and prints the wall time of each
// step and the CPU the children used (exec, start-up and exit are the
// kernel's work in the child's own context). A supervisor cannot start or
// reap processes faster than this.
//   bench-spawn-floor [--probe PATH] [-n N]
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

extern char** environ;

namespace {

double now_ms() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

double cpu_ms(int who) {
  rusage ru{};
  getrusage(who, &ru);
  auto ms = [](const timeval& tv) { return static_cast<double>(tv.tv_sec) * 1e3 + static_cast<double>(tv.tv_usec) / 1e3; };
  return ms(ru.ru_utime) + ms(ru.ru_stime);
}

}  // namespace

int main(int argc, char** argv) {
  std::string probe = std::string(FORKWATCH_BIN_DIR) + "/bench-restart-probe";
  int n = 200;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--probe") && i + 1 < argc) probe = argv[++i];
    else if (!std::strcmp(argv[i], "-n") && i + 1 < argc) n = std::atoi(argv[++i]);
    else {
      std::fprintf(stderr, "usage: bench-spawn-floor [--probe PATH] [-n N]\n");
      return 2;
    }
  }
  if (n <= 0) return 2;
  char* args[] = {probe.data(), const_cast<char*>("--out"), const_cast<char*>("/dev/null"),
                  const_cast<char*>("--sleep"), nullptr};
  std::vector<pid_t> pids;
  pids.reserve(static_cast<size_t>(n));

  const double t0 = now_ms();
  for (int i = 0; i < n; ++i) {
    pid_t pid = -1;
    if (int err = posix_spawn(&pid, probe.c_str(), nullptr, nullptr, args, environ); err != 0) {
      std::fprintf(stderr, "posix_spawn(%s): %s\n", probe.c_str(), std::strerror(err));
      for (pid_t p : pids) kill(p, SIGKILL);
      for (pid_t p : pids) waitpid(p, nullptr, 0);
      return 1;
    }
    pids.push_back(pid);
  }
  const double t_spawned = now_ms();
  const double parent_cpu = cpu_ms(RUSAGE_SELF);

  const double t1 = now_ms();
  for (pid_t p : pids) kill(p, SIGKILL);
  for (pid_t p : pids) waitpid(p, nullptr, 0);
  const double t_reaped = now_ms();
  const double child_cpu = cpu_ms(RUSAGE_CHILDREN);

  std::printf("%d posix_spawn calls returned in %.1f ms (%.0f/s); parent CPU %.1f ms\n", n, t_spawned - t0,
              n / ((t_spawned - t0) / 1e3), parent_cpu);
  std::printf("%d SIGKILLed and reaped in %.1f ms\n", n, t_reaped - t1);
  std::printf("children's CPU, exec to exit: %.1f ms in all, %.2f ms each\n", child_cpu, child_cpu / n);
  return 0;
}
