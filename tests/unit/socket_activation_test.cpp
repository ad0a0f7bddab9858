#include "socket_activation.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>

#include "fd.h"

using forkwatch::Environment;
using forkwatch::Fd;
using forkwatch::parse_listen_fds;

namespace {

std::string describe(const forkwatch::Result<std::vector<forkwatch::ListenFdSpec>>& result) {
  if (!result) return "error: " + result.error().message();
  std::string text;
  for (const auto& spec : result.value()) text += std::to_string(spec.fd) + "=" + spec.name + " ";
  return text;
}

// Runs `body` in a forked child, where it may put sockets on fds 3 and 4 and
// change the environment; returns what the child reported ("" = all good).
template <typename Body>
std::string in_child(Body body) {
  int pipe_fds[2];
  REQUIRE(::pipe2(pipe_fds, O_CLOEXEC) == 0);
  Fd read_end(pipe_fds[0]), write_end(pipe_fds[1]);
  // Keep the report pipe clear of the fds the child will overwrite.
  int report_fd = ::fcntl(write_end.get(), F_DUPFD_CLOEXEC, 100);
  REQUIRE(report_fd >= 100);
  Fd report(report_fd);
  write_end.reset();
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    std::string text = body();
    ssize_t n = ::write(report.get(), text.data(), text.size());
    ::_exit(n == static_cast<ssize_t>(text.size()) ? 0 : 1);
  }
  report.reset();
  std::string text;
  char buffer[512];
  ssize_t n;
  while ((n = ::read(read_end.get(), buffer, sizeof buffer)) > 0) {
    text.append(buffer, static_cast<std::size_t>(n));
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  return text;
}

// A listening TCP socket on 127.0.0.1 with a kernel-chosen port.
int listen_loopback(in_port_t* port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof addr;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(fd, 8) != 0 || ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length) != 0) {
    return -1;
  }
  *port = ntohs(addr.sin_port);
  return fd;
}

}  // namespace

TEST_CASE("LISTEN_* variables parse with sd_listen_fds semantics", "[unit]") {
  CHECK(describe(parse_listen_fds({{"LISTEN_PID", "42"}, {"LISTEN_FDS", "2"}}, 42)) ==
        "3=unknown 4=unknown ");
  CHECK(describe(parse_listen_fds(
            {{"LISTEN_PID", "42"}, {"LISTEN_FDS", "2"}, {"LISTEN_FDNAMES", "http:admin"}}, 42)) ==
        "3=http 4=admin ");
  CHECK(describe(parse_listen_fds({{"LISTEN_PID", "42"}, {"LISTEN_FDS", "0"}}, 42)) == "");
}

TEST_CASE("LISTEN_* variables meant for another process pass nothing", "[unit]") {
  CHECK(describe(parse_listen_fds({{"LISTEN_PID", "41"}, {"LISTEN_FDS", "1"}}, 42)) == "");
  CHECK(describe(parse_listen_fds({{"LISTEN_FDS", "1"}}, 42)) == "");
  CHECK(describe(parse_listen_fds({{"LISTEN_PID", "42"}}, 42)) == "");
  CHECK(describe(parse_listen_fds({}, 42)) == "");
}

TEST_CASE("malformed LISTEN_* variables are errors", "[unit]") {
  for (const Environment& env : {
           Environment{{"LISTEN_PID", "abc"}, {"LISTEN_FDS", "1"}},
           Environment{{"LISTEN_PID", "0"}, {"LISTEN_FDS", "1"}},
           Environment{{"LISTEN_PID", "42"}, {"LISTEN_FDS", "-1"}},
           Environment{{"LISTEN_PID", "42"}, {"LISTEN_FDS", "1x"}},
           Environment{{"LISTEN_PID", "42"}, {"LISTEN_FDS", "2147483647"}},
           Environment{{"LISTEN_PID", "42"}, {"LISTEN_FDS", "2"}, {"LISTEN_FDNAMES", "one"}},
           Environment{{"LISTEN_PID", "42"}, {"LISTEN_FDS", "1"}, {"LISTEN_FDNAMES", "a:b"}},
       }) {
    auto result = parse_listen_fds(env, 42);
    CAPTURE(describe(result));
    CHECK_FALSE(result);
  }
  auto mismatch =
      parse_listen_fds({{"LISTEN_PID", "42"}, {"LISTEN_FDS", "2"}, {"LISTEN_FDNAMES", "one"}}, 42);
  REQUIRE_FALSE(mismatch);
  CHECK(mismatch.error().message() == "LISTEN_FDNAMES has 1 names for LISTEN_FDS=2");
}

TEST_CASE("passed sockets are adopted close-on-exec and serve connections", "[unit]") {
  std::string report = in_child([]() -> std::string {
    in_port_t port = 0;
    // Moved above 3 and 4 first, so dup2 below really copies and the close
    // after it cannot hit fd 3 or 4.
    Fd raw_tcp(listen_loopback(&port));
    Fd raw_other(::socket(AF_INET, SOCK_DGRAM, 0));
    if (!raw_tcp || !raw_other) return "could not create sockets;";
    int tcp = ::fcntl(raw_tcp.get(), F_DUPFD, 50);
    int other = ::fcntl(raw_other.get(), F_DUPFD, 50);
    raw_tcp.reset();
    raw_other.reset();
    if (tcp < 0 || other < 0) return "could not move sockets;";
    // What systemd does: the sockets land on fds 3 and 4 without FD_CLOEXEC.
    if (::dup2(tcp, 3) != 3 || ::dup2(other, 4) != 4) return "dup2 failed;";
    ::close(tcp);
    ::close(other);
    ::setenv("LISTEN_PID", std::to_string(::getpid()).c_str(), 1);
    ::setenv("LISTEN_FDS", "2", 1);
    ::setenv("LISTEN_FDNAMES", "http:metrics", 1);

    auto fds = forkwatch::take_listen_fds();
    if (!fds) return "take_listen_fds: " + fds.error().message() + ";";
    std::string problems;
    for (const char* name : {"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"}) {
      if (::getenv(name)) problems += std::string(name) + " still set;";
    }
    if (fds->size() != 2) return problems + "expected 2 fds;";
    const auto& http = (*fds)[0];
    const auto& metrics = (*fds)[1];
    if (http.fd.get() != 3 || http.name != "http") problems += "fd 3 is not 'http';";
    if (metrics.fd.get() != 4 || metrics.name != "metrics") problems += "fd 4 is not 'metrics';";
    for (const auto& passed : *fds) {
      if (!(::fcntl(passed.fd.get(), F_GETFD) & FD_CLOEXEC)) {
        problems += "fd " + std::to_string(passed.fd.get()) + " lacks FD_CLOEXEC;";
      }
    }
    if (!forkwatch::is_listening_stream_socket(3)) problems += "fd 3 not seen as listening;";
    if (forkwatch::is_listening_stream_socket(4)) problems += "datagram fd 4 seen as listening;";

    // The adopted fd really is the listener: a client connects and is accepted.
    Fd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    if (::connect(client.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      problems += "connect failed;";
    } else if (Fd accepted(::accept4(http.fd.get(), nullptr, nullptr, SOCK_CLOEXEC)); !accepted) {
      problems += "accept on the adopted fd failed;";
    }
    return problems;
  });
  CHECK(report == "");
}

TEST_CASE("a passed fd that is not open is refused and the variables are still unset", "[unit]") {
  std::string report = in_child([]() -> std::string {
    ::close(3);  // make sure "fd 3" is not open in this child
    ::setenv("LISTEN_PID", std::to_string(::getpid()).c_str(), 1);
    ::setenv("LISTEN_FDS", "1", 1);
    auto fds = forkwatch::take_listen_fds();
    std::string problems;
    if (fds)
      problems += "a closed fd 3 was adopted;";
    else if (fds.error().message().rfind("fcntl(3", 0) != 0)
      problems += "error does not name fd 3: " + fds.error().message() + ";";
    if (::getenv("LISTEN_PID") || ::getenv("LISTEN_FDS")) problems += "variables still set;";
    return problems;
  });
  CHECK(report == "");
}

TEST_CASE("an ordinary fd is not a listening stream socket", "[unit]") {
  int pipe_fds[2];
  REQUIRE(::pipe2(pipe_fds, O_CLOEXEC) == 0);
  Fd a(pipe_fds[0]), b(pipe_fds[1]);
  CHECK_FALSE(forkwatch::is_listening_stream_socket(a.get()));
  Fd unbound(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  CHECK_FALSE(forkwatch::is_listening_stream_socket(unbound.get()));
  CHECK_FALSE(forkwatch::is_listening_stream_socket(-1));
}
