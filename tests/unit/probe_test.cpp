// Probes against real loopback sockets in this process: a tcp connect, an
// HTTP GET whose status decides, a refused port, a server that never answers.
#include "probe.h"

#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <thread>

#include "event.h"

using namespace forkwatch;

TEST_CASE("probe: the HTTP status line decides, and nothing else is taken for one", "[unit]") {
  CHECK(parse_http_status("HTTP/1.1 200 OK\r\n\r\n") == 200);
  CHECK(parse_http_status("HTTP/1.0 503 Service Unavailable\r\n") == 503);
  CHECK(parse_http_status("HTTP/1.1 204\r\n") == 204);
  CHECK_FALSE(parse_http_status("HTTP/1.1 200 OK"));  // not a whole line yet
  CHECK_FALSE(parse_http_status("SSH-2.0-OpenSSH\r\n"));
  CHECK_FALSE(parse_http_status("HTTP/1.1 2000 OK\r\n"));
  CHECK_FALSE(parse_http_status("HTTP/1.1 099 x\r\n"));
  CHECK(http_probe_request("127.0.0.1", 8080, "/health") ==
        "GET /health HTTP/1.0\r\nHost: 127.0.0.1:8080\r\nUser-Agent: forkwatch-probe\r\nConnection: close\r\n\r\n");
  CHECK(probe_address("localhost"));
  CHECK(probe_address("127.0.0.1"));
  CHECK_FALSE(probe_address("example.com"));
}

namespace {
struct Listener {
  int fd = -1, port = 0;
  Listener() {
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(listen(fd, 16) == 0);
    socklen_t len = sizeof a;
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
  }
  ~Listener() { close(fd); }
};

// Runs one probe to its end on a real loop.
std::pair<bool, std::string> probe(const ProbeSpec& spec, int64_t timeout_ms) {
  auto loop = std::move(*EventLoop::create());
  ProbeRunner runner(*loop);
  std::optional<std::pair<bool, std::string>> result;
  runner.start(1, spec, timeout_ms, [&](bool ok, std::string d) {
    result.emplace(ok, std::move(d));
    loop->stop();
  });
  if (!result) loop->run();
  REQUIRE(result);
  CHECK(runner.in_flight() == 0);
  return *result;
}
}  // namespace

TEST_CASE("probe: tcp passes on a listening port and fails on a closed one", "[unit]") {
  ProbeSpec spec;
  spec.kind = ProbeKind::kTcp;
  {
    Listener l;
    spec.port = l.port;
    auto [ok, detail] = probe(spec, 1000);
    CHECK(ok);
    CHECK(detail == "connected");
  }
  auto [ok, detail] = probe(spec, 1000);  // the listener is gone
  CHECK_FALSE(ok);
  CHECK(detail.find("connect: Connection refused") != std::string::npos);
}

TEST_CASE("probe: http passes on 200..399, fails on 503 and on a server that never answers", "[unit]") {
  for (auto [reply, pass] : {std::pair{"HTTP/1.1 302 Found\r\n\r\n", true}, {"HTTP/1.1 503 Busy\r\n\r\n", false}}) {
    Listener l;
    std::thread server([&, reply = std::string(reply)] {
      int c = accept(l.fd, nullptr, nullptr);
      char buf[1024];
      std::string got;
      while (got.find("\r\n\r\n") == std::string::npos) {
        ssize_t n = read(c, buf, sizeof buf);
        if (n <= 0) break;
        got.append(buf, n);
      }
      CHECK(got.rfind("GET /ready HTTP/1.0\r\n", 0) == 0);
      CHECK(write(c, reply.data(), reply.size()) == static_cast<ssize_t>(reply.size()));
      close(c);
    });
    ProbeSpec spec;
    spec.kind = ProbeKind::kHttp;
    spec.url = "http://127.0.0.1:" + std::to_string(l.port) + "/ready";
    auto [ok, detail] = probe(spec, 2000);
    server.join();
    CHECK(ok == pass);
    CHECK(detail.rfind("HTTP ", 0) == 0);
  }
  Listener silent;  // accepts (the backlog does) and never answers
  ProbeSpec spec;
  spec.kind = ProbeKind::kHttp;
  spec.url = "http://127.0.0.1:" + std::to_string(silent.port) + "/";
  const int64_t t0 = monotonic_ns();
  auto [ok, detail] = probe(spec, 150);
  CHECK_FALSE(ok);
  CHECK(detail == "timed out after 150 ms");
  CHECK(monotonic_ns() - t0 >= 150'000'000);
}
