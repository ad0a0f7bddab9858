// echo-threads: an echo server with one detached thread per client.
//
// Each client thread does plain blocking read/write. The set of client
// sockets is shared, so it sits behind a mutex: the main thread needs it to
// wake every client thread on shutdown. A client thread closes its own socket
// while holding that mutex, so the main thread can never shutdown() an fd
// number that was already closed and handed to somebody else.
//
// SIGTERM/SIGINT are blocked before any thread starts (threads inherit the
// mask) and read by the main thread from a signalfd. On SIGTERM it stops
// accepting, shuts down every client socket (which ends their blocking reads),
// waits until the last client thread has left, and exits 0. --max-clients
// bounds the number of threads: a client beyond it is closed at once.

#include <poll.h>
#include <pthread.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>

#include "common.h"

using namespace forkwatch::workers;

namespace {

constexpr const char* kUsage =
    "usage: echo-threads [--port P] [--host ADDR] [--max-clients N]\n"
    "\n"
    "Echo server, one thread per client; the client list is mutex-protected.\n"
    "  --port P          TCP port; 0 (default) lets the kernel pick\n"
    "  --host ADDR       IPv4 address to bind (default 127.0.0.1)\n"
    "  --max-clients N   at most N clients at once (default 1024); more are closed\n"
    "  --help            show this text\n"
    "Prints 'listening on port N' once listening. Serves until SIGTERM or SIGINT,\n"
    "then disconnects every client, waits for their threads and exits 0.\n";

constexpr size_t kBufferSize = 64 * 1024;

// The live client sockets. Shared by the main thread and every client thread.
class ClientList {
 public:
  explicit ClientList(size_t max) : max_(max) {}

  // False when full or shutting down; the caller then closes fd itself.
  bool add(int fd) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_ || fds_.size() >= max_) return false;
    fds_.insert(fd);
    return true;
  }

  // Called by a client thread as its very last act on shared state.
  void remove_and_close(int fd) {
    std::lock_guard<std::mutex> lock(mutex_);
    fds_.erase(fd);
    close(fd);
    if (fds_.empty()) empty_.notify_all();
  }

  // Wakes every client thread blocked on its socket and waits until all are gone.
  void shutdown_all() {
    std::unique_lock<std::mutex> lock(mutex_);
    stopping_ = true;
    for (int fd : fds_) shutdown(fd, SHUT_RDWR);
    empty_.wait(lock, [this] { return fds_.empty(); });
  }

 private:
  std::mutex mutex_;
  std::condition_variable empty_;
  std::unordered_set<int> fds_;  // guarded by mutex_; open sockets of live threads
  bool stopping_ = false;        // guarded by mutex_
  const size_t max_;
};

void serve_client(ClientList& clients, int fd, unsigned long serial) {
  std::string name = "client-" + std::to_string(serial % 10000000);
  pthread_setname_np(pthread_self(), name.c_str());
  char buf[kBufferSize];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    bool ok = true;
    for (ssize_t off = 0; off < n && ok;) {
      ssize_t w = send(fd, buf + off, static_cast<size_t>(n - off), MSG_NOSIGNAL);
      if (w > 0) {
        off += w;
      } else if (w < 0 && errno == EINTR) {
        continue;
      } else {
        ok = false;
      }
    }
    if (!ok) break;
  }
  clients.remove_and_close(fd);
}

}  // namespace

int main(int argc, char** argv) {
  program_name = "echo-threads";
  ListenFlags address;
  long max_clients = 1024;
  for (ArgReader args(argc, argv, kUsage); args.next();) {
    if (address.take(args)) {
      continue;
    } else if (args.is("--max-clients")) {
      max_clients = args.number(1, 100000);
    } else {
      args.unknown();
    }
  }

  raise_fd_limit();
  sigset_t stop_signals = block_stop_signals();
  int signal_fd = signalfd(-1, &stop_signals, SFD_CLOEXEC);
  if (signal_fd < 0) fatal("signalfd");

  int listener = listen_on(address.host, address.port);
  // Client threads are detached and may outlive main's locals only until
  // shutdown_all returns; the list lives as long as the process to be safe.
  static ClientList clients(static_cast<size_t>(max_clients));
  unsigned long serial = 0;
  bool refused_reported = false;

  for (;;) {
    pollfd fds[2] = {{listener, POLLIN, 0}, {signal_fd, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      fatal("poll");
    }
    if (fds[1].revents & POLLIN) break;
    if (!(fds[0].revents & POLLIN)) continue;
    int fd = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE) {
        std::fprintf(stderr, "echo-threads: accept: %s\n", std::strerror(errno));
        continue;
      }
      fatal("accept4");
    }
    if (!clients.add(fd)) {
      if (!refused_reported) {
        std::fprintf(stderr, "echo-threads: %ld clients connected, refusing more\n", max_clients);
        refused_reported = true;
      }
      close(fd);
      continue;
    }
    try {
      std::thread(serve_client, std::ref(clients), fd, ++serial).detach();
    } catch (const std::system_error& e) {
      std::fprintf(stderr, "echo-threads: cannot start a client thread: %s\n", e.what());
      clients.remove_and_close(fd);
    }
  }

  close(listener);
  clients.shutdown_all();
  close(signal_fd);
  return 0;
}
