// The spawner with real children: the one extra descriptor a worker may be
// given (SpawnRequest::pass_fd, s6's notification-fd) arrives at its number,
// open across exec, with nothing else above fd 2; and a failed start is still
// reported whatever number the extra fd takes, the exec-status slot's included.
#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <set>
#include <sstream>
#include <string>

#include "spawner.h"

using namespace forkwatch;

namespace {

// Everything a non-blocking pipe gives until EOF (at most 5 s).
std::string read_to_eof(int fd) {
  std::string out;
  char buf[4096];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 5000) <= 0) return out + "<timed out>";
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) out.append(buf, static_cast<size_t>(n));
    else if (n == 0 || errno != EAGAIN) return out;
  }
}

// The numbers ls printed, one a line.
std::set<int> fd_numbers(const std::string& listing) {
  std::set<int> out;
  std::istringstream in(listing);
  for (int n; in >> n;) out.insert(n);
  return out;
}

int reap(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

SpawnRequest shell(const std::string& script, int pass_fd, int as) {
  SpawnRequest req;
  req.path = "/bin/bash";  // dash takes no redirection of an fd above 9
  req.argv = {"bash", "-c", script};
  req.pass_fd = pass_fd;
  req.pass_fd_as = as;
  return req;
}

}  // namespace

TEST_CASE("spawner: the passed fd is the child's fd N, open across exec, and no other fd above 2 is", "[unit]") {
  REQUIRE(spawn_prepare());
  // Every low number, so one of them is each of the spawner's own slots.
  for (int n = 3; n <= 12; ++n) {
    INFO("fd " << n);
    int p[2];
    REQUIRE(pipe2(p, O_CLOEXEC | O_NONBLOCK) == 0);
    // ls lists the shell's fds (while the shell waits for it), then the
    // shell writes to fd N.
    auto child = spawn(shell("ls /proc/$$/fd; printf 'hello\\n' >&" + std::to_string(n), p[1], n));
    ::close(p[1]);
    REQUIRE(child);
    CHECK(child->exec_error.empty());
    CHECK(fd_numbers(read_to_eof(child->out.get())) == std::set<int>{0, 1, 2, n});
    CHECK(read_to_eof(p[0]) == "hello\n");
    const int status = reap(child->pid);
    CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 0));
    ::close(p[0]);
  }
}

TEST_CASE("spawner: a failed start with a passed fd is still reported, whatever the fd's number", "[unit]") {
  REQUIRE(spawn_prepare());
  for (int n = 3; n <= 12; ++n) {
    INFO("fd " << n);
    int p[2];
    REQUIRE(pipe2(p, O_CLOEXEC) == 0);
    SpawnRequest req = shell("exit 0", p[1], n);
    req.cwd = "/nonexistent/forkwatch-spawner-test";
    auto child = spawn(req);
    ::close(p[0]);
    ::close(p[1]);
    REQUIRE(child);
    CHECK(child->exec_error == "chdir(/nonexistent/forkwatch-spawner-test): No such file or directory");
    const int status = reap(child->pid);
    CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 127));
  }
}

TEST_CASE("spawner: without a passed fd the child holds only fds 0 to 2", "[unit]") {
  REQUIRE(spawn_prepare());
  auto child = spawn(shell("ls /proc/$$/fd; true", -1, -1));  // two commands: bash forks ls
  REQUIRE(child);
  CHECK(fd_numbers(read_to_eof(child->out.get())) == std::set<int>{0, 1, 2});
  reap(child->pid);
}
