// The floor for the API's wrk figures: the least an HTTP/1.1 keep-alive
// server can do on this machine. One thread, epoll, a fixed reply of
// --body-bytes to every request; no parsing beyond finding the head's end.
// Loopback only; stops by itself after --seconds.
//
//   bench-http-floor [--body-bytes N] [--seconds S] [--threads T]
//   prints "port P", then serves; run wrk against http://127.0.0.1:P/
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

int main(int argc, char** argv) {
  size_t body_bytes = 38'000;
  int seconds = 30, threads = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--body-bytes")) body_bytes = std::strtoul(argv[i + 1], nullptr, 10);
    else if (!strcmp(argv[i], "--seconds")) seconds = std::atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--threads")) threads = std::atoi(argv[i + 1]);
  }
  const std::string reply = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
                            std::to_string(body_bytes) + "\r\n\r\n" + std::string(body_bytes, 'x');
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(lfd, SOMAXCONN) != 0) return 1;
  socklen_t len = sizeof a;
  getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len);
  std::printf("port %d\n", ntohs(a.sin_port));
  std::fflush(stdout);
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  auto serve = [&] {
    int ep = epoll_create1(EPOLL_CLOEXEC);
    epoll_event ev{EPOLLIN | EPOLLEXCLUSIVE, {.fd = lfd}};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    std::unordered_map<int, std::string> in;
    epoll_event evs[64];
    while (std::chrono::steady_clock::now() < end) {
      int n = epoll_wait(ep, evs, 64, 100);
      for (int i = 0; i < n; ++i) {
        int fd = evs[i].data.fd;
        if (fd == lfd) {
          for (int c; (c = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC)) >= 0;) {
            int one = 1;
            setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            epoll_event cev{EPOLLIN, {.fd = c}};
            epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
          }
          continue;
        }
        char buf[16384];
        ssize_t r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);  // sends block: a reply goes whole
        if (r < 0 && errno == EAGAIN) continue;
        if (r <= 0) {
          in.erase(fd);
          close(fd);
          continue;
        }
        std::string& s = in[fd];
        s.append(buf, static_cast<size_t>(r));
        for (size_t at; (at = s.find("\r\n\r\n")) != std::string::npos;) {
          s.erase(0, at + 4);
          size_t done = 0;
          while (done < reply.size()) {
            ssize_t w = send(fd, reply.data() + done, reply.size() - done, MSG_NOSIGNAL);
            if (w <= 0) break;
            done += static_cast<size_t>(w);
          }
        }
      }
    }
  };
  std::vector<std::thread> ts;
  for (int t = 1; t < threads; ++t) ts.emplace_back(serve);
  serve();
  for (auto& t : ts) t.join();
}
