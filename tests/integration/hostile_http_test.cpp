// Hostile clients on loopback against a real daemon (issue 19): bytes that
// once ended or starved forkwatchd, framing tricks, slow and huge senders,
// and a seeded fuzz of mutated requests. Every reply must be well-formed
// HTTP with a JSON error, and the daemon must stay alive and unchanged.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <random>

#include "daemon_harness.h"
#include "workers_support.h"

using namespace fwtest;

namespace {

// A raw TCP connection from `source` (any 127.0.0.0/8 address) to the daemon.
int connect_from(int port, const char* source = "127.0.0.1") {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  // The port is left to connect(), which may reuse one in TIME_WAIT toward
  // another peer: thousands of short connections would exhaust bind()'s.
  int one = 1;
  setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
  sockaddr_in src{};
  src.sin_family = AF_INET;
  inet_pton(AF_INET, source, &src.sin_addr);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof src) == 0);
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(static_cast<uint16_t>(port));
  dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&dst), sizeof dst) == 0);
  return fd;
}

// Everything the peer sends until it closes or `timeout` passes.
std::string read_to_end(int fd, std::chrono::milliseconds timeout = 5s) {
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[65536];
  for (;;) {
    int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                    deadline - std::chrono::steady_clock::now()).count());
    if (left <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, left) != 1) break;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

// Sends `bytes`, shuts down the sending side, returns all that came back.
std::string exchange(int port, const std::string& bytes, const char* source = "127.0.0.1") {
  int fd = connect_from(port, source);
  size_t sent = 0;
  while (sent < bytes.size()) {
    ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // the daemon refused and closed early: its reply is still readable
    sent += static_cast<size_t>(n);
  }
  ::shutdown(fd, SHUT_WR);
  std::string reply = read_to_end(fd);
  // Closed with a reset, once the reply is in: this side shut down first, and
  // thousands of sockets in TIME_WAIT would hold as many ephemeral ports for
  // a minute, which other tests' daemons then cannot bind.
  linger hard{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
  ::close(fd);
  return reply;
}

struct Reply {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
};

// Splits a byte stream into HTTP/1.1 replies; nullopt when any is malformed
// or cut short (every reply must carry its Content-Length or be chunked).
std::optional<std::vector<Reply>> parse_replies(std::string_view s) {
  std::vector<Reply> out;
  while (!s.empty()) {
    size_t end = s.find("\r\n\r\n");
    if (end == std::string_view::npos || !s.starts_with("HTTP/1.1 ") || s.size() < 12) return std::nullopt;
    Reply r;
    r.status = std::atoi(std::string(s.substr(9, 3)).c_str());
    if (r.status < 100 || r.status > 599) return std::nullopt;
    std::string_view head = s.substr(0, end);
    size_t pos = head.find("\r\n");
    while (pos != std::string_view::npos) {
      size_t next = head.find("\r\n", pos + 2);
      std::string_view line = head.substr(pos + 2, next == std::string_view::npos ? next : next - pos - 2);
      size_t colon = line.find(':');
      if (colon == std::string_view::npos) return std::nullopt;
      std::string name(line.substr(0, colon));
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      std::string_view value = line.substr(colon + 1);
      while (value.starts_with(' ')) value.remove_prefix(1);
      r.headers[name] = value;
      pos = next;
    }
    s.remove_prefix(end + 4);
    if (r.status == 100) continue;  // an interim reply before the real one
    if (auto cl = r.headers.find("content-length"); cl != r.headers.end()) {
      size_t n = std::stoul(cl->second);
      if (s.size() < n) return std::nullopt;
      r.body = s.substr(0, n);
      s.remove_prefix(n);
    } else if (r.headers["transfer-encoding"] == "chunked") {
      for (;;) {
        size_t eol = s.find("\r\n");
        if (eol == std::string_view::npos) return std::nullopt;
        size_t n = std::stoul(std::string(s.substr(0, eol)), nullptr, 16);
        s.remove_prefix(eol + 2);
        if (s.size() < n + 2) return std::nullopt;
        r.body.append(s.substr(0, n));
        s.remove_prefix(n + 2);
        if (n == 0) break;
      }
    } else {
      return std::nullopt;
    }
    out.push_back(std::move(r));
  }
  return out;
}

// One reply, a 4xx whose body is CONTRACT.md's JSON error with `code`.
void expect_refusal(const std::string& raw, int status, const std::string& code) {
  INFO(raw.substr(0, 400));
  auto replies = parse_replies(raw);
  REQUIRE(replies);
  REQUIRE(replies->size() == 1);
  const Reply& r = replies->front();
  CHECK(r.status == status);
  auto j = Json::parse(r.body, nullptr, false);
  REQUIRE(j.is_object());
  CHECK(j["error"]["code"] == code);
  CHECK(!j["error"]["message"].get<std::string>().empty());
}

std::string auth_header(const Daemon& d) { return "Authorization: Bearer " + d.token() + "\r\n"; }

// The daemon's resident memory, in KiB.
long vmrss_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.starts_with("VmRSS:")) return std::stol(line.substr(6));
  return -1;
}

// What "state unchanged" means: every worker's id, pid, state and restarts.
std::string workers_fingerprint(const Daemon& d) {
  auto r = d.get("/api/workers");
  REQUIRE(r.status == 200);
  std::string out;
  const Json j = r.json();
  for (const auto& w : j["workers"])
    out += w["id"].dump() + ":" + w["pid"].dump() + ":" + w["state"].get<std::string>() + ":" +
           w["restarts"].dump() + " ";
  return out;
}

}  // namespace

TEST_CASE("invalid UTF-8 and overflowing numbers get 4xx JSON errors, and the daemon lives", "[integration]") {
  Daemon d;
  // Once: SIGABRT from nlohmann's type_error 316 while the 404 rendered the path.
  for (const char* target : {"/%ff", "/api/%ff", "/api/workers/%ff", "/api/workers/1/%ff%fe"}) {
    for (const char* method : {"PUT", "GET", "POST", "DELETE"}) {
      std::string raw = exchange(d.port(), std::string(method) + " " + target +
                                               " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n" +
                                               auth_header(d) + "\r\n");
      INFO(method << " " << target << " -> " << raw);
      auto replies = parse_replies(raw);
      REQUIRE(replies);
      REQUIRE(replies->size() == 1);
      CHECK(replies->front().status >= 400);
      CHECK(replies->front().status < 500);
      CHECK(Json::parse(replies->front().body, nullptr, false).is_object());
    }
  }
  expect_refusal(exchange(d.port(), "GET \xd7" "api/tree HTTP/1.1\r\nHost: 127.0.0.1\r\n" + auth_header(d) + "\r\n"),
                 400, "bad_request");
  for (std::string body : {std::string(R"({"program":"exit-with","max_restarts":1e400})"),
                           std::string("{\"program\":\"exit-with\",\"name\":\"\xff\xfe\"}")}) {
    auto r = d.post("/api/workers", body);
    INFO(body << " -> " << r.body);
    CHECK(r.status == 400);
    CHECK(r.json()["error"]["code"] == "malformed_json");
  }
  auto params = d.get("/api/history?worker=%ff&limit=%fe");
  CHECK(params.status == 422);
  CHECK(params.json().is_object());
  CHECK(d.request("GET", "/api/health", "", {}, false).status == 200);
  CHECK(d.get("/api/workers").json()["workers"].empty());
}

TEST_CASE("framing tricks are 400, and pipelined requests are all answered in order", "[integration]") {
  Daemon d;
  const std::string a = auth_header(d);
  expect_refusal(exchange(d.port(), "POST /api/workers HTTP/1.1\r\nHost: 127.0.0.1\r\n" + a +
                                        "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
                 400, "bad_request");
  expect_refusal(exchange(d.port(), "GET /api/workers HTTP/1.1\r\nHost: 127.0.0.1\r\nNoColonHere\r\n" + a + "\r\n"),
                 400, "bad_request");
  expect_refusal(exchange(d.port(), "GET /api/workers HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Name: x\r\n" + a + "\r\n"),
                 400, "bad_request");
  expect_refusal(exchange(d.port(), "GET /api/workers HTTP/1.1\nHost: 127.0.0.1\n" + a + "\n"), 400, "bad_request");

  // Three on one connection, sent at once: three answers, in order.
  std::string three;
  for (const char* path : {"/api/health", "/api/workers/999", "/api/programs"})
    three += std::string("GET ") + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + a + "\r\n";
  auto replies = parse_replies(exchange(d.port(), three));
  REQUIRE(replies);
  REQUIRE(replies->size() == 3);
  CHECK((*replies)[0].status == 200);
  CHECK(Json::parse((*replies)[0].body)["status"] == "ok");
  CHECK((*replies)[1].status == 404);
  CHECK((*replies)[2].status == 200);
  CHECK(Json::parse((*replies)[2].body).contains("programs"));

  // A chunked body is read and decoded like any other.
  std::string body = R"({"program":"nope"})";
  char size[16];
  snprintf(size, sizeof size, "%zx", body.size());
  auto chunked = parse_replies(exchange(d.port(), "POST /api/workers HTTP/1.1\r\nHost: 127.0.0.1\r\n" + a +
                                                      "Transfer-Encoding: chunked\r\n\r\n" + size + "\r\n" + body +
                                                      "\r\n0\r\n\r\n"));
  REQUIRE(chunked);
  REQUIRE(chunked->size() == 1);
  CHECK(chunked->front().status == 404);
  CHECK(Json::parse(chunked->front().body)["error"]["code"] == "unknown_program");

  // The dashboard link's redirect stays on this origin.
  auto redirect = parse_replies(exchange(d.port(), "GET //evil.example/?token=" + d.token() +
                                                       " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
  REQUIRE(redirect);
  REQUIRE(redirect->size() == 1);
  CHECK(redirect->front().status == 303);
  CHECK(redirect->front().headers["location"] == "/");
}

TEST_CASE("oversized heads and bodies are refused while they arrive, and memory comes back", "[integration]") {
  // The memory measured is the gate's. Without process events: the proc
  // connector hears every fork on the machine, and while other tests fork by
  // the thousand its catch-up re-reads of /proc would be measured too.
  Daemon d({.args = {"--no-process-events"}});
  // The start is a daemon that has served: its first requests start pool
  // threads and their malloc arenas, which stay.
  for (int i = 0; i < 20; ++i) REQUIRE(d.post("/api/workers", R"({"program":"nope"})").status == 404);
  const long before = vmrss_kib(d.pid());
  // Header lines without end, as fast as the daemon takes them: it must
  // answer 431 and close long before a megabyte has gone.
  {
    int fd = connect_from(d.port());
    std::string chunk = "GET /api/workers HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    for (int i = 0; i < 1000; ++i) chunk += "X-Filler-" + std::to_string(i) + ": 0123456789abcdef\r\n";
    size_t sent = 0;
    while (sent < (64u << 20)) {
      ssize_t n = ::send(fd, chunk.data(), chunk.size(), MSG_NOSIGNAL);
      if (n <= 0) break;
      sent += static_cast<size_t>(n);
      chunk.assign(4096, 'y');  // then one endless header value
    }
    CHECK(sent < (16u << 20));  // what the kernel's socket buffers hold, not 64 MiB
    auto replies = parse_replies(read_to_end(fd));
    ::close(fd);
    REQUIRE(replies);
    REQUIRE(replies->size() == 1);
    CHECK(replies->front().status == 431);
  }
  // A chunked body past the 1 MiB limit: 413 without reading the rest.
  {
    int fd = connect_from(d.port());
    std::string head = "POST /api/workers HTTP/1.1\r\nHost: 127.0.0.1\r\n" + auth_header(d) +
                       "Transfer-Encoding: chunked\r\n\r\n";
    std::string chunk = "10000\r\n" + std::string(0x10000, 'a') + "\r\n";
    std::string all = head;
    for (int i = 0; i < 32; ++i) all += chunk;  // 2 MiB
    size_t sent = 0;
    while (sent < all.size()) {
      ssize_t n = ::send(fd, all.data() + sent, all.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) break;
      sent += static_cast<size_t>(n);
    }
    auto replies = parse_replies(read_to_end(fd));
    ::close(fd);
    REQUIRE(replies);
    REQUIRE(replies->size() == 1);
    CHECK(replies->front().status == 413);
  }
  CHECK(d.get("/api/health").status == 200);
  const long after = vmrss_kib(d.pid());
  INFO("VmRSS before " << before << " KiB, after " << after << " KiB");
#if defined(__SANITIZE_ADDRESS__)
  // AddressSanitizer's allocator quarantines what is freed (256 MiB by
  // default) to catch use after free, so resident memory does not come back
  // by design there (measured: +6.8 MiB). That the buffers are freed at all
  // is LeakSanitizer's check when the daemon exits.
  (void)after;
#else
  CHECK(after - before < 2048);
#endif
}

TEST_CASE("slow senders wait in the gate: authorized requests are answered beside 300 of them", "[integration]") {
  Daemon d;
  // 300 connections from ten addresses, each with half a request head: more
  // than the pool's 160 threads, which once all sat in recv() for them.
  std::vector<int> slow;
  for (int i = 0; i < 300; ++i) {
    std::string source = "127.0.0." + std::to_string(10 + i % 10);
    int fd = connect_from(d.port(), source.c_str());
    const char partial[] = "GET /api/workers HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
    REQUIRE(::send(fd, partial, sizeof partial - 1, MSG_NOSIGNAL) > 0);
    slow.push_back(fd);
  }
  for (int i = 0; i < 20; ++i) {
    auto r = d.get("/api/workers");
    REQUIRE(r.status == 200);
  }
  // The 65th unauthenticated connection from one address gets a 503 at once.
  std::vector<int> same;
  for (int i = 0; i < 64; ++i) same.push_back(connect_from(d.port(), "127.0.0.99"));
  REQUIRE(wait_until([&] { return d.get("/api/health").status == 200; }));
  expect_refusal(exchange(d.port(), "GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", "127.0.0.99"), 503, "busy");
  for (int fd : same) ::close(fd);
  for (int fd : slow) ::close(fd);
}

TEST_CASE("a request head that does not arrive whole within 10 s is answered 408 and closed", "[integration]") {
  Daemon d;
  int fd = connect_from(d.port());
  const char partial[] = "GET /api/workers HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  REQUIRE(::send(fd, partial, sizeof partial - 1, MSG_NOSIGNAL) > 0);
  const auto t0 = std::chrono::steady_clock::now();
  std::string raw;
  // A byte every 500 ms keeps each recv() busy but the head never ends.
  while (std::chrono::steady_clock::now() - t0 < 15s) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 500) == 1) {
      raw = read_to_end(fd, 2s);
      break;
    }
    if (::send(fd, "x", 1, MSG_NOSIGNAL) <= 0) break;
  }
  ::close(fd);
  expect_refusal(raw, 408, "request_timeout");
}

TEST_CASE("under --no-auth only a loopback Host is served and changes from another Origin are refused", "[integration]") {
  Daemon d({.args = {"--no-auth"}});
  auto rebind = d.request("GET", "/api/workers", "", {{"Host", "evil.example:7420"}}, false);
  CHECK(rebind.status == 403);
  CHECK(rebind.json()["error"]["code"] == "bad_host");
  auto csrf = d.request("POST", "/api/workers", R"({"program":"exit-with"})",
                        {{"Origin", "http://evil.example"}}, false);
  CHECK(csrf.status == 403);
  CHECK(csrf.json()["error"]["code"] == "bad_origin");
  CHECK(d.get("/api/workers").json()["workers"].empty());
  // Its own page and curl (no Origin) still work.
  auto own = d.request("POST", "/api/workers", R"({"program":"nope"})",
                       {{"Origin", "http://127.0.0.1:" + std::to_string(d.port())}}, false);
  CHECK(own.status == 404);
  CHECK(d.request("GET", "/api/workers", "", {}, false).status == 200);
}

TEST_CASE("no-auth is refused on a socket systemd bound to every address", "[integration]") {
  int sock = ::socket(AF_INET, SOCK_STREAM, 0);  // inherited: no close-on-exec
  REQUIRE(sock >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  REQUIRE(::bind(sock, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(sock, 8) == 0);
  const std::string state = make_temp_dir("fw-noauth");
  std::string err;
  // As systemd passes it: fd 3, LISTEN_PID the daemon's own pid ($$ survives exec).
  int status = workers_support::run_status(
      {"/bin/sh", "-c",
       "exec 3<&" + std::to_string(sock) + "; LISTEN_FDS=1 LISTEN_PID=$$ exec " + bin("forkwatchd") +
           " --no-auth --listen 127.0.0.1:0 --state-dir " + state},
      nullptr, &err);
  ::close(sock);
  std::filesystem::remove_all(state);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 2);
  CHECK(err.find("--no-auth is refused: the socket systemd passed is bound to 0.0.0.0") != std::string::npos);
}

// FORKWATCH_FUZZ_REQUESTS sets the count (bench/hostile_http.sh runs 20,000).
TEST_CASE("fuzz: 3,000 mutated requests, with and without a token, never crash or change the daemon",
          "[integration]") {
  const char* count_env = getenv("FORKWATCH_FUZZ_REQUESTS");
  const int count = count_env ? std::atoi(count_env) : 3000;
  Daemon d({.config = R"({"programs":[{"name":"keep","command":["exit-with","--sleep"]}]})"});
  REQUIRE(wait_until([&] { return workers_fingerprint(d).find(":running:") != std::string::npos; }));
  const std::string before = workers_fingerprint(d);
  const std::string a = auth_header(d);
  // Valid requests that change nothing when they succeed: reads, and
  // changes aimed at workers and programs that do not exist.
  const std::vector<std::string> seeds = {
      "GET /api/workers HTTP/1.1\r\nHost: 127.0.0.1\r\n" + a + "\r\n",
      "GET /api/history?limit=5&worker=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n" + a + "\r\n",
      "GET /api/tree?scope=supervised HTTP/1.1\r\nHost: 127.0.0.1\r\n" + a + "\r\n",
      "GET /api/workers/1/logs?tail=5&stream=stdout HTTP/1.1\r\nHost: 127.0.0.1\r\n" + a + "\r\n",
      "GET /api/processes/1 HTTP/1.1\r\nHost: 127.0.0.1\r\n" + a + "\r\n",
      "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
      "GET /?token=" + d.token() + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
      "POST /api/workers HTTP/1.1\r\nHost: 127.0.0.1\r\n" + a +
          "Content-Length: 44\r\n\r\n{\"program\":\"nope\",\"args\":[\"--code\",\"12\"]}  ",
      "POST /api/workers/77/signal HTTP/1.1\r\nHost: 127.0.0.1\r\n" + a +
          "Content-Length: 20\r\n\r\n{\"signal\":\"SIGSTOP\"}",
      "POST /api/workers/77/stop HTTP/1.1\r\nHost: 127.0.0.1\r\n" + a + "Content-Length: 0\r\n\r\n",
      "DELETE /api/workers/78 HTTP/1.1\r\nHost: 127.0.0.1\r\n" + a + "\r\n",
      "POST /api/workers HTTP/1.1\r\nHost: 127.0.0.1\r\n" + a +
          "Transfer-Encoding: chunked\r\n\r\n10\r\n{\"program\":\"no\"}\r\n0\r\n\r\n",
  };
  std::mt19937 rng(20261201);
  auto pick = [&](size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); };
  const char* specials[] = {"\r\n", "\n", "\r", "\0", "\xff", "%ff", "%00", ":", " ", "\t", "Content-Length: 5\r\n",
                            "Transfer-Encoding: chunked\r\n", "1e400", "\"\\ud800\"", "{", "[", "-1", "99999999999999999999"};
  int crashes = 0, server_errors = 0, malformed = 0;
  std::string first_bad;
  for (int i = 0; i < count; ++i) {
    std::string req = seeds[pick(seeds.size())];
    if (i % 2 == 1) {  // half without the token
      size_t at = req.find(a);
      if (at != std::string::npos) req.erase(at, a.size());
    }
    const size_t edits = 1 + pick(4);
    for (size_t e = 0; e < edits && !req.empty(); ++e) {
      size_t at = pick(req.size());
      switch (pick(5)) {
        case 0: req[at] = static_cast<char>(pick(256)); break;
        case 1: req.erase(at, 1 + pick(8)); break;
        case 2: { const char* s = specials[pick(std::size(specials))]; req.insert(at, s, std::max<size_t>(1, strlen(s))); break; }
        case 3: req.insert(at, req.substr(pick(req.size()), pick(40))); break;
        default: req.resize(at); break;
      }
    }
    if (req.empty()) continue;
    std::string raw = exchange(d.port(), req);
    auto replies = parse_replies(raw);
    if (!replies || replies->empty()) {
      ++malformed;
      if (first_bad.empty()) first_bad = req + " => " + raw;
    } else {
      for (const auto& r : *replies) server_errors += r.status >= 500;
    }
    if (i % 500 == 499 && d.request("GET", "/api/health", "", {}, false).status != 200) ++crashes;
  }
  INFO("first malformed exchange: " << first_bad);
  CHECK(crashes == 0);
  CHECK(server_errors == 0);
  CHECK(malformed == 0);
  CHECK(::kill(d.pid(), 0) == 0);
  CHECK(workers_fingerprint(d) == before);
}
