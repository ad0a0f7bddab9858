// orphan-maker: makes orphans and zombies on purpose, so a supervisor can show
// that it adopts and reaps what others leave behind.
//
//   --children N: fork a middle process that forks N children and exits at
//   once. Its children are orphans: the kernel re-parents them to the nearest
//   child subreaper (or init), which must reap them when they exit after
//   --linger-ms. This process reaps only the middle one.
//   --zombies N: fork N children that exit at once and are never waited for
//   while this process lives; they stay zombies (state Z) until it dies and
//   their new parent reaps them.

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>

#include "common.h"

using namespace forkwatch::workers;

namespace {

constexpr const char* kUsage =
    "usage: orphan-maker [--children N [--linger-ms T]] [--zombies N] [--setsid] [--stay]\n"
    "\n"
    "  --children N   fork a middle process that forks N children and exits at once;\n"
    "                 the children are re-parented to the nearest child subreaper\n"
    "  --linger-ms T  each orphan exits T ms after it starts (default 500)\n"
    "  --zombies N    fork N children that exit at once and are never reaped while\n"
    "                 this process lives; then wait for SIGTERM\n"
    "  --setsid       children call setsid(): they leave the process group, so only a\n"
    "                 supervisor that tracks descendants can still stop them\n"
    "  --stay         after making orphans, stay alive until SIGTERM\n"
    "  --help         show this text\n"
    "Prints one line per made process: 'orphan PID' or 'zombie PID'.\n"
    "Exits 0 on success and on SIGTERM/SIGINT, 1 if fork fails, 2 on bad arguments.\n";

constexpr int kMaxProcesses = 100000;

// Forked children print with write(2), not stdio: stdio buffers are copied by
// fork and would be flushed twice.
void write_line(const char* kind, pid_t pid) {
  char line[48];
  int n = std::snprintf(line, sizeof line, "%s %d\n", kind, static_cast<int>(pid));
  if (n > 0) (void)!write(STDOUT_FILENO, line, static_cast<size_t>(n));
}

// A made child must die of SIGTERM like any program, not inherit our block.
void unblock_all_signals() {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
}

[[noreturn]] void orphan_body(long linger_ms, bool new_session, int ready_fd) {
  if (new_session) setsid();
  prctl(PR_SET_NAME, "orphan", 0, 0, 0);
  unblock_all_signals();
  close(ready_fd);  // "set up": the middle waits for every orphan's close
  timespec delay = from_ms(linger_ms);
  while (nanosleep(&delay, &delay) != 0 && errno == EINTR) {
  }
  _exit(0);
}

// The middle process: fork the orphans, report them, exit so they lose their
// parent. It exits only once every orphan is set up (in its own session with
// --setsid), so whoever sees orphan-maker finish sees the orphans as described.
[[noreturn]] void middle_body(long children, long linger_ms, bool new_session) {
  prctl(PR_SET_NAME, "orphan-middle", 0, 0, 0);
  int ready[2];
  if (pipe2(ready, O_CLOEXEC) != 0) _exit(1);
  for (long i = 0; i < children; ++i) {
    pid_t pid = fork();
    if (pid < 0) {
      char msg[96];
      int n = std::snprintf(msg, sizeof msg, "orphan-maker: fork of orphan %ld: %s\n", i,
                            strerrordesc_np(errno));
      if (n > 0) (void)!write(STDERR_FILENO, msg, static_cast<size_t>(n));
      _exit(1);
    }
    if (pid == 0) {
      close(ready[0]);
      orphan_body(linger_ms, new_session, ready[1]);
    }
    write_line("orphan", pid);
  }
  close(ready[1]);
  char byte;
  while (read(ready[0], &byte, 1) < 0 && errno == EINTR) {
  }  // EOF: every orphan closed its copy of the write end
  _exit(0);
}

// Returns false if making them failed.
bool make_orphans(long children, long linger_ms, bool new_session) {
  std::fflush(nullptr);
  pid_t middle = fork();
  if (middle < 0) {
    std::fprintf(stderr, "orphan-maker: fork of middle process: %s\n", std::strerror(errno));
    return false;
  }
  if (middle == 0) middle_body(children, linger_ms, new_session);
  int status = 0;
  while (waitpid(middle, &status, 0) < 0) {
    if (errno != EINTR) {
      std::fprintf(stderr, "orphan-maker: waitpid(%d): %s\n", middle, std::strerror(errno));
      return false;
    }
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

bool make_zombies(long zombies, bool new_session) {
  std::fflush(nullptr);
  for (long i = 0; i < zombies; ++i) {
    pid_t pid = fork();
    if (pid < 0) {
      std::fprintf(stderr, "orphan-maker: fork of zombie %ld: %s\n", i, std::strerror(errno));
      return false;
    }
    if (pid == 0) {
      if (new_session) setsid();
      _exit(0);
    }
    write_line("zombie", pid);
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  program_name = "orphan-maker";
  long children = 0;
  long linger_ms = 500;
  long zombies = 0;
  bool new_session = false;
  bool stay = false;
  bool linger_given = false;
  const std::string a_count = "a count 1.." + std::to_string(kMaxProcesses);
  for (ArgReader args(argc, argv, kUsage); args.next();) {
    if (args.is("--children")) {
      children = args.number(1, kMaxProcesses, a_count);
    } else if (args.is("--linger-ms")) {
      linger_ms = args.number(0, 86400000L, "milliseconds >= 0");
      linger_given = true;
    } else if (args.is("--zombies")) {
      zombies = args.number(1, kMaxProcesses, a_count);
    } else if (args.is("--setsid")) {
      new_session = true;
    } else if (args.is("--stay")) {
      stay = true;
    } else {
      args.unknown();
    }
  }
  if (children == 0 && zombies == 0) usage_error("give --children N or --zombies N");
  if (linger_given && children == 0) usage_error("--linger-ms goes with --children");

  // SIGTERM/SIGINT are taken synchronously with sigwaitinfo, so they must be
  // blocked before the first fork (made children unblock them again). SIGCHLD
  // must not be ignored, or the kernel would reap the zombies for us.
  sigset_t stop_signals = block_stop_signals();
  std::signal(SIGCHLD, SIG_DFL);

  if (children > 0 && !make_orphans(children, linger_ms, new_session)) return 1;
  if (zombies > 0 && !make_zombies(zombies, new_session)) return 1;

  if (zombies > 0 || stay) {
    for (;;) {
      int sig = sigwaitinfo(&stop_signals, nullptr);
      if (sig == SIGTERM || sig == SIGINT) break;
    }
  }
  // Exiting hands any zombies to our parent (or subreaper), which reaps them.
  return 0;
}
