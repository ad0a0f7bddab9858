// echo-epoll: an echo server that serves every client from one thread.
//
// All sockets are non-blocking and watched by one epoll instance, as is a
// signalfd for SIGTERM/SIGINT. A read may bring part of a message and a write
// may take only part of what we have, so each connection keeps the bytes it
// still owes the client in its own buffer. While that buffer is over a high
// mark we stop reading from the client (back-pressure: a client that does not
// read its echo cannot make us buffer without bound), and wait for EPOLLOUT.
// After the client's EOF we finish sending what we owe, then close.

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common.h"

using namespace forkwatch::workers;

namespace {

constexpr const char* kUsage =
    "usage: echo-epoll [--port P] [--host ADDR]\n"
    "\n"
    "Echo server multiplexing every client with epoll in one thread.\n"
    "  --port P     TCP port; 0 (default) lets the kernel pick\n"
    "  --host ADDR  IPv4 address to bind (default 127.0.0.1)\n"
    "  --help       show this text\n"
    "Prints 'listening on port N' once listening. Serves until SIGTERM or SIGINT,\n"
    "then closes every connection and exits 0.\n";

constexpr size_t kReadChunk = 64 * 1024;
constexpr size_t kHighMark = 256 * 1024;  // stop reading while we owe this much
constexpr int kMaxEvents = 256;

// One client. pending_[head_..] is what was read but not yet written back.
struct Connection {
  int fd = -1;
  std::vector<char> pending;
  size_t head = 0;
  bool peer_done = false;  // client sent EOF
  uint32_t events = 0;     // what epoll watches now

  size_t owed() const { return pending.size() - head; }
};

class Server {
 public:
  Server(int listener, int signal_fd) : listener_(listener), signal_fd_(signal_fd) {
    epoll_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_ < 0) fatal("epoll_create1");
    watch(listener_, EPOLLIN, EPOLL_CTL_ADD);
    watch(signal_fd_, EPOLLIN, EPOLL_CTL_ADD);
    // A spare fd to give up when out of descriptors, so a waiting client can be
    // accepted and closed instead of spinning on a level-triggered listener.
    spare_ = open("/dev/null", O_RDONLY | O_CLOEXEC);
  }

  ~Server() {
    for (auto& [fd, conn] : connections_) close(fd);
    close(epoll_);
    if (spare_ >= 0) close(spare_);
  }

  void run() {
    epoll_event events[kMaxEvents];
    for (;;) {
      int n = epoll_wait(epoll_, events, kMaxEvents, -1);
      if (n < 0) {
        if (errno == EINTR) continue;
        fatal("epoll_wait");
      }
      for (int i = 0; i < n; ++i) {
        int fd = events[i].data.fd;
        if (fd == signal_fd_) return;  // SIGTERM or SIGINT
        if (fd == listener_) {
          accept_all();
        } else {
          on_client(fd, events[i].events);
        }
      }
    }
  }

 private:
  void watch(int fd, uint32_t events, int op) {
    epoll_event ev{};
    ev.events = events;
    ev.data.fd = fd;
    if (epoll_ctl(epoll_, op, fd, &ev) != 0) fatal("epoll_ctl");
  }

  void accept_all() {
    for (;;) {
      int fd = accept4(listener_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED) return;
        if ((errno == EMFILE || errno == ENFILE) && spare_ >= 0) {
          close(spare_);
          int victim = accept(listener_, nullptr, nullptr);
          if (victim >= 0) close(victim);
          spare_ = open("/dev/null", O_RDONLY | O_CLOEXEC);
          std::fprintf(stderr, "echo-epoll: out of file descriptors, refused a client\n");
          return;
        }
        fatal("accept4");
      }
      auto conn = std::make_unique<Connection>();
      conn->fd = fd;
      conn->events = EPOLLIN;
      watch(fd, EPOLLIN, EPOLL_CTL_ADD);
      connections_.emplace(fd, std::move(conn));
    }
  }

  void on_client(int fd, uint32_t events) {
    auto it = connections_.find(fd);
    if (it == connections_.end()) return;
    Connection& c = *it->second;
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
      if (!read_some(c)) return drop(fd);
    }
    if (!write_some(c)) return drop(fd);
    if (c.peer_done && c.owed() == 0) return drop(fd);
    update_interest(c);
  }

  // False if the connection is broken. Reads into one shared scratch buffer
  // and sends straight from it; only what the socket would not take is copied
  // into the connection's own buffer.
  bool read_some(Connection& c) {
    while (!c.peer_done && c.owed() < kHighMark) {
      ssize_t n = read(c.fd, scratch_.data(), scratch_.size());
      if (n == 0) {
        c.peer_done = true;
        break;
      }
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) break;
        return false;
      }
      size_t got = static_cast<size_t>(n);
      size_t sent = 0;
      while (c.owed() == 0 && sent < got) {  // keep the order: queued bytes go first
        ssize_t w = send(c.fd, scratch_.data() + sent, got - sent, MSG_NOSIGNAL);
        if (w > 0) {
          sent += static_cast<size_t>(w);
        } else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
          break;
        } else {
          return false;
        }
      }
      c.pending.insert(c.pending.end(), scratch_.data() + sent, scratch_.data() + got);
      // A short read means the socket is drained; level-triggered epoll will
      // tell us when more comes, so skip the read that would say EAGAIN.
      if (got < scratch_.size()) break;
    }
    return true;
  }

  bool write_some(Connection& c) {
    while (c.owed() > 0) {
      ssize_t n = send(c.fd, c.pending.data() + c.head, c.owed(), MSG_NOSIGNAL);
      if (n > 0) {
        c.head += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) break;
      return false;
    }
    if (c.owed() == 0) {
      c.pending.clear();
      c.head = 0;
    } else if (c.head > kHighMark) {
      c.pending.erase(c.pending.begin(), c.pending.begin() + static_cast<long>(c.head));
      c.head = 0;
    }
    return true;
  }

  void update_interest(Connection& c) {
    uint32_t want = 0;
    if (!c.peer_done && c.owed() < kHighMark) want |= EPOLLIN;
    if (c.owed() > 0) want |= EPOLLOUT;
    if (want != c.events) {
      c.events = want;
      watch(c.fd, want, EPOLL_CTL_MOD);
    }
  }

  void drop(int fd) {
    close(fd);  // also removes it from the epoll set
    connections_.erase(fd);
  }

  int listener_;
  int signal_fd_;
  int epoll_ = -1;
  int spare_ = -1;
  std::vector<char> scratch_ = std::vector<char>(kReadChunk);
  std::unordered_map<int, std::unique_ptr<Connection>> connections_;
};

}  // namespace

int main(int argc, char** argv) {
  program_name = "echo-epoll";
  ListenFlags address;
  for (ArgReader args(argc, argv, kUsage); args.next();) {
    if (!address.take(args)) args.unknown();
  }

  raise_fd_limit();
  sigset_t stop_signals = block_stop_signals();
  int signal_fd = signalfd(-1, &stop_signals, SFD_NONBLOCK | SFD_CLOEXEC);
  if (signal_fd < 0) fatal("signalfd");

  int listener = listen_on(address.host, address.port);
  {
    Server server(listener, signal_fd);
    server.run();
  }
  close(listener);
  close(signal_fd);
  return 0;
}
