#include "wait_status.h"

#include <sys/wait.h>

#include "signals.h"

namespace forkwatch {

WaitStatus decode_wait_status(int raw) {
  WaitStatus s;
  s.raw = raw;
  s.exited = WIFEXITED(raw);
  if (s.exited) s.exit_status = WEXITSTATUS(raw);
  s.signaled = WIFSIGNALED(raw);
  if (s.signaled) {
    s.term_sig = WTERMSIG(raw);
    s.core_dumped = WCOREDUMP(raw);
  }
  s.stopped = WIFSTOPPED(raw);
  if (s.stopped) s.stop_sig = WSTOPSIG(raw);
  s.continued = WIFCONTINUED(raw);
  return s;
}

std::string describe(const WaitStatus& s) {
  if (s.exited) return "exited " + std::to_string(s.exit_status);
  if (s.signaled)
    return "killed by " + signal_name(s.term_sig) + (s.core_dumped ? " (core dumped)" : "");
  if (s.stopped) return "stopped by " + signal_name(s.stop_sig);
  if (s.continued) return "continued";
  return "status " + std::to_string(s.raw);
}

}  // namespace forkwatch
