#include "sd_notify.h"

#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <optional>
#include <random>
#include <string>

#include "fd.h"

using forkwatch::Environment;
using forkwatch::Fd;
using forkwatch::Notifier;
using namespace std::chrono_literals;

namespace {

// A stand-in for systemd's notification socket: an AF_UNIX datagram socket
// bound to a fresh path in a temp dir, or to an abstract name.
class FakeManager {
 public:
  explicit FakeManager(bool abstract) {
    std::random_device random;
    std::string tag = std::to_string(::getpid()) + "-" + std::to_string(random());
    socket_.reset(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    REQUIRE(socket_);
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    socklen_t length = 0;
    if (abstract) {
      notify_socket_ = "@forkwatch-test-" + tag;
      std::memcpy(sun.sun_path + 1, notify_socket_.data() + 1, notify_socket_.size() - 1);
      length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + notify_socket_.size());
    } else {
      dir_ = std::filesystem::temp_directory_path() / ("forkwatch-notify-" + tag);
      std::filesystem::create_directory(dir_);
      notify_socket_ = (dir_ / "notify").string();
      std::memcpy(sun.sun_path, notify_socket_.c_str(), notify_socket_.size() + 1);
      length = sizeof sun;
    }
    REQUIRE(::bind(socket_.get(), reinterpret_cast<sockaddr*>(&sun), length) == 0);
  }
  ~FakeManager() {
    socket_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  const std::string& notify_socket() const { return notify_socket_; }

  // The next datagram, or nullopt if none arrives before the deadline.
  std::optional<std::string> receive(std::chrono::milliseconds within = 2000ms) {
    pollfd pfd{socket_.get(), POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(within.count())) != 1) return std::nullopt;
    char buffer[4096];
    ssize_t n = ::recv(socket_.get(), buffer, sizeof buffer, 0);
    if (n < 0) return std::nullopt;
    return std::string(buffer, static_cast<std::size_t>(n));
  }

 private:
  Fd socket_;
  std::filesystem::path dir_;
  std::string notify_socket_;
};

std::uint64_t monotonic_usec() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000u +
         static_cast<std::uint64_t>(ts.tv_nsec) / 1000u;
}

}  // namespace

TEST_CASE("notify socket addresses: paths, abstract names, and nothing else", "[unit]") {
  using forkwatch::notify_socket_address;
  CHECK(notify_socket_address("/run/systemd/notify") == std::string("/run/systemd/notify"));
  CHECK(notify_socket_address("@sd-notify") == std::string("\0sd-notify", 10));
  CHECK_FALSE(notify_socket_address(""));
  CHECK_FALSE(notify_socket_address("@"));
  CHECK_FALSE(notify_socket_address("/"));
  CHECK_FALSE(notify_socket_address("run/notify"));
  CHECK_FALSE(notify_socket_address("vsock:2:1234"));
  // sun_path holds 108 bytes: a path needs one of them for its NUL, an
  // abstract name does not.
  CHECK(notify_socket_address("/" + std::string(106, 'a')));
  CHECK_FALSE(notify_socket_address("/" + std::string(107, 'a')));
  CHECK(notify_socket_address("@" + std::string(107, 'a')));
  CHECK_FALSE(notify_socket_address("@" + std::string(108, 'a')));
}

TEST_CASE("the watchdog applies only to the pid WATCHDOG_PID names", "[unit]") {
  using forkwatch::watchdog_timeout;
  CHECK(watchdog_timeout({{"WATCHDOG_USEC", "30000000"}}, 42) == 30s);
  CHECK(watchdog_timeout({{"WATCHDOG_USEC", "30000000"}, {"WATCHDOG_PID", "42"}}, 42) == 30s);
  CHECK_FALSE(watchdog_timeout({{"WATCHDOG_USEC", "30000000"}, {"WATCHDOG_PID", "43"}}, 42));
  CHECK_FALSE(watchdog_timeout({{"WATCHDOG_USEC", "30000000"}, {"WATCHDOG_PID", "x"}}, 42));
  CHECK_FALSE(watchdog_timeout({}, 42));
  CHECK_FALSE(watchdog_timeout({{"WATCHDOG_USEC", "0"}}, 42));
  CHECK_FALSE(watchdog_timeout({{"WATCHDOG_USEC", "-5"}}, 42));
  CHECK_FALSE(watchdog_timeout({{"WATCHDOG_USEC", "30s"}}, 42));
  CHECK_FALSE(watchdog_timeout({{"WATCHDOG_USEC", ""}}, 42));
  CHECK_FALSE(watchdog_timeout({{"WATCHDOG_USEC", "99999999999999999999999"}}, 42));
}

TEST_CASE("notify messages are formatted as systemd parses them", "[unit]") {
  CHECK(forkwatch::reloading_message(123456789) == "RELOADING=1\nMONOTONIC_USEC=123456789");
  CHECK(forkwatch::status_message("2 running, 1 backoff") == "STATUS=2 running, 1 backoff");
  // A newline would smuggle in a second assignment (say READY=1).
  CHECK(forkwatch::status_message("bad\nREADY=1\r") == "STATUS=bad READY=1 ");
}

TEST_CASE("a notifier sends READY, STATUS, RELOADING and STOPPING to a path socket", "[unit]") {
  FakeManager manager(false);
  Notifier notifier =
      Notifier::from_environment({{"NOTIFY_SOCKET", manager.notify_socket()}}, ::getpid());
  REQUIRE(notifier.enabled());

  notifier.ready();
  CHECK(manager.receive() == std::string("READY=1"));
  notifier.status("3 workers running");
  CHECK(manager.receive() == std::string("STATUS=3 workers running"));

  std::uint64_t before = monotonic_usec();
  notifier.reloading();
  std::uint64_t after = monotonic_usec();
  auto reloading = manager.receive();
  REQUIRE(reloading);
  const std::string prefix = "RELOADING=1\nMONOTONIC_USEC=";
  REQUIRE(reloading->rfind(prefix, 0) == 0);
  std::uint64_t stamp = std::stoull(reloading->substr(prefix.size()));
  CHECK(stamp >= before);
  CHECK(stamp <= after);

  notifier.stopping();
  CHECK(manager.receive() == std::string("STOPPING=1"));
  CHECK(notifier.send_failures() == 0);
}

TEST_CASE("a notifier reaches an abstract socket named with '@'", "[unit]") {
  FakeManager manager(true);
  Notifier notifier = Notifier::from_environment(
      {{"NOTIFY_SOCKET", manager.notify_socket()}, {"WATCHDOG_USEC", "2000000"}}, ::getpid());
  REQUIRE(notifier.enabled());
  CHECK(notifier.watchdog_interval() == 1s);
  notifier.watchdog_ping();
  CHECK(manager.receive() == std::string("WATCHDOG=1"));
  notifier.ready();
  CHECK(manager.receive() == std::string("READY=1"));
}

TEST_CASE("a WATCHDOG_PID for another process disables the pings", "[unit]") {
  FakeManager manager(false);
  Notifier notifier = Notifier::from_environment({{"NOTIFY_SOCKET", manager.notify_socket()},
                                                  {"WATCHDOG_USEC", "2000000"},
                                                  {"WATCHDOG_PID", std::to_string(::getpid() + 1)}},
                                                 ::getpid());
  CHECK(notifier.enabled());
  CHECK_FALSE(notifier.watchdog_interval());
  notifier.watchdog_ping();
  notifier.ready();
  // Datagrams keep their order: had the ping gone out, it would come first.
  CHECK(manager.receive() == std::string("READY=1"));
}

TEST_CASE("without NOTIFY_SOCKET the notifier is a silent no-op", "[unit]") {
  Notifier notifier = Notifier::from_environment({{"WATCHDOG_USEC", "2000000"}}, ::getpid());
  CHECK_FALSE(notifier.enabled());
  CHECK_FALSE(notifier.watchdog_interval());
  CHECK_FALSE(notifier.send("READY=1"));
  notifier.watchdog_ping();
  CHECK(notifier.send_failures() == 0);
  CHECK_FALSE(Notifier::from_environment({{"NOTIFY_SOCKET", "relative/path"}}, 1).enabled());
}

TEST_CASE("sends to a missing or full socket fail fast and are counted", "[unit]") {
  SECTION("nobody listens") {
    Notifier notifier = Notifier::from_environment(
        {{"NOTIFY_SOCKET", "/nonexistent-forkwatch-dir/notify"}}, ::getpid());
    REQUIRE(notifier.enabled());
    notifier.ready();
    notifier.stopping();
    CHECK(notifier.send_failures() == 2);
  }
  SECTION("the manager stopped reading") {
    FakeManager manager(false);
    Notifier notifier =
        Notifier::from_environment({{"NOTIFY_SOCKET", manager.notify_socket()}}, ::getpid());
    // The receive queue holds at most net.unix.max_dgram_qlen datagrams (512
    // by default); a blocking send would hang here instead of failing.
    constexpr int kSends = 5000;
    for (int i = 0; i < kSends; ++i) notifier.status("flood " + std::to_string(i));
    CHECK(notifier.send_failures() > 0);
    CHECK(notifier.send_failures() < static_cast<std::uint64_t>(kSends));
    CHECK(manager.receive() == std::string("STATUS=flood 0"));
  }
}

TEST_CASE("unset_notify_environment keeps NOTIFY_SOCKET from workers", "[unit]") {
  // Runs in a child so the test process's own environment stays untouched.
  int pipe_fds[2];
  REQUIRE(::pipe2(pipe_fds, O_CLOEXEC) == 0);
  Fd read_end(pipe_fds[0]), write_end(pipe_fds[1]);
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::setenv("NOTIFY_SOCKET", "@x", 1);
    ::setenv("WATCHDOG_USEC", "10", 1);
    ::setenv("WATCHDOG_PID", "1", 1);
    Environment seen = forkwatch::process_notify_environment();
    forkwatch::unset_notify_environment();
    std::string report =
        seen == Environment{{"NOTIFY_SOCKET", "@x"}, {"WATCHDOG_USEC", "10"}, {"WATCHDOG_PID", "1"}}
            ? ""
            : "read the wrong variables;";
    for (const char* name : {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"}) {
      if (::getenv(name)) report += std::string(name) + " still set;";
    }
    ssize_t n = ::write(write_end.get(), report.data(), report.size());
    ::_exit(n == static_cast<ssize_t>(report.size()) ? 0 : 1);
  }
  write_end.reset();
  std::string report;
  char buffer[256];
  ssize_t n;
  while ((n = ::read(read_end.get(), buffer, sizeof buffer)) > 0) {
    report.append(buffer, static_cast<std::size_t>(n));
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(report == "");
}
