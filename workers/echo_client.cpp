// echo-client: the split-I/O echo client, and a load generator.
//
// Split mode (default): after connecting, the process forks. The child copies
// stdin to the socket and, at end of input, shutdown(SHUT_WR)s it, which tells
// the server "no more" while the connection stays open for the echo. The
// parent copies the socket to stdout until the server closes. Because sending
// and receiving are separate processes, sending never waits for receiving:
// a request/response loop in one process deadlocks as soon as both socket
// buffers fill, which a large stdin makes happen.
//
// Load mode (--load N --seconds S): N connections, each sending a --size byte
// message and waiting for its echo, over and over; every byte is checked.
// Prints round trips per second and latency percentiles, for benchmarks.

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common.h"

using namespace forkwatch::workers;

namespace {

constexpr const char* kUsage =
    "usage: echo-client --port P [--host ADDR]\n"
    "       echo-client --port P [--host ADDR] --load N --seconds S [--size B] [--threads T]\n"
    "\n"
    "Split mode: sends stdin to the echo server (in a child process) while the\n"
    "parent writes what comes back to stdout; exits 0 once the whole echo is back.\n"
    "Load mode: N connections send B-byte messages (default 64, at most 1 MiB) and\n"
    "wait for each echo, for S seconds, spread over T threads (default 1); prints\n"
    "  clients N seconds S round_trips R rate X/s p50_us A p99_us B max_us C errors E\n"
    "and exits 1 if any echo was wrong or a connection failed.\n"
    "SIGTERM or SIGINT ends either mode early with exit 0.\n";

constexpr long kMaxMessage = 1 << 20;

int64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int connect_to(const sockaddr_in& addr) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  while (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    if (errno == EINTR) continue;
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
  }
  return fd;
}

bool write_all(int fd, const char* data, size_t len) {
  while (len > 0) {
    ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

// ---- split mode ----

int run_split(const sockaddr_in& addr) {
  int sock = connect_to(addr);
  if (sock < 0) fatal("connect");

  sigset_t stop_signals = block_stop_signals();

  std::fflush(nullptr);
  pid_t writer = fork();
  if (writer < 0) fatal("fork");
  if (writer == 0) {
    sigprocmask(SIG_UNBLOCK, &stop_signals, nullptr);  // a group SIGTERM ends it
    char buf[64 * 1024];
    for (;;) {
      ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
      if (n == 0) break;
      if (n < 0) {
        if (errno == EINTR) continue;
        _exit(1);
      }
      if (!write_all(sock, buf, static_cast<size_t>(n))) _exit(1);
    }
    shutdown(sock, SHUT_WR);  // the server sees EOF; the read side stays open
    _exit(0);
  }

  int signal_fd = signalfd(-1, &stop_signals, SFD_CLOEXEC);
  if (signal_fd < 0) fatal("signalfd");
  bool stopped = false;
  bool read_failed = false;
  char buf[64 * 1024];
  for (;;) {
    pollfd fds[2] = {{sock, POLLIN, 0}, {signal_fd, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      fatal("poll");
    }
    if (fds[1].revents & POLLIN) {
      stopped = true;
      break;
    }
    ssize_t n = read(sock, buf, sizeof buf);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      std::fprintf(stderr, "echo-client: read: %s\n", std::strerror(errno));
      read_failed = true;
      break;
    }
    for (ssize_t off = 0; off < n;) {
      ssize_t w = write(STDOUT_FILENO, buf + off, static_cast<size_t>(n - off));
      if (w < 0) {
        if (errno == EINTR) continue;
        fatal("write stdout");
      }
      off += w;
    }
  }
  // Not yet reaped, so this pid is still our child: safe to signal.
  if (stopped || read_failed) kill(writer, SIGTERM);
  int status = wait_for_child(writer);
  close(sock);
  if (stopped) return 0;
  if (read_failed) return 1;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::fprintf(stderr, "echo-client: the writer process failed (status %d)\n", status);
    return 1;
  }
  return 0;
}

// ---- load mode ----

struct LoadConnection {
  int fd = -1;
  uint64_t serial = 0;  // messages completed; also seeds the next payload
  size_t sent = 0;
  size_t received = 0;
  int64_t started_ns = 0;
  bool watching_out = false;
};

struct LoadResult {
  std::vector<uint32_t> latencies_us;
  uint64_t errors = 0;
};

// Payload byte i of message `serial` on connection `id`: cheap, and different
// per connection and per message, so crossed or stale bytes are caught.
inline char payload_byte(size_t id, uint64_t serial, size_t i) {
  return static_cast<char>((id * 131 + serial * 31 + i * 7) & 0xff);
}

void fill_payload(std::vector<char>& out, size_t id, uint64_t serial) {
  for (size_t i = 0; i < out.size(); ++i) out[i] = payload_byte(id, serial, i);
}

class LoadWorker {
 public:
  LoadWorker(std::vector<int> fds, size_t first_id, size_t size, const std::atomic<bool>& stop)
      : size_(size),
        first_id_(first_id),
        stop_(stop),
        out_(size),
        in_(std::max<size_t>(size, 64 * 1024)) {
    epoll_ = epoll_create1(EPOLL_CLOEXEC);
    for (size_t i = 0; i < fds.size(); ++i) {
      LoadConnection c;
      c.fd = fds[i];
      conns_.push_back(c);
    }
    for (size_t i = 0; i < conns_.size(); ++i) {
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u64 = i;
      epoll_ctl(epoll_, EPOLL_CTL_ADD, conns_[i].fd, &ev);
    }
  }
  ~LoadWorker() {
    for (auto& c : conns_) close(c.fd);
    close(epoll_);
  }

  void run() {
    for (size_t i = 0; i < conns_.size(); ++i) start_message(i);
    std::vector<epoll_event> events(conns_.size() + 1);
    while (!stop_.load(std::memory_order_relaxed)) {
      int n = epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), 50);
      if (n < 0) {
        if (errno == EINTR) continue;
        ++result_.errors;
        return;
      }
      for (int k = 0; k < n; ++k) on_event(events[k].data.u64, events[k].events);
    }
  }

  LoadResult& result() { return result_; }

 private:
  size_t id(size_t index) const { return first_id_ + index; }

  void start_message(size_t index) {
    LoadConnection& c = conns_[index];
    if (c.fd < 0) return;
    c.sent = 0;
    c.received = 0;
    c.started_ns = now_ns();
    send_more(index);
  }

  void send_more(size_t index) {
    LoadConnection& c = conns_[index];
    fill_payload(out_, id(index), c.serial);
    while (c.sent < size_) {
      ssize_t n = send(c.fd, out_.data() + c.sent, size_ - c.sent, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        c.sent += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) break;
      return fail(index);
    }
    bool want_out = c.sent < size_;
    if (want_out != c.watching_out) {  // one epoll_ctl per change, not per message
      c.watching_out = want_out;
      epoll_event ev{};
      ev.events = EPOLLIN | (want_out ? EPOLLOUT : 0u);
      ev.data.u64 = index;
      epoll_ctl(epoll_, EPOLL_CTL_MOD, c.fd, &ev);
    }
  }

  void on_event(size_t index, uint32_t events) {
    LoadConnection& c = conns_[index];
    if (c.fd < 0) return;
    if (events & EPOLLIN) {
      for (;;) {
        ssize_t n = recv(c.fd, in_.data(), in_.size(), MSG_DONTWAIT);
        if (n == 0) return fail(index);
        if (n < 0) {
          if (errno == EAGAIN || errno == EINTR) break;
          return fail(index);
        }
        size_t got = static_cast<size_t>(n);
        if (c.received + got > c.sent) return fail(index);  // more back than we sent
        for (size_t i = 0; i < got; ++i) {
          if (in_[i] != payload_byte(id(index), c.serial, c.received + i)) return fail(index);
        }
        c.received += got;
        if (c.received == size_) {
          result_.latencies_us.push_back(static_cast<uint32_t>((now_ns() - c.started_ns) / 1000));
          ++c.serial;
          if (stop_.load(std::memory_order_relaxed)) return;
          start_message(index);
          return;
        }
        if (got < in_.size()) break;
      }
    }
    if ((events & EPOLLOUT) && c.sent < size_) send_more(index);
  }

  void fail(size_t index) {
    ++result_.errors;
    close(conns_[index].fd);  // also leaves the epoll set
    conns_[index].fd = -1;
  }

  size_t size_;
  size_t first_id_;
  const std::atomic<bool>& stop_;
  std::vector<char> out_;
  std::vector<char> in_;
  std::vector<LoadConnection> conns_;
  int epoll_ = -1;
  LoadResult result_;
};

int run_load(const sockaddr_in& addr, long clients, long seconds, long size, long threads) {
  raise_fd_limit();
  sigset_t stop_signals = block_stop_signals();

  std::vector<int> fds;
  for (long i = 0; i < clients; ++i) {
    int fd = connect_to(addr);
    if (fd < 0) fatal("connect #" + std::to_string(i + 1));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fds.push_back(fd);
  }

  std::atomic<bool> stop{false};
  std::vector<std::unique_ptr<LoadWorker>> workers;
  threads = std::min(threads, clients);
  size_t next = 0;
  for (long t = 0; t < threads; ++t) {
    size_t count = static_cast<size_t>(clients / threads + (t < clients % threads ? 1 : 0));
    std::vector<int> share(fds.begin() + static_cast<long>(next),
                           fds.begin() + static_cast<long>(next + count));
    workers.push_back(
        std::make_unique<LoadWorker>(std::move(share), next, static_cast<size_t>(size), stop));
    next += count;
  }

  int64_t start = now_ns();
  std::vector<std::thread> pool;
  for (auto& w : workers) pool.emplace_back([&w] { w->run(); });
  timespec timeout{static_cast<time_t>(seconds), 0};
  while (sigtimedwait(&stop_signals, nullptr, &timeout) < 0 && errno == EINTR) {
  }
  stop.store(true);
  for (auto& t : pool) t.join();
  double elapsed = static_cast<double>(now_ns() - start) / 1e9;

  std::vector<uint32_t> all;
  uint64_t errors = 0;
  for (auto& w : workers) {
    all.insert(all.end(), w->result().latencies_us.begin(), w->result().latencies_us.end());
    errors += w->result().errors;
  }
  std::sort(all.begin(), all.end());
  auto pct = [&all](double p) -> uint32_t {
    if (all.empty()) return 0;
    size_t i = static_cast<size_t>(p * static_cast<double>(all.size() - 1));
    return all[i];
  };
  std::printf(
      "clients %ld seconds %.2f round_trips %zu rate %.1f/s p50_us %u p99_us %u max_us %u errors "
      "%llu\n",
      clients, elapsed, all.size(), static_cast<double>(all.size()) / elapsed, pct(0.50), pct(0.99),
      all.empty() ? 0u : all.back(), static_cast<unsigned long long>(errors));
  std::fflush(stdout);
  return errors == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  program_name = "echo-client";
  std::optional<long> port;
  std::string host = "127.0.0.1";
  std::optional<long> load;
  std::optional<long> seconds;
  long size = 64;
  long threads = 1;
  for (ArgReader args(argc, argv, kUsage); args.next();) {
    if (args.is("--port")) {
      port = args.number(1, 65535);
    } else if (args.is("--host")) {
      host = args.value();
    } else if (args.is("--load")) {
      load = args.number(1, 100000);
    } else if (args.is("--seconds")) {
      seconds = args.number(1, 86400);
    } else if (args.is("--size")) {
      size = args.number(1, kMaxMessage);
    } else if (args.is("--threads")) {
      threads = args.number(1, 64);
    } else {
      args.unknown();
    }
  }
  if (!port) usage_error("--port P is required");
  if (load.has_value() != seconds.has_value()) usage_error("--load and --seconds go together");

  sockaddr_in addr = ipv4_address(host, *port);
  if (load) return run_load(addr, *load, *seconds, size, threads);
  return run_split(addr);
}
