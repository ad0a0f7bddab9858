// bench-restart-probe: the supervised program of the supervisor benchmarks.
// It notes CLOCK_REALTIME as the first thing main does and appends one line to
// a shared file, so the same probe measures forkwatchd, supervisord and PM2
// end to end:
//   bench-restart-probe --out FILE [--code N]   line "PID START_NS EXIT_NS", then exit N
//   bench-restart-probe --out FILE --sleep      line "PID START_NS 0", then sleep until a signal
// Restart latency end to end is START_NS of run k+1 minus EXIT_NS of run k.
// One write(2) per line on an O_APPEND fd keeps lines from concurrent probes
// whole. Only syscalls after the first clock read: no stdio, no allocation.
// Linked statically (bench/CMakeLists.txt): no dynamic loader runs between
// its exec and its main, and its exit has few mappings to tear down.
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace {

long long now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<long long>(ts.tv_sec) * 1'000'000'000LL + ts.tv_nsec;
}

// Decimal digits of v at p; returns the end.
char* put_number(char* p, long long v) {
  char tmp[24];
  int n = 0;
  do {
    tmp[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v > 0);
  while (n > 0) *p++ = tmp[--n];
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  const long long start = now_ns();
  const char* out = nullptr;
  int code = 1;
  bool sleep_mode = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
    else if (!std::strcmp(argv[i], "--code") && i + 1 < argc) code = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--sleep")) sleep_mode = true;
    else {
      static constexpr char kUsage[] = "usage: bench-restart-probe --out FILE [--code N | --sleep]\n";
      (void)!write(2, kUsage, sizeof kUsage - 1);
      return 2;
    }
  }
  if (out == nullptr) return 2;
  int fd = open(out, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return 3;
  char line[96];
  char* p = put_number(line, getpid());
  *p++ = ' ';
  p = put_number(p, start);
  *p++ = ' ';
  p = put_number(p, sleep_mode ? 0 : now_ns());
  *p++ = '\n';
  if (write(fd, line, static_cast<size_t>(p - line)) != p - line) return 4;
  close(fd);
  if (sleep_mode)
    for (;;) pause();  // a signal's default action ends it
  return code;
}
