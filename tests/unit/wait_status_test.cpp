// Decoding is tested against statuses that real children produce, so the test
// checks our decoder against the kernel, not against our own idea of the bits.
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>

#include "wait_status.h"

using forkwatch::decode_wait_status;
using forkwatch::describe;

namespace {

pid_t fork_exit(int code) {
  pid_t pid = fork();
  if (pid == 0) _exit(code);
  return pid;
}

// waitpid with WUNTRACED|WCONTINUED; blocks until this child has news.
int wait_for(pid_t pid) {
  int status = 0;
  REQUIRE(waitpid(pid, &status, WUNTRACED | WCONTINUED) == pid);
  return status;
}

}  // namespace

TEST_CASE("exit 12 and exit 24 of two children decode as exited with their codes", "[unit]") {
  pid_t a = fork_exit(12), b = fork_exit(24);
  auto sa = decode_wait_status(wait_for(a));
  auto sb = decode_wait_status(wait_for(b));
  CHECK(sa.exited);
  CHECK(sa.exit_status == 12);
  CHECK(sb.exit_status == 24);
  for (const auto& s : {sa, sb}) {
    CHECK_FALSE(s.signaled);
    CHECK_FALSE(s.core_dumped);
    CHECK_FALSE(s.stopped);
    CHECK_FALSE(s.continued);
    CHECK(s.terminated());
  }
  CHECK(describe(sa) == "exited 12");
}

TEST_CASE("SIGSEGV decodes as signaled, with a core dump exactly when RLIMIT_CORE allows", "[unit]") {
  // Run in a scratch dir so a core file (core_pattern "core") lands there.
  auto dir = std::filesystem::temp_directory_path() / ("fw-core-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  rlimit hard{};
  getrlimit(RLIMIT_CORE, &hard);
  for (bool allow : {false, true}) {
    pid_t pid = fork();
    if (pid == 0) {
      if (chdir(dir.c_str()) != 0) _exit(99);
      rlimit rl{allow ? hard.rlim_max : 0, hard.rlim_max};
      setrlimit(RLIMIT_CORE, &rl);
      signal(SIGSEGV, SIG_DFL);
      raise(SIGSEGV);
      _exit(98);
    }
    auto s = decode_wait_status(wait_for(pid));
    CHECK(s.signaled);
    CHECK(s.term_sig == SIGSEGV);
    CHECK_FALSE(s.exited);
    if (!allow) CHECK_FALSE(s.core_dumped);
    // With the limit raised the kernel dumps unless the hard limit is 0.
    if (allow && hard.rlim_max > 0) {
      CHECK(s.core_dumped);
      CHECK(describe(s) == "killed by SIGSEGV (core dumped)");
    }
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("SIGSTOP then SIGCONT decode as stopped and continued", "[unit]") {
  int ready[2];
  REQUIRE(pipe(ready) == 0);
  pid_t pid = fork();
  if (pid == 0) {
    for (;;) pause();
  }
  kill(pid, SIGSTOP);
  auto stopped = decode_wait_status(wait_for(pid));
  CHECK(stopped.stopped);
  CHECK(stopped.stop_sig == SIGSTOP);
  CHECK_FALSE(stopped.terminated());
  CHECK(describe(stopped) == "stopped by SIGSTOP");
  kill(pid, SIGCONT);
  auto cont = decode_wait_status(wait_for(pid));
  CHECK(cont.continued);
  CHECK_FALSE(cont.stopped);
  CHECK_FALSE(cont.exited);
  kill(pid, SIGKILL);
  auto killed = decode_wait_status(wait_for(pid));
  CHECK(killed.signaled);
  CHECK(killed.term_sig == SIGKILL);
  CHECK_FALSE(killed.core_dumped);
  close(ready[0]);
  close(ready[1]);
}
