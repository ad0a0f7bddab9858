#include "notify_message.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <map>

#include "notify_socket.h"

using namespace forkwatch;

TEST_CASE("sd_notify parsing: every field the protocol defines", "[unit]") {
  auto m = parse_notify_message(
      "READY=1\nSTATUS=Ready to accept connections\nMAINPID=4242\nWATCHDOG=1\nWATCHDOG_USEC=500000\n"
      "EXTEND_TIMEOUT_USEC=2000000\nRELOADING=1\nSTOPPING=1\nERRNO=13\n");
  CHECK(m.ready);
  CHECK(m.status == "Ready to accept connections");
  CHECK(m.main_pid == 4242);
  CHECK(m.watchdog_ping);
  CHECK(m.watchdog_usec == 500000u);
  CHECK(m.extend_timeout_usec == 2000000u);
  CHECK(m.reloading);
  CHECK(m.stopping);
  CHECK(m.errno_value == 13);
  CHECK(m.bad_lines == 0);
  CHECK(parse_notify_message("WATCHDOG=trigger").watchdog_trigger);
}

TEST_CASE("sd_notify parsing: redis's datagrams as it sends them", "[unit]") {
  // redis 7 --supervised systemd: a STATUS datagram, then READY=1 (no newline).
  CHECK(parse_notify_message("STATUS=Ready to accept connections tcp").status == "Ready to accept connections tcp");
  auto m = parse_notify_message("READY=1");
  CHECK(m.ready);
  CHECK_FALSE(m.status);
}

TEST_CASE("sd_notify parsing: garbage is counted, never taken for a field", "[unit]") {
  auto m = parse_notify_message("READY=0\nREADY\n=1\nMAINPID=0\nMAINPID=-5\nMAINPID=12x\nWATCHDOG_USEC=0\n"
                                "ERRNO=-1\nWATCHDOG=2\nX_CUSTOM=ignored\nFDSTORE=1\n\n");
  CHECK_FALSE(m.ready);
  CHECK_FALSE(m.main_pid);
  CHECK_FALSE(m.watchdog_usec);
  CHECK_FALSE(m.errno_value);
  CHECK_FALSE(m.watchdog_ping);
  CHECK(m.bad_lines == 9);
  // A later bad READY never undoes READY=1; a NUL ends the text.
  CHECK(parse_notify_message("READY=1\nREADY=x").ready);
  CHECK_FALSE(parse_notify_message(std::string("STATUS=a\0READY=1", 16)).ready);
  CHECK(parse_notify_message(std::string(10000, '\n')).bad_lines == 0);
}

TEST_CASE("sd_notify parsing: a long STATUS is cut at a UTF-8 boundary", "[unit]") {
  std::string text = "STATUS=" + std::string(kMaxStatusText - 1, 'a') + "\xC3\xA9" + "tail";
  auto m = parse_notify_message(text);
  REQUIRE(m.status);
  CHECK(m.status->size() == kMaxStatusText - 1);
}

namespace {
bool send_to(const NotifySocket& s, const std::string& text, int flags = 0) {
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  memcpy(addr.sun_path, s.address().data(), s.address().size());
  addr.sun_path[0] = '\0';
  const socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + s.address().size());
  const bool sent = sendto(fd, text.data(), text.size(), flags, reinterpret_cast<sockaddr*>(&addr), len) ==
                    static_cast<ssize_t>(text.size());
  close(fd);
  return sent;
}
}  // namespace

TEST_CASE("notify socket: datagrams carry the sender's pid, oversized ones are refused, reads are bounded", "[unit]") {
  auto s = NotifySocket::open(7);
  REQUIRE(s);
  CHECK(s->address().rfind("@forkwatch/", 0) == 0);
  send_to(*s, "READY=1");
  send_to(*s, std::string(kMaxNotifyDatagram + 1, 'x'));
  std::vector<std::pair<std::string, pid_t>> got;
  auto counts = s->drain([&](const NotifySocket::Datagram& d) { got.emplace_back(std::string(d.text), d.sender); });
  CHECK(counts.read == 2);
  CHECK(counts.oversized == 1);
  REQUIRE(got.size() == 1);
  CHECK(got[0].first == "READY=1");
  CHECK(got[0].second == getpid());
  // A flood: the kernel queues at most net.unix.max_dgram_qlen (then the
  // sender blocks or gets EAGAIN); each drain takes at most kMaxPerDrain.
  size_t sent = 0;
  while (sent < 4 * NotifySocket::kMaxPerDrain && send_to(*s, "STATUS=x", MSG_DONTWAIT)) ++sent;
  REQUIRE(sent > 0);
  size_t drained = 0;
  for (int round = 0; round < 8; ++round) {
    const size_t n = s->drain([](const NotifySocket::Datagram&) {}).read;
    CHECK(n <= NotifySocket::kMaxPerDrain);
    drained += n;
  }
  CHECK(drained == sent);
}

TEST_CASE("notify sender check: the main process, its descendants and its group pass, others are dropped", "[unit]") {
  // pid -> (ppid, pgrp): 100 is the worker's main process, 101 its child,
  // 102 a grandchild, 103 an orphan re-parented to the daemon (1) in 100's group,
  // 200 a process of somebody else.
  std::map<pid_t, std::pair<pid_t, pid_t>> procs = {
      {100, {50, 100}}, {101, {100, 100}}, {102, {101, 102}}, {103, {50, 100}}, {200, {1, 200}}, {50, {1, 50}}};
  auto stat_of = [&](pid_t pid) -> std::optional<ProcStat> {
    auto it = procs.find(pid);
    if (it == procs.end()) return std::nullopt;
    ProcStat st;
    st.pid = pid;
    st.ppid = it->second.first;
    st.pgrp = it->second.second;
    return st;
  };
  CHECK(sender_in_tree(100, 100, stat_of));
  CHECK(sender_in_tree(101, 100, stat_of));
  CHECK(sender_in_tree(102, 100, stat_of));
  CHECK(sender_in_tree(103, 100, stat_of));
  CHECK_FALSE(sender_in_tree(200, 100, stat_of));
  CHECK_FALSE(sender_in_tree(50, 100, stat_of));   // its parent (the daemon) is outside
  CHECK_FALSE(sender_in_tree(0, 100, stat_of));    // the kernel could not tell
  CHECK_FALSE(sender_in_tree(999, 100, stat_of));  // gone
  CHECK_FALSE(sender_in_tree(100, -1, stat_of));   // no main process
}
