#include "probe.h"

#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "event.h"
#include "parse_number.h"
#include "readiness_fields.h"

namespace forkwatch {

std::optional<int> parse_http_status(std::string_view response) {
  const size_t eol = response.find("\r\n");
  if (eol == std::string_view::npos) return std::nullopt;
  std::string_view line = response.substr(0, eol);
  if (line.substr(0, 7) != "HTTP/1." || line.size() < 12 || line[8] != ' ') return std::nullopt;
  auto code = parse_decimal<int>(line.substr(9, 3));
  if (!code || *code < 100 || *code > 599 || (line.size() > 12 && line[12] != ' ')) return std::nullopt;
  return code;
}

std::string http_probe_request(std::string_view host, int port, std::string_view path) {
  return "GET " + std::string(path) + " HTTP/1.0\r\nHost: " + std::string(host) + ":" + std::to_string(port) +
         "\r\nUser-Agent: forkwatch-probe\r\nConnection: close\r\n\r\n";
}

std::optional<in_addr> probe_address(std::string_view host) {
  in_addr a{};
  if (host == "localhost") host = "127.0.0.1";
  const std::string h(host);
  if (inet_pton(AF_INET, h.c_str(), &a) != 1) return std::nullopt;
  return a;
}

ProbeRunner::~ProbeRunner() {
  while (!running_.empty()) cancel(running_.begin()->first);
}

void ProbeRunner::cancel(int64_t key) {
  auto it = running_.find(key);
  if (it == running_.end()) return;
  loop_.remove(it->second->fd.get());
  loop_.cancel_timer(it->second->deadline);
  running_.erase(it);
}

void ProbeRunner::finish(int64_t key, bool passed, std::string detail) {
  auto it = running_.find(key);
  if (it == running_.end()) return;
  Done done = std::move(it->second->done);
  cancel(key);
  done(passed, std::move(detail));  // may start the next probe under the same key
}

void ProbeRunner::start(int64_t key, const ProbeSpec& spec, int64_t timeout_ms, Done done) {
  cancel(key);
  std::string host = spec.host, path = "/";
  int port = spec.port;
  if (spec.kind == ProbeKind::kHttp) {
    auto t = parse_http_url(spec.url);
    if (!t) return done(false, "bad URL");
    host = t->host, port = t->port, path = t->path;
  } else if (spec.kind != ProbeKind::kTcp) {
    return done(false, std::string(probe_kind_name(spec.kind)) + " probes are not run by this version");
  }
  auto addr = probe_address(host);
  if (!addr) return done(false, "host " + host + " is not an IPv4 address");
  auto r = std::make_unique<Running>();
  r->fd = Fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!r->fd) return done(false, std::string("socket: ") + strerror(errno));
  // RST on close: a probe every second must not leave TIME_WAIT sockets behind.
  linger lg{1, 0};
  setsockopt(r->fd.get(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  sa.sin_addr = *addr;
  r->http = spec.kind == ProbeKind::kHttp;
  if (r->http) r->request = http_probe_request(host, port, path);
  r->done = std::move(done);
  const int rc = ::connect(r->fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  if (rc != 0 && errno != EINPROGRESS) {
    Done d = std::move(r->done);
    return d(false, std::string("connect: ") + strerror(errno));
  }
  const int fd = r->fd.get();
  if (auto st = loop_.add_writable(fd, [this, key](uint32_t) { on_event(key); }); !st) {
    Done d = std::move(r->done);
    return d(false, st.error().message());
  }
  r->deadline = loop_.add_timer(monotonic_ns() + timeout_ms * 1'000'000, [this, key, timeout_ms] {
    if (auto it = running_.find(key); it != running_.end()) it->second->deadline = 0;
    finish(key, false, "timed out after " + std::to_string(timeout_ms) + " ms");
  });
  running_[key] = std::move(r);
}

void ProbeRunner::on_event(int64_t key) {
  auto it = running_.find(key);
  if (it == running_.end()) return;
  Running& r = *it->second;
  const int fd = r.fd.get();
  if (!r.connected) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return finish(key, false, std::string("connect: ") + strerror(err));
    r.connected = true;
    if (!r.http) return finish(key, true, "connected");
  }
  // Send the request while the socket is writable, then read the answer.
  if (r.sent < r.request.size()) {
    const ssize_t n = ::send(fd, r.request.data() + r.sent, r.request.size() - r.sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno != EAGAIN) return finish(key, false, std::string("send: ") + strerror(errno));
    if (n > 0) r.sent += static_cast<size_t>(n);
    if (r.sent == r.request.size())
      if (auto st = loop_.want_readable(fd); !st) return finish(key, false, st.error().message());
    return;
  }
  char buf[512];
  const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
  if (n < 0 && errno == EAGAIN) return;
  if (n > 0 && r.response.size() < 4096) r.response.append(buf, static_cast<size_t>(n));
  if (auto code = parse_http_status(r.response))
    return finish(key, *code >= 200 && *code <= 399, "HTTP " + std::to_string(*code));
  if (n <= 0 || r.response.size() >= 4096)
    return finish(key, false, n < 0 ? std::string("recv: ") + strerror(errno) : "no HTTP status line");
}

}  // namespace forkwatch
