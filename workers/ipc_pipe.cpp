// ipc-pipe: a parent and its child talking both ways over two pipes.
//
// A pipe carries bytes one way only, so a conversation needs two: the parent
// writes requests into one and reads answers from the other; the child does
// the opposite. Each side closes the ends it does not use. That matters: a
// reader sees EOF only when every write end is closed, so a forgotten copy in
// the wrong process makes the other side wait for ever.
//
// The parent sends 1..N, the child answers each with its square, the parent
// checks and sums the answers. Request and answer alternate, so neither side
// can fill a pipe while the other is also blocked writing. At the end the
// parent closes its request pipe (the child's EOF), reaps the child and
// reports how it ended: the wait status is half of the lesson.

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>

#include "common.h"

using namespace forkwatch::workers;

namespace {

constexpr const char* kUsage =
    "usage: ipc-pipe [--count N] [--delay-ms T] [--child-exit C]\n"
    "\n"
    "The parent sends 1..N to its child over one pipe; the child answers each\n"
    "with its square over another. Prints 'sum of squares S' and how the child\n"
    "ended ('child PID exited with status C').\n"
    "  --count N       how many numbers (default 10, at most 2000000)\n"
    "  --delay-ms T    the parent pauses T ms between requests (to watch it run)\n"
    "  --child-exit C  the child exits with status C (default 0), to show it is reported\n"
    "  --help          show this text\n"
    "SIGTERM or SIGINT: the parent closes the pipe, reaps the child, exits 0.\n";

// Whole records or nothing: a pipe may hand over fewer bytes than asked.
// Returns false on EOF, error, or (in the parent) a stop request.
bool read_full(int fd, void* data, size_t len, bool stoppable) {
  auto* p = static_cast<char*>(data);
  while (len > 0) {
    if (stoppable && stop_requested) return false;
    ssize_t n = read(fd, p, len);
    if (n == 0) return false;
    if (n < 0) {
      if (errno == EINTR) continue;  // the loop re-checks stop_requested
      return false;
    }
    p += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

bool write_full(int fd, const void* data, size_t len, bool stoppable) {
  auto* p = static_cast<const char*>(data);
  while (len > 0) {
    if (stoppable && stop_requested) return false;
    ssize_t n = write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

[[noreturn]] void child_body(int requests, int answers, int exit_code) {
  prctl(PR_SET_NAME, "ipc-pipe-child", 0, 0, 0);
  int64_t n = 0;
  while (read_full(requests, &n, sizeof n, false)) {
    int64_t square = n * n;
    if (!write_full(answers, &square, sizeof square, false)) _exit(1);
  }
  _exit(exit_code);  // EOF: the parent is done with us
}

std::string describe(pid_t pid, int status) {
  char text[96];
  if (WIFEXITED(status)) {
    std::snprintf(text, sizeof text, "child %d exited with status %d", pid, WEXITSTATUS(status));
  } else if (WIFSIGNALED(status)) {
    std::snprintf(text, sizeof text, "child %d killed by signal %d (%s)%s", pid, WTERMSIG(status),
                  sigabbrev_np(WTERMSIG(status)) ? sigabbrev_np(WTERMSIG(status)) : "?",
                  WCOREDUMP(status) ? ", core dumped" : "");
  } else {
    std::snprintf(text, sizeof text, "child %d: wait status %#x", pid, status);
  }
  return text;
}

}  // namespace

int main(int argc, char** argv) {
  program_name = "ipc-pipe";
  long count = 10;
  long delay_ms = 0;
  long child_exit = 0;
  for (ArgReader args(argc, argv, kUsage); args.next();) {
    if (args.is("--count")) {
      count = args.number(0, 2000000);  // 2e6: the sum of squares stays inside int64
    } else if (args.is("--delay-ms")) {
      delay_ms = args.number(0, 60000);
    } else if (args.is("--child-exit")) {
      child_exit = args.number(0, 255);
    } else {
      args.unknown();
    }
  }

  // Installed before fork; the child puts back the default, so a SIGTERM to
  // the whole group ends it at once.
  catch_stop_signals();
  std::signal(SIGPIPE, SIG_IGN);  // a dead child gives EPIPE, not death

  int to_child[2];
  int from_child[2];
  if (pipe2(to_child, O_CLOEXEC) != 0 || pipe2(from_child, O_CLOEXEC) != 0) {
    std::fprintf(stderr, "ipc-pipe: pipe2: %s\n", std::strerror(errno));
    return 1;
  }
  std::fflush(nullptr);
  pid_t child = fork();
  if (child < 0) {
    std::fprintf(stderr, "ipc-pipe: fork: %s\n", std::strerror(errno));
    return 1;
  }
  if (child == 0) {
    std::signal(SIGTERM, SIG_DFL);
    std::signal(SIGINT, SIG_DFL);
    std::signal(SIGPIPE, SIG_DFL);
    close(to_child[1]);    // we only read requests...
    close(from_child[0]);  // ...and only write answers
    child_body(to_child[0], from_child[1], static_cast<int>(child_exit));
  }
  close(to_child[0]);
  close(from_child[1]);

  int64_t sum = 0;
  long answered = 0;
  bool broken = false;
  for (int64_t n = 1; n <= count && !stop_requested; ++n) {
    if (delay_ms > 0) {
      timespec delay = from_ms(delay_ms);
      nanosleep(&delay, nullptr);  // EINTR on SIGTERM: the loop condition sees it
      if (stop_requested) break;
    }
    int64_t square = 0;
    if (!write_full(to_child[1], &n, sizeof n, true) ||
        !read_full(from_child[0], &square, sizeof square, true)) {
      broken = !stop_requested;
      break;
    }
    if (square != n * n) {
      std::fprintf(stderr, "ipc-pipe: asked %" PRId64 ", got %" PRId64 "\n", n, square);
      broken = true;
      break;
    }
    sum += square;
    ++answered;
  }
  close(to_child[1]);  // the child's EOF: it answers what it has read, leaves its loop and exits
  // Drain the answer a stop left in flight before closing our read end: a
  // child writing into a closed pipe would die of SIGPIPE instead of exiting.
  char drained[64];
  for (ssize_t r; (r = read(from_child[0], drained, sizeof drained)) != 0;) {
    if (r < 0 && errno != EINTR) break;
  }
  close(from_child[0]);

  int status = wait_for_child(child);
  std::printf("sum of squares %" PRId64 " (%ld numbers)%s\n", sum, answered,
              stop_requested ? " (stopped)" : "");
  std::printf("%s\n", describe(child, status).c_str());
  if (broken) {
    std::fprintf(stderr, "ipc-pipe: the conversation broke off after %ld numbers\n", answered);
    return 1;
  }
  return 0;
}
