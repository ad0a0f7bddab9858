// bench-sse-clients: N server-sent-event clients on GET /api/events of a
// forkwatchd on 127.0.0.1, one epoll thread, counting each client's `exit`
// events, until every client has E of them or the deadline passes. Python
// could not read 1,000 streams of a 10,000-exit storm (gigabytes of frames)
// as fast as the daemon writes them. Loopback only; bounded by --seconds.
//
//   bench-sse-clients --port P [--clients N] [--exits E] [--seconds S]
//   prints "connected N", then "clients with every exit: K/N (min, max), last at T ms"
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

constexpr char kExit[] = "\nevent: exit\n";
constexpr size_t kExitLen = sizeof kExit - 1;

struct Client {
  int fd = -1;
  size_t exits = 0;
  std::string carry;  // the tail of the last read, where a marker may start
  bool head_ok = false;
};

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

int main(int argc, char** argv) {
  int port = 0, clients = 1000, seconds = 120;
  size_t exits = 10000;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--port")) port = std::atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--clients")) clients = std::atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--exits")) exits = std::strtoul(argv[i + 1], nullptr, 10);
    else if (!strcmp(argv[i], "--seconds")) seconds = std::atoi(argv[i + 1]);
  }
  if (port <= 0) {
    std::fprintf(stderr, "usage: bench-sse-clients --port P [--clients N] [--exits E] [--seconds S]\n");
    return 2;
  }
  rlimit rl{static_cast<rlim_t>(clients + 64), static_cast<rlim_t>(clients + 64)};
  setrlimit(RLIMIT_NOFILE, &rl);
  std::vector<Client> cs(static_cast<size_t>(clients));
  int ep = epoll_create1(EPOLL_CLOEXEC);
  static const char kReq[] = "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n";
  // One at a time, each until its status line: the gate admits at most 64
  // not-yet-served connections from one address (docs/API.md, "Limits").
  for (size_t i = 0; i < cs.size(); ++i) {
    Client& c = cs[i];
    c.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c.fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || send(c.fd, kReq, sizeof kReq - 1, 0) < 0) {
      std::perror("connect");
      return 1;
    }
    char buf[4096];
    ssize_t n = recv(c.fd, buf, sizeof buf, 0);
    if (n < 12 || std::memcmp(buf, "HTTP/1.1 200", 12) != 0) {
      std::fprintf(stderr, "client %zu refused: %.*s\n", i, static_cast<int>(std::max<ssize_t>(n, 0)), buf);
      close(c.fd);
      --i;
      usleep(50'000);
      continue;
    }
    c.carry.assign(buf, static_cast<size_t>(n));
    epoll_event ev{EPOLLIN, {.u64 = i}};
    epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
  }
  std::printf("connected %d\n", clients);
  std::fflush(stdout);
  const int64_t start = now_ms(), end = start + seconds * 1000LL;
  int64_t last_done = 0;
  size_t done = 0;
  std::vector<char> buf(1 << 18);
  epoll_event evs[256];
  while (done < cs.size() && now_ms() < end) {
    int n = epoll_wait(ep, evs, 256, 200);
    for (int k = 0; k < n; ++k) {
      Client& c = cs[evs[k].data.u64];
      ssize_t r = recv(c.fd, buf.data(), buf.size(), MSG_DONTWAIT);
      if (r <= 0) {
        epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
        continue;
      }
      const size_t before = c.exits;
      c.carry.append(buf.data(), static_cast<size_t>(r));
      const char* p = c.carry.data();
      const char* e = p + c.carry.size();
      while ((p = static_cast<const char*>(memmem(p, static_cast<size_t>(e - p), kExit, kExitLen)))) {
        ++c.exits;
        p += kExitLen;
      }
      // Keep what a marker cut by this read may start with.
      c.carry.erase(0, c.carry.size() - std::min(c.carry.size(), kExitLen - 1));
      if (before < exits && c.exits >= exits) {
        ++done;
        last_done = now_ms() - start;
      }
    }
  }
  size_t lo = SIZE_MAX, hi = 0;
  for (const Client& c : cs) {
    lo = std::min(lo, c.exits);
    hi = std::max(hi, c.exits);
  }
  std::printf("clients with every exit: %zu/%zu (min %zu, max %zu of %zu), last complete %lld ms after reading began\n",
              done, cs.size(), lo, hi, exits, static_cast<long long>(last_done));
  return done == cs.size() ? 0 : 1;
}
