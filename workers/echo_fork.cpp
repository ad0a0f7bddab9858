// echo-fork: an echo server with one process per client, the oldest model.
//
// The parent accepts and forks; the child closes the listening socket and
// echoes, the parent closes the client socket. Dead children are reaped by a
// SIGCHLD handler installed with sigaction, which calls waitpid(-1, WNOHANG)
// in a loop until nothing is left: signals coalesce, so one SIGCHLD may stand
// for many exits, and one waitpid per signal would leave zombies. The handler
// saves and restores errno because it interrupts code that is about to read it.
// The handler is installed without SA_RESTART, so a blocked call returns EINTR
// when a child dies; the accept loop retries instead of treating it as fatal.
//
// SIGTERM/SIGINT are blocked and only let in by ppoll, so the flag they set is
// never missed between a check and a blocking call. On SIGTERM the parent stops
// accepting, sends SIGTERM to every live child through its pidfd (a pidfd names
// one process, never a recycled pid), reaps them all and exits 0.

#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "common.h"

using namespace forkwatch::workers;

namespace {

constexpr const char* kUsage =
    "usage: echo-fork [--port P] [--host ADDR]\n"
    "\n"
    "Echo server, one process per client; SIGCHLD reaped with sigaction.\n"
    "  --port P     TCP port; 0 (default) lets the kernel pick\n"
    "  --host ADDR  IPv4 address to bind (default 127.0.0.1)\n"
    "  --help       show this text\n"
    "Prints 'listening on port N' once listening. Serves until SIGTERM or SIGINT,\n"
    "then ends every client process and exits 0.\n";

// glibc 2.36's <sys/pidfd.h> lacks extern "C", so C++ cannot link its
// wrappers; the raw system calls are just as simple.
int pidfd_open(pid_t pid) { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }
int pidfd_send_signal(int pidfd, int sig) {
  return static_cast<int>(syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

volatile sig_atomic_t g_reaped = 0;  // bumped per reaped child; tells main to prune pidfds

void on_sigchld(int) {
  int saved_errno = errno;
  while (waitpid(-1, nullptr, WNOHANG) > 0) g_reaped = g_reaped + 1;
  errno = saved_errno;
}

void install(int sig, void (*handler)(int)) {
  struct sigaction sa {};
  sa.sa_handler = handler;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_NOCLDSTOP;  // no SA_RESTART: see the file comment
  if (sigaction(sig, &sa, nullptr) != 0) fatal("sigaction");
}

// The child's whole life: copy until EOF, then close. MSG_NOSIGNAL so a
// client that vanished gives EPIPE instead of killing us with SIGPIPE.
[[noreturn]] void serve_client(int fd) {
  char buf[64 * 1024];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      _exit(1);
    }
    for (ssize_t off = 0; off < n;) {
      ssize_t w = send(fd, buf + off, static_cast<size_t>(n - off), MSG_NOSIGNAL);
      if (w < 0) {
        if (errno == EINTR) continue;
        _exit(1);
      }
      off += w;
    }
  }
  close(fd);
  _exit(0);
}

// Close the pidfds of children that have exited (a pidfd polls readable then).
void prune(std::vector<int>& pidfds) {
  std::vector<pollfd> fds;
  for (int fd : pidfds) fds.push_back({fd, POLLIN, 0});
  if (poll(fds.data(), fds.size(), 0) <= 0) return;
  std::vector<int> alive;
  for (const auto& p : fds) {
    if (p.revents & POLLIN) {
      close(p.fd);
    } else {
      alive.push_back(p.fd);
    }
  }
  pidfds.swap(alive);
}

}  // namespace

int main(int argc, char** argv) {
  program_name = "echo-fork";
  ListenFlags address;
  for (ArgReader args(argc, argv, kUsage); args.next();) {
    if (!address.take(args)) args.unknown();
  }

  raise_fd_limit();  // one pidfd per client

  sigset_t run_mask, chld_only;
  block_stop_signals(&run_mask);
  sigemptyset(&chld_only);
  sigaddset(&chld_only, SIGCHLD);
  sigdelset(&run_mask, SIGTERM);  // the mask ppoll waits with: everything let in
  sigdelset(&run_mask, SIGINT);
  sigdelset(&run_mask, SIGCHLD);
  catch_stop_signals();
  install(SIGCHLD, on_sigchld);

  int listener = listen_on(address.host, address.port);
  std::vector<int> pidfds;
  sig_atomic_t seen_reaped = 0;

  while (!stop_requested) {
    pollfd p{listener, POLLIN, 0};
    int ready = ppoll(&p, 1, nullptr, &run_mask);
    if (ready < 0 && errno != EINTR) fatal("ppoll");
    if (seen_reaped != g_reaped) {
      seen_reaped = g_reaped;
      prune(pidfds);
    }
    if (ready <= 0 || stop_requested) continue;

    int client = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) {
      // EINTR: a child died mid-accept, try again. EAGAIN: another waiter won.
      if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE) {
        std::fprintf(stderr, "echo-fork: accept: %s\n", std::strerror(errno));
        continue;  // the queued client waits until a child exits
      }
      fatal("accept");
    }

    // SIGCHLD stays blocked from fork until the pidfd is open, so the handler
    // cannot reap the child first and leave us naming a pid that is gone.
    sigprocmask(SIG_BLOCK, &chld_only, nullptr);
    pid_t pid = fork();
    if (pid == 0) {
      close(listener);
      for (int fd : pidfds) close(fd);
      std::signal(SIGTERM, SIG_DFL);
      std::signal(SIGINT, SIG_DFL);
      std::signal(SIGCHLD, SIG_DFL);
      sigset_t none;
      sigemptyset(&none);
      sigprocmask(SIG_SETMASK, &none, nullptr);
      prctl(PR_SET_NAME, "echo-fork-child", 0, 0, 0);
      serve_client(client);
    }
    int saved = errno;
    close(client);  // the child has its copy; ours would keep the connection open
    if (pid < 0) {
      std::fprintf(stderr, "echo-fork: fork: %s\n", std::strerror(saved));
    } else {
      int pidfd = pidfd_open(pid);
      if (pidfd >= 0) {
        pidfds.push_back(pidfd);
      } else {
        std::fprintf(stderr, "echo-fork: pidfd_open(%d): %s\n", pid, std::strerror(errno));
      }
    }
    sigprocmask(SIG_UNBLOCK, &chld_only, nullptr);
  }

  close(listener);
  sigprocmask(SIG_BLOCK, &chld_only, nullptr);  // from here we reap ourselves, blocking
  for (int fd : pidfds) {
    pidfd_send_signal(fd, SIGTERM);  // ESRCH if already gone: fine
    close(fd);
  }
  for (;;) {
    if (waitpid(-1, nullptr, 0) < 0) {
      if (errno == EINTR) continue;
      break;  // ECHILD: every child reaped
    }
  }
  return 0;
}
