#include <catch2/catch.hpp>

#include "fd_parse.h"

using namespace forkwatch;

TEST_CASE("fd links classify as every kind the contract names", "[unit]") {
  struct Case {
    const char* link;
    FdKind kind;
    uint64_t inode;
  };
  for (auto [link, kind, inode] : {Case{"socket:[27075899]", FdKind::kSocket, 27075899},
                                   Case{"pipe:[5001]", FdKind::kPipe, 5001},
                                   Case{"anon_inode:[eventfd]", FdKind::kEventfd, 0},
                                   Case{"anon_inode:[eventpoll]", FdKind::kEpoll, 0},
                                   Case{"anon_inode:[signalfd]", FdKind::kSignalfd, 0},
                                   Case{"anon_inode:[timerfd]", FdKind::kTimerfd, 0},
                                   Case{"anon_inode:inotify", FdKind::kAnon, 0},
                                   Case{"anon_inode:[pidfd]", FdKind::kAnon, 0},
                                   Case{"/dev/null", FdKind::kFile, 0},
                                   Case{"net:[4026531840]", FdKind::kOther, 0},
                                   Case{"socket:[]", FdKind::kOther, 0},
                                   Case{"pipe:[12x]", FdKind::kOther, 0},
                                   Case{"", FdKind::kOther, 0}}) {
    INFO(link);
    FdLink l = classify_fd_link(link);
    CHECK(l.kind == kind);
    CHECK(l.inode == inode);
    CHECK_FALSE(l.deleted);
  }
}

TEST_CASE("a deleted file keeps its kind and is marked deleted", "[unit]") {
  FdLink l = classify_fd_link("/tmp/log (deleted)");
  CHECK(l.kind == FdKind::kFile);
  CHECK(l.deleted);
  CHECK(classify_fd_link("/memfd:buf (deleted)").deleted);
  CHECK_FALSE(classify_fd_link("/tmp/(deleted)x").deleted);
}

TEST_CASE("fdinfo gives pos, octal flags, eventfd counts, epoll targets, sigmasks and message queues", "[unit]") {
  auto f = parse_fdinfo("pos:\t4096\nflags:\t02000001\nmnt_id:\t30\nino:\t99\n");
  REQUIRE(f);
  CHECK(f->pos == 4096);
  CHECK(f->flags == 02000001);  // O_CLOEXEC | O_WRONLY
  auto e = parse_fdinfo("pos:\t0\nflags:\t02\neventfd-count:                1a\n");
  REQUIRE(e);
  CHECK(e->eventfd_count == 26u);
  auto ep = parse_fdinfo(
      "pos:\t0\nflags:\t02\ntfd:        3 events:       19 data:   3  pos:0 ino:1b59\n"
      "tfd:       12 events:       19 data:   c  pos:0 ino:1b5b\n");
  REQUIRE(ep);
  CHECK(ep->epoll_targets == std::vector<int>{3, 12});
  auto s = parse_fdinfo("pos:\t0\nflags:\t02\nsigmask:\t0000000000014002\n");
  REQUIRE(s);
  CHECK(s->sigmask == "0000000000014002");
  auto q = parse_fdinfo("pos:\t0\nflags:\t02\nQSIZE:0          NOTIFY:0     SIGNO:0     NOTIFY_PID:0\n");
  REQUIRE(q);
  CHECK(q->mqueue);
  CHECK(refine_kind(FdKind::kFile, *q) == FdKind::kMqueue);
  CHECK(refine_kind(FdKind::kFile, *f) == FdKind::kFile);
}

TEST_CASE("fdinfo without pos or flags, or with a bad number, is refused", "[unit]") {
  CHECK_FALSE(parse_fdinfo(""));
  CHECK_FALSE(parse_fdinfo("pos:\t0\n"));
  CHECK_FALSE(parse_fdinfo("flags:\t02\n"));
  CHECK_FALSE(parse_fdinfo("pos:\tx\nflags:\t02\n"));
  CHECK_FALSE(parse_fdinfo("pos:\t0\nflags:\t09\n"));  // not octal
}

TEST_CASE("tcp and tcp6 rows give addresses as HOST:PORT and lower-case states", "[unit]") {
  SocketTable t;
  parse_net_inet(
      "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
      "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 7001 1 0 100 0 0 10 0\n"
      "   1: 0100007F:1F90 0100007F:D8A6 01 00000000:00000000 00:00000000 00000000     0        0 7002 1 0 20 4 30 10 -1\n"
      "   2: 0100007F:1F90 0100007F:D8A8 06 00000000:00000000 03:00000F2A 00000000     0        0 0 3 0\n"
      "   3: garbage\n",
      NetProto::kTcp, t);
  REQUIRE(t.size() == 2);  // the time-wait row has no socket (inode 0); garbage skipped
  CHECK(t[7001].family == "inet");
  CHECK(t[7001].type == "stream");
  CHECK(t[7001].state == "listen");
  CHECK(t[7001].local == "127.0.0.1:8080");
  CHECK(t[7001].remote == "0.0.0.0:0");
  CHECK(t[7002].state == "established");
  CHECK(t[7002].remote == "127.0.0.1:55462");
  parse_net_inet(
      "  sl  local_address                         remote_address                        st tx rx tr tm retr uid timeout inode\n"
      "   0: 00000000000000000000000001000000:0050 00000000000000000000000000000000:0000 0A 0:0 00:0 0 0 0 7003 1\n"
      "   1: 0000000000000000FFFF00000100007F:0050 0000000000000000FFFF00000100007F:9C40 08 0:0 00:0 0 0 0 7008 1\n",
      NetProto::kTcp6, t);
  CHECK(t[7003].family == "inet6");
  CHECK(t[7003].local == "[::1]:80");
  CHECK(t[7003].remote == "[::]:0");
  CHECK(t[7008].local == "[::ffff:127.0.0.1]:80");
  CHECK(t[7008].state == "close_wait");
}

TEST_CASE("udp rows are datagram sockets, one without a peer is unconnected", "[unit]") {
  SocketTable t;
  parse_net_inet(
      "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n"
      "  100: 00000000:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 7004 2 0 0\n"
      "  101: 0100007F:0035 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 7009 2 0 0\n",
      NetProto::kUdp, t);
  CHECK(t[7004].type == "dgram");
  CHECK(t[7004].state == "unconnected");
  CHECK(t[7004].local == "0.0.0.0:53");
  CHECK(t[7009].state == "established");
  parse_net_inet(
      "   sl  local_address                         remote_address                        st tx rx tr tm retr uid timeout inode\n"
      "   7: 00000000000000000000000000000000:14E9 00000000000000000000000000000000:0000 07 0:0 00:0 0 0 0 7010 2\n",
      NetProto::kUdp6, t);
  CHECK(t[7010].family == "inet6");
  CHECK(t[7010].local == "[::]:5353");
}

TEST_CASE("unix rows: listeners by their accept flag, paths, abstract names and unnamed peers", "[unit]") {
  SocketTable t;
  parse_net_unix(
      "Num       RefCount Protocol Flags    Type St Inode Path\n"
      "0000000000000000: 00000002 00000000 00010000 0001 01 7005 /run/fw.sock\n"
      "0000000000000000: 00000003 00000000 00000000 0001 03 7006\n"
      "0000000000000000: 00000002 00000000 00000000 0002 01 7007 @abstract name\n"
      "0000000000000000: 00000002 00000000 00000000 0005 02 7011\n",
      t);
  REQUIRE(t.size() == 4);
  CHECK(t[7005].family == "unix");
  CHECK(t[7005].state == "listen");
  CHECK(t[7005].local == "/run/fw.sock");
  CHECK(t[7006].state == "established");
  CHECK(t[7006].local == "");
  CHECK(t[7007].type == "dgram");
  CHECK(t[7007].local == "@abstract name");  // a path may hold spaces
  CHECK(t[7011].type == "seqpacket");
  CHECK(t[7011].state == "connecting");
}

TEST_CASE("limits give the soft open-files limit, none when unlimited", "[unit]") {
  CHECK(parse_limits_nofile("Limit  Soft Limit  Hard Limit  Units\nMax open files            1024                 524288               files     \n") == 1024u);
  CHECK_FALSE(parse_limits_nofile("Max open files            unlimited            unlimited            files\n"));
  CHECK_FALSE(parse_limits_nofile("Max processes 10 10 processes\n"));
}

TEST_CASE("pipe ends pair by inode: each holder sees the others, never itself, each once", "[unit]") {
  InodeHolders h;
  h.add(200, 5001);
  h.add(100, 5001);
  h.add(100, 5001);  // one process holding both ends (or two fds on one end)
  h.add(300, 5001);
  h.add(300, 6000);
  CHECK(h.peers(5001, 100) == std::vector<pid_t>{200, 300});
  CHECK(h.peers(5001, 200) == std::vector<pid_t>{100, 300});
  CHECK(h.peers(6000, 300).empty());
  CHECK(h.peers(7777, 1).empty());
}
