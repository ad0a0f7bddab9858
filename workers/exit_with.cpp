// exit-with: ends the way it is told to, so a supervisor has every kind of
// wait status to decode: an exit code, death by any signal (with a core dump
// for SIGSEGV/SIGABRT where RLIMIT_CORE allows), after a delay or at a shared
// wall-clock instant so that many instances die in the same millisecond.
//
// Unlike the other workers it does NOT catch SIGTERM: every signal keeps its
// default action, so a signal ends it exactly as the kernel would. The one
// deliberate exception is --ignore-term, for testing stop timeouts.

#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common.h"

using namespace forkwatch::workers;

namespace {

constexpr const char* kUsage =
    "usage: exit-with [--code N] [--signal NAME] [--after-ms T] [--at-ms EPOCH_MS]\n"
    "                 [--stdout TEXT]... [--stderr TEXT]... [--ignore-term] [--sleep]\n"
    "\n"
    "Ends the way it is told to, to show wait statuses. With no flags: exit 0 at once.\n"
    "  --code N          exit with status N (0..255; default 0)\n"
    "  --signal NAME     end by this signal (SIGSEGV, SEGV, 11, ...); its default\n"
    "                    action applies, so SIGSEGV/SIGABRT dump core where the hard\n"
    "                    RLIMIT_CORE allows (the soft limit is raised to it). If the\n"
    "                    signal does not end the process (SIGSTOP, SIGCHLD, ...), it\n"
    "                    then exits with --code\n"
    "  --at-ms EPOCH_MS  first wait until this CLOCK_REALTIME instant (milliseconds\n"
    "                    since the epoch), for synchronised exits of many instances\n"
    "  --after-ms T      then wait T more milliseconds\n"
    "  --stdout TEXT     print TEXT as a line on stdout first (repeatable)\n"
    "  --stderr TEXT     print TEXT as a line on stderr first (repeatable)\n"
    "  --ignore-term     ignore SIGTERM (the one exception to default actions; for\n"
    "                    testing a supervisor's stop timeout)\n"
    "  --sleep           after the waits, sleep until a signal ends the process\n"
    "  --help            show this text\n"
    "Every signal keeps its default action: SIGTERM ends it by signal, not by exit.\n";

// "SIGSEGV", "segv" or "11". sigabbrev_np (glibc 2.32) gives the names without
// the SIG prefix; real-time signals are accepted by number only.
std::optional<int> parse_signal(std::string_view text) {
  if (auto number = parse_int(text, 1, SIGRTMAX)) return static_cast<int>(*number);
  std::string name;
  for (char c : text) name += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (name.rfind("SIG", 0) == 0) name.erase(0, 3);
  for (int sig = 1; sig < SIGRTMIN; ++sig) {
    const char* abbrev = sigabbrev_np(sig);
    if (abbrev != nullptr && name == abbrev) return sig;
  }
  return std::nullopt;
}

void sleep_until(clockid_t clock, const timespec& deadline) {
  // clock_nanosleep returns the error number; EINTR only if a handler ran.
  while (clock_nanosleep(clock, TIMER_ABSTIME, &deadline, nullptr) == EINTR) {
  }
}

// Whatever the parent left us (an ignored SIGPIPE, a blocked SIGTERM), a
// signal must act as the kernel's default, or the status we show is a lie.
void restore_default_signals(bool ignore_term) {
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    std::signal(sig, SIG_DFL);  // fails harmlessly for the gaps glibc reserves
  }
  if (ignore_term) std::signal(SIGTERM, SIG_IGN);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
}

void allow_core_dump() {
  rlimit limit{};
  if (getrlimit(RLIMIT_CORE, &limit) == 0 && limit.rlim_cur != limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_CORE, &limit);
  }
  prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
}

}  // namespace

int main(int argc, char** argv) {
  program_name = "exit-with";
  int code = 0;
  std::optional<int> signal_to_raise;
  std::optional<long long> after_ms;
  std::optional<long long> at_ms;
  std::vector<std::pair<FILE*, std::string>> lines;
  bool ignore_term = false;
  bool sleep_forever = false;
  for (ArgReader args(argc, argv, kUsage, /*inline_values=*/true); args.next();) {
    if (args.is("--code")) {
      code = static_cast<int>(args.number(0, 255, "an integer 0..255"));
    } else if (args.is("--signal")) {
      auto v = args.value();
      signal_to_raise = parse_signal(v);
      if (!signal_to_raise) usage_error("--signal: unknown signal '" + std::string(v) + "'");
    } else if (args.is("--after-ms")) {
      after_ms = args.number(0, 1000LL * 86400 * 365, "milliseconds >= 0");
    } else if (args.is("--at-ms")) {
      at_ms = args.number(0, 1LL << 50, "epoch milliseconds");
    } else if (args.is("--stdout")) {
      lines.emplace_back(stdout, std::string(args.value()));
    } else if (args.is("--stderr")) {
      lines.emplace_back(stderr, std::string(args.value()));
    } else if (args.is_switch("--ignore-term")) {
      ignore_term = true;
    } else if (args.is_switch("--sleep")) {
      sleep_forever = true;
    } else {
      args.unknown();
    }
  }

  restore_default_signals(ignore_term);
  allow_core_dump();

  for (const auto& [stream, text] : lines) {
    std::fprintf(stream, "%s\n", text.c_str());
    std::fflush(stream);
  }

  if (at_ms) sleep_until(CLOCK_REALTIME, from_ms(*at_ms));
  if (after_ms) {
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    long long deadline_ms = now.tv_sec * 1000LL + now.tv_nsec / 1000000 + *after_ms;
    timespec deadline = from_ms(deadline_ms);
    deadline.tv_nsec += now.tv_nsec % 1000000;  // keep sub-millisecond precision
    if (deadline.tv_nsec >= 1000000000L) {
      deadline.tv_nsec -= 1000000000L;
      ++deadline.tv_sec;
    }
    sleep_until(CLOCK_MONOTONIC, deadline);
  }

  if (sleep_forever) {
    for (;;) pause();  // only a signal's default action ends this
  }

  if (signal_to_raise) {
    // kill, not raise: the signal is sent to the process, as a supervisor's
    // would be. Unblocked and default, it is delivered before kill returns.
    kill(getpid(), *signal_to_raise);
  }
  std::fflush(nullptr);
  return code;
}
