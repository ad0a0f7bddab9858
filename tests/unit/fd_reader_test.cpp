#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <map>

#include "fd_reader.h"

using namespace forkwatch;

namespace {

const std::string kFixtureRoot = std::string(FORKWATCH_FIXTURES_DIR) + "/proc";

std::map<int, FdItem> by_fd(std::vector<FdItem> v) {
  std::map<int, FdItem> out;
  for (auto& f : v) out[f.fd] = std::move(f);
  return out;
}

}  // namespace

TEST_CASE("a fixture process's descriptors come out by fd with kinds refined by fdinfo", "[unit]") {
  FdReader r(kFixtureRoot);
  auto list = r.list(800, true);
  REQUIRE(list);
  REQUIRE(list->size() == 17);
  for (size_t i = 1; i < list->size(); ++i) CHECK((*list)[i - 1].fd < (*list)[i].fd);
  auto fds = by_fd(*list);
  CHECK(fds[0].kind == FdKind::kFile);
  CHECK(fds[1].kind == FdKind::kPipe);
  CHECK(fds[1].inode == 5001);
  CHECK(fds[2].deleted);
  CHECK(fds[2].info->pos == 4096);
  CHECK(fds[3].kind == FdKind::kSocket);
  CHECK(fds[8].kind == FdKind::kEventfd);
  CHECK(fds[8].info->eventfd_count == 26u);
  CHECK(fds[9].kind == FdKind::kEpoll);
  CHECK(fds[9].info->epoll_targets == std::vector<int>{3, 5});
  CHECK(fds[10].kind == FdKind::kSignalfd);
  CHECK(fds[11].kind == FdKind::kTimerfd);
  CHECK(fds[12].kind == FdKind::kMqueue);  // a path until fdinfo's QSIZE line
  CHECK(fds[13].kind == FdKind::kAnon);
  CHECK(fds[14].kind == FdKind::kOther);
  CHECK(fds[15].target == "/tmp/<img src=x onerror=alert(1)>");
  CHECK(fds[16].info.has_value());
}

TEST_CASE("without fdinfo a listing still has every link, and a /path stays a file", "[unit]") {
  FdReader r(kFixtureRoot);
  auto list = r.list(800, false);
  REQUIRE(list);
  auto fds = by_fd(*list);
  CHECK_FALSE(fds[12].info);
  CHECK(fds[12].kind == FdKind::kFile);
  CHECK(r.count(800) == 17);
  CHECK(r.count(801) == 3);
  CHECK(r.nofile_limit(800) == 1024u);
  CHECK_FALSE(r.nofile_limit(801));
}

TEST_CASE("sockets join their namespace's tables by inode, peers are the other holders", "[unit]") {
  FdReader r(kFixtureRoot);
  std::vector<pid_t> watched{800, 801, 999};  // 999 has no entry: gone, skipped
  auto p = read_process_fds(r, 800, watched);
  REQUIRE(p);
  auto fds = by_fd(p->fds);
  REQUIRE(fds[3].socket);
  CHECK(fds[3].socket->state == "listen");
  CHECK(fds[3].socket->local == "127.0.0.1:8080");
  CHECK(fds[3].peers == std::vector<pid_t>{801});  // a listener two processes hold
  CHECK(fds[4].socket->state == "established");
  CHECK(fds[4].peers.empty());
  CHECK(fds[5].socket->family == "inet6");
  CHECK(fds[6].socket->state == "unconnected");
  CHECK(fds[7].socket->family == "unix");
  CHECK(fds[7].socket->local == "/run/fw.sock");
  CHECK_FALSE(fds[16].socket);  // 7999 is in no table (netlink, another namespace)
  CHECK(fds[1].peers == std::vector<pid_t>{801});  // the pipe's other end
  CHECK(p->unreadable.empty());
}

TEST_CASE("a pid with no entry under the root is gone, not an error to report", "[unit]") {
  FdReader r(kFixtureRoot);
  auto list = r.list(999, true);
  REQUIRE_FALSE(list);
  CHECK(fd_error_gone(list.error()));
  CHECK(r.count(999) < 0);
}

TEST_CASE("the live /proc of this process shows a socketpair, a pipe and a deleted file as they are", "[unit]") {
  FdReader r;
  int sv[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  int p[2];
  REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
  char tmpl[] = "/tmp/fw-fd-XXXXXX";
  int tmp = ::mkostemp(tmpl, O_CLOEXEC);
  REQUIRE(tmp >= 0);
  ::unlink(tmpl);
  auto list = r.list(::getpid(), true);
  REQUIRE(list);
  auto fds = by_fd(*list);
  CHECK(fds[sv[0]].kind == FdKind::kSocket);
  CHECK(fds[p[0]].kind == FdKind::kPipe);
  CHECK(fds[p[0]].inode == fds[p[1]].inode);
  CHECK(fds[tmp].deleted);
  CHECK(fds[tmp].info->flags & O_CLOEXEC);
  CHECK(r.count(::getpid()) == static_cast<int64_t>(list->size()) - 1);  // the listing's own dir fd is closed by now
  auto sockets = r.sockets(::getpid());
  REQUIRE(sockets.count(fds[sv[0]].inode));
  CHECK(sockets[fds[sv[0]].inode].state == "established");
  for (int fd : {sv[0], sv[1], p[0], p[1], tmp}) ::close(fd);
}
