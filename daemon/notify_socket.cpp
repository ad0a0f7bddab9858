#include "notify_socket.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include "notify_message.h"

namespace forkwatch {

Result<NotifySocket> NotifySocket::open(int64_t worker_id) {
  NotifySocket s;
  s.fd_ = Fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!s.fd_) return sys_error("socket(AF_UNIX, SOCK_DGRAM)");
  const int one = 1;
  if (setsockopt(s.fd_.get(), SOL_SOCKET, SO_PASSCRED, &one, sizeof one) != 0)
    return sys_error("setsockopt(SO_PASSCRED)");
  // A nonce: a restarted daemon (same pid in a new container) never binds a
  // name an old worker still writes to.
  static std::mt19937_64 rng{std::random_device{}()};
  std::ostringstream name;
  name << "forkwatch/" << getpid() << "/" << worker_id << "/" << std::hex << rng();
  const std::string abstract = name.str();
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  memcpy(addr.sun_path + 1, abstract.data(), abstract.size());  // sun_path[0] = '\0': abstract
  const socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + abstract.size());
  if (::bind(s.fd_.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0)
    return sys_error("bind(@" + abstract + ")");
  s.address_ = "@" + abstract;
  return s;
}

NotifySocket::DrainCounts NotifySocket::drain(const std::function<void(const Datagram&)>& on) {
  DrainCounts counts;
  char buf[kMaxNotifyDatagram + 1];
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))];
  for (size_t i = 0; i < kMaxPerDrain; ++i) {
    iovec iov{buf, sizeof buf};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    // MSG_TRUNC: the datagram's real length, so an oversized one is seen as such.
    const ssize_t n = ::recvmsg(fd_.get(), &msg, MSG_DONTWAIT | MSG_TRUNC | MSG_CMSG_CLOEXEC);
    if (n < 0) break;  // EAGAIN: drained (other errors: nothing more to read now either)
    ++counts.read;
    pid_t sender = 0;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
        ucred cred;
        memcpy(&cred, CMSG_DATA(c), sizeof cred);
        sender = cred.pid;
      } else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
        // FDSTORE is not supported: close whatever fds came along.
        const size_t fds = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t k = 0; k < fds; ++k) {
          int fd;
          memcpy(&fd, CMSG_DATA(c) + k * sizeof(int), sizeof fd);
          ::close(fd);
        }
      }
    }
    if (static_cast<size_t>(n) > kMaxNotifyDatagram || (msg.msg_flags & MSG_TRUNC)) {
      ++counts.oversized;
      continue;
    }
    on(Datagram{std::string_view(buf, static_cast<size_t>(n)), sender});
  }
  return counts;
}

bool sender_in_tree(pid_t sender, pid_t main_pid,
                    const std::function<std::optional<ProcStat>(pid_t)>& stat_of) {
  if (sender <= 0 || main_pid <= 0) return false;
  if (sender == main_pid) return true;
  // The chain up is short in practice; the bound keeps a corrupt read finite.
  pid_t pid = sender;
  for (int depth = 0; depth < 64 && pid > 1; ++depth) {
    auto st = stat_of(pid);
    if (!st) return false;
    if (st->ppid == main_pid || st->pgrp == main_pid) return true;
    pid = st->ppid;
  }
  return false;
}

std::optional<ProcStat> read_proc_stat(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  return parse_proc_stat(text.str());
}

}  // namespace forkwatch
