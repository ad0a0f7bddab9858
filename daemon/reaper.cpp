#include "reaper.h"

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "event.h"
#include "log.h"

namespace forkwatch {
namespace {

int64_t micros(const timeval& tv) { return int64_t{tv.tv_sec} * 1'000'000 + tv.tv_usec; }

Rusage to_rusage(const rusage& ru) {
  return Rusage{micros(ru.ru_utime), micros(ru.ru_stime), ru.ru_maxrss, ru.ru_minflt,
                ru.ru_majflt,        ru.ru_nvcsw,         ru.ru_nivcsw};
}

}  // namespace

size_t reap_all(const std::function<bool(pid_t)>& is_own_child,
                const std::function<void(const Reaped&)>& on_status,
                const std::function<int64_t(pid_t)>& owner_of) {
  constexpr int kWhich = WEXITED | WSTOPPED | WCONTINUED | WNOHANG;
  // Drain first, act after: acting (recording, restarting, forking) between
  // two waits would make the last of a burst of exits wait for every
  // restart before it. A child that exits while we act raises a new SIGCHLD.
  std::vector<Reaped> batch;
  for (;;) {
    // Peek first (WNOWAIT) to learn the pid while a zombie still has its group.
    siginfo_t info{};
    if (waitid(P_ALL, 0, &info, kWhich | WNOWAIT) != 0) {
      if (errno == EINTR) continue;
      if (errno != ECHILD) log::error("waitid(P_ALL): " + std::string(strerror(errno)));
      break;
    }
    if (info.si_pid == 0) break;  // children exist, none has news
    const pid_t pid = info.si_pid;
    Reaped r;
    r.pid = pid;
    if (!is_own_child(pid)) {
      r.pgid = getpgid(pid);
      if (owner_of) r.owner = owner_of(pid);
    }

    struct rusage ru{};
    int status = 0;
    pid_t got;
    do {
      got = wait4(pid, &status, WNOHANG | WUNTRACED | WCONTINUED, &ru);
    } while (got < 0 && errno == EINTR);
    if (got <= 0) continue;  // the status went away between peek and wait; look again
    r.raw = status;
    r.ts_ns = realtime_ns();
    // Stop and continue statuses carry no resource usage (the contract's zeros).
    if (WIFEXITED(status) || WIFSIGNALED(status)) r.rusage = to_rusage(ru);
    batch.push_back(r);
  }
  for (const Reaped& r : batch) on_status(r);
  return batch.size();
}

}  // namespace forkwatch
