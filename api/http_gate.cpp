#include "http_gate.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "fd.h"
#include "http_router.h"
#include "log.h"
#include "task_pool.h"
#include "tls.h"

namespace forkwatch {
namespace {

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Epoll keys: the eventfd, then one per listening socket, then connections.
constexpr uint64_t kWakeKey = 0, kFirstListenKey = 1, kFirstConnKey = 16;
constexpr int64_t kMs = 1'000'000;
// After an error reply the gate reads and drops what the client still sends,
// for at most this long or this much, so that closing with unread input (a
// TCP reset) does not destroy the reply before the client reads it.
constexpr int64_t kLingerMs = 1000;
constexpr size_t kLingerBytes = 1 << 20;

const char* reason_phrase(int status) {
  switch (status) {
    case 400: return "Bad Request";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 417: return "Expectation Failed";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    default: return "Error";
  }
}

// The whole reply to a request the gate refuses itself; the connection closes after it.
std::string refusal(const ApiError& e) {
  const std::string body = error_body(e);
  std::string out = "HTTP/1.1 " + std::to_string(e.status) + " " + reason_phrase(e.status) +
                    "\r\nContent-Type: application/json; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nContent-Length: " +
                    std::to_string(body.size()) + "\r\nConnection: close\r\n";
  if (e.status == 503) out += "Retry-After: 1\r\n";
  return out + "\r\n" + body;
}

std::string address_text(const sockaddr_storage& ss, int& port) {
  char buf[INET6_ADDRSTRLEN] = "";
  if (ss.ss_family == AF_INET) {
    auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
    port = ntohs(a->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
    port = ntohs(a->sin6_port);
  }
  return buf;
}

// One connection. The gate thread owns it, except while a pool thread serves
// its request (phase kServing): then only that thread touches fd, tls and the
// request.
struct Conn {
  enum class Phase { kHandshake, kIdle, kReading, kServing, kClosing };
  uint64_t key = 0;
  Fd fd;
  std::string peer, local;       // addresses; for a Unix socket peer "uid N"
  int peer_port = 0, local_port = 0;
  std::optional<PeerCredentials> cred;  // a Unix socket peer's, from SO_PEERCRED
  std::string in;               // received, not yet handed over
  TlsSession tls;               // empty on a plain connection
  HttpHead head;                // the request being served
  std::string body;             // its body, decoded
  Phase phase = Phase::kIdle;
  int64_t deadline_ns = 0;      // of the phase: keep-alive, request, linger
  bool unauthenticated = true;  // counted in the gate's unauthenticated totals
  bool peer_done = false;       // the client shut down its side
  bool close_after = false;     // the request being served is the last
  bool sent_continue = false;
  bool head_read = false;       // c.in starts with a whole head; its body is awaited
  size_t served = 0, lingered = 0;
};

// What the connection's bytes come through: the socket, or its TLS session.
// Returns as recv(2) does; a TLS session that wants to write during a read
// (never in TLS 1.3, and renegotiation is off) counts as "nothing yet".
ssize_t receive(Conn& c, char* buf, size_t size) {
  if (!c.tls) return recv(c.fd.get(), buf, size, 0);
  TlsSession::Io io;
  ssize_t n = c.tls.read(buf, size, io);
  if (n > 0) return n;
  if (io == TlsSession::Io::kClosed) return 0;
  errno = io == TlsSession::Io::kError ? ECONNRESET : EAGAIN;
  return -1;
}

// Best effort and without waiting: the gate's own small replies (refusals,
// 100 Continue), which fit the socket's send buffer at once.
void send_now(Conn& c, std::string_view data) {
  if (!c.tls) {
    (void)!send(c.fd.get(), data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    return;
  }
  TlsSession::Io io;
  while (!data.empty()) {
    ssize_t n = c.tls.write(data.data(), data.size(), io);
    if (n <= 0) return;
    data.remove_prefix(static_cast<size_t>(n));
  }
}

// Where http::Server writes a reply, on the pool thread: the socket (or TLS),
// waiting at most the write timeout for each bit of progress.
class ConnStream final : public http::ReplyStream {
 public:
  ConnStream(Conn& c, int64_t write_timeout_ms) : c_(c), timeout_ms_(write_timeout_ms) {}

  bool write(const char* ptr, size_t size) override {
    size_t done = 0;
    while (done < size) {
      ssize_t n;
      short wait_for = POLLOUT;
      if (c_.tls) {
        TlsSession::Io io;
        n = c_.tls.write(ptr + done, size - done, io);
        if (n <= 0) {
          if (io == TlsSession::Io::kWantRead) wait_for = POLLIN;
          else if (io != TlsSession::Io::kWantWrite) return false;
        }
      } else {
        n = ::send(c_.fd.get(), ptr + done, size - done, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return false;
      }
      if (n > 0) {
        done += static_cast<size_t>(n);
        continue;
      }
      pollfd p{c_.fd.get(), wait_for, 0};
      if (poll(&p, 1, static_cast<int>(timeout_ms_)) != 1 || (p.revents & (POLLERR | POLLHUP))) return false;
    }
    return true;
  }

 private:
  Conn& c_;
  const int64_t timeout_ms_;
};

}  // namespace

namespace {
// The connection this pool thread serves, for note_authenticated().
thread_local HttpGate::Impl* t_gate = nullptr;
thread_local uint64_t t_conn_key = 0;
thread_local const std::optional<PeerCredentials>* t_cred = nullptr;
}  // namespace

class HttpGate::Impl : public std::enable_shared_from_this<Impl> {
 public:
  Impl(std::vector<int> listen_fds, GateOptions o, TaskPool& pool, Serve serve, Admit admit)
      : listen_fds_(std::move(listen_fds)), opt_(o), pool_(pool), serve_(std::move(serve)), admit_(std::move(admit)) {}

  std::unordered_map<int, TlsContext*> tls_;  // listen fd -> its TLS pair; set before start()

  Status start();
  void stop();
  void note_authenticated(uint64_t key);
  GateCounters counters;

 private:
  void run();
  void accept_all(int listen_fd);
  void handshake(Conn& c);
  void watch_listeners(bool on);
  void read_from(Conn& c);
  size_t buffer_cap(const Conn& c) const;
  void advance(Conn& c);
  void dispatch(Conn& c, const HttpHead& head, std::string_view body, size_t consumed, bool admitted);
  void hand_back(Conn& c, Served served);
  void take_back();
  void refuse(Conn& c, const ApiError& e);
  void linger(Conn& c);
  void close(Conn& c);
  void expire();
  void authenticated(Conn& c);
  void watch(Conn& c, bool on);

  const std::vector<int> listen_fds_;
  const GateOptions opt_;
  TaskPool& pool_;
  const Serve serve_;
  const Admit admit_;
  Fd epoll_, wake_;
  std::thread thread_;

  std::mutex mu_;
  std::vector<std::pair<uint64_t, Served>> returned_;  // guarded by mu_
  std::vector<uint64_t> authenticated_;                // guarded by mu_
  bool stopping_ = false;                              // guarded by mu_

  // Gate thread only.
  std::unordered_map<uint64_t, std::unique_ptr<Conn>> conns_;
  std::unordered_map<std::string, size_t> unauthenticated_per_peer_;
  size_t unauthenticated_ = 0;
  uint64_t next_key_ = kFirstConnKey;
  int64_t accept_paused_until_ = 0;  // after EMFILE: the listen fd stays readable
  int64_t tls_logged_ns_ = 0;        // the last failed handshake logged (one a second)
};

Status HttpGate::Impl::start() {
  if (listen_fds_.empty() || listen_fds_.size() > kFirstConnKey - kFirstListenKey)
    return plain_error("gate: 1 to 15 listening sockets, got " + std::to_string(listen_fds_.size()));
  epoll_ = Fd(epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_) return sys_error("epoll_create1");
  wake_ = Fd(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!wake_) return sys_error("eventfd");
  for (size_t i = 0; i < listen_fds_.size(); ++i) {
    const int fd = listen_fds_[i];
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) return sys_error("fcntl(listen fd, O_NONBLOCK)");
    epoll_event ev{EPOLLIN, {.u64 = kFirstListenKey + i}};
    if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) return sys_error("epoll_ctl(listen fd)");
  }
  epoll_event ev{EPOLLIN, {.u64 = kWakeKey}};
  if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wake_.get(), &ev) != 0) return sys_error("epoll_ctl(eventfd)");
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "fw-gate");
    run();
  });
  return Ok{};
}

void HttpGate::Impl::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  uint64_t one = 1;
  if (wake_ && ::write(wake_.get(), &one, sizeof one) < 0) log::warning("gate: eventfd write failed");
  if (thread_.joinable()) thread_.join();
}

void HttpGate::Impl::run() {
  epoll_event events[64];
  for (;;) {
    int n = epoll_wait(epoll_.get(), events, 64, 100);
    if (n < 0 && errno != EINTR) {
      log::error("gate: epoll_wait: " + std::string(strerror(errno)));
      break;
    }
    for (int i = 0; i < n; ++i) {
      const uint64_t key = events[i].data.u64;
      if (key >= kFirstListenKey && key < kFirstConnKey) {
        accept_all(listen_fds_[key - kFirstListenKey]);
      } else if (key == kWakeKey) {
        uint64_t v;
        while (::read(wake_.get(), &v, sizeof v) > 0) {
        }
        take_back();
      } else if (auto it = conns_.find(key); it != conns_.end()) {
        read_from(*it->second);
      }
    }
    {
      std::lock_guard lock(mu_);
      if (stopping_) break;
    }
    expire();
  }
  // Connections being served close as their requests end (hand_back).
  std::lock_guard lock(mu_);
  for (auto& [key, c] : conns_)
    if (c->phase != Conn::Phase::kServing) c->fd.reset();
}

void HttpGate::Impl::watch_listeners(bool on) {
  for (size_t i = 0; i < listen_fds_.size(); ++i) {
    epoll_event ev{on ? EPOLLIN : 0u, {.u64 = kFirstListenKey + i}};
    epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, listen_fds_[i], &ev);
  }
}

void HttpGate::Impl::accept_all(int listen_fd) {
  if (accept_paused_until_ > now_ns()) return;
  for (;;) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    Fd fd(accept4(listen_fd, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // Out of fds: the pending connection stays queued and the listen fd
        // readable; look again in a while rather than spin.
        log::warning("gate: accept: " + std::string(strerror(errno)) + "; pausing new connections for 100 ms");
        accept_paused_until_ = now_ns() + 100 * kMs;
        watch_listeners(false);
      }
      return;
    }
    auto c = std::make_unique<Conn>();
    c->fd = std::move(fd);
    if (ss.ss_family == AF_UNIX) {
      // The kernel vouches for who is at the other end (unix(7)); the caps
      // count connections per user.
      ucred uc{};
      socklen_t ul = sizeof uc;
      if (getsockopt(c->fd.get(), SOL_SOCKET, SO_PEERCRED, &uc, &ul) == 0)
        c->cred = PeerCredentials{uc.pid, uc.uid, uc.gid};
      c->peer = c->cred ? "uid " + std::to_string(c->cred->uid) : "unix";
    } else {
      c->peer = address_text(ss, c->peer_port);
    }
    ++counters.accepted;
    size_t& from_peer = unauthenticated_per_peer_[c->peer];
    std::string why;
    if (conns_.size() >= opt_.max_connections)
      why = "already " + std::to_string(opt_.max_connections) + " connections open (the limit)";
    else if (unauthenticated_ >= opt_.max_unauthenticated)
      why = "already " + std::to_string(opt_.max_unauthenticated) + " connections without a request yet (the limit)";
    else if (from_peer >= opt_.max_unauthenticated_per_peer)
      why = "already " + std::to_string(opt_.max_unauthenticated_per_peer) + " connections from " + c->peer +
            " without a request yet (the limit)";
    if (!why.empty()) {
      if (from_peer == 0) unauthenticated_per_peer_.erase(c->peer);
      ++counters.refused_busy;
      // Best effort, without waiting: what the client sent is read first so
      // that the close is a FIN, not a reset that would eat the reply.
      char sink[4096];
      while (recv(c->fd.get(), sink, sizeof sink, MSG_DONTWAIT) > 0) {
      }
      // A TLS client could not read a plain reply: it only sees the close.
      if (!tls_.contains(listen_fd)) {
        const std::string reply = refusal({503, "busy", why});
        (void)!send(c->fd.get(), reply.data(), reply.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      }
      shutdown(c->fd.get(), SHUT_WR);
      continue;
    }
    ++from_peer;
    ++unauthenticated_;
    sockaddr_storage local{};
    socklen_t llen = sizeof local;
    if (getsockname(c->fd.get(), reinterpret_cast<sockaddr*>(&local), &llen) == 0)
      c->local = address_text(local, c->local_port);
    // Small replies must not wait for the client's delayed ACK (bench/RESULTS.md).
    int one = 1;
    if (ss.ss_family != AF_UNIX) setsockopt(c->fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->key = next_key_++;
    // The handshake counts as part of the first request: it has the same deadline.
    c->deadline_ns = now_ns() + opt_.request_timeout_ms * kMs;
    if (auto t = tls_.find(listen_fd); t != tls_.end()) {
      c->tls = t->second->new_session(c->fd.get());
      if (!c->tls) {
        log::warning("gate: no TLS session for a new connection: " + TlsSession::last_error());
        authenticated(*c);
        continue;
      }
      c->phase = Conn::Phase::kHandshake;
    }
    Conn& ref = *c;
    conns_.emplace(c->key, std::move(c));
    watch(ref, true);
  }
}

void HttpGate::Impl::watch(Conn& c, bool on) {
  if (on) {
    epoll_event ev{EPOLLIN | EPOLLRDHUP, {.u64 = c.key}};
    if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, c.fd.get(), &ev) != 0) {
      log::warning("gate: epoll_ctl(ADD): " + std::string(strerror(errno)));
      close(c);
    }
  } else {
    epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, c.fd.get(), nullptr);
  }
}

// Never more than a head (until it is whole) or a head and its body can
// need: a sender that goes past it is refused before the buffer grows further.
size_t HttpGate::Impl::buffer_cap(const Conn& c) const {
  const size_t head = opt_.limits.max_request_line + opt_.limits.max_header_bytes + 1024;
  return c.head_read ? head + opt_.limits.max_body + 64 * 1024 : head;
}

void HttpGate::Impl::handshake(Conn& c) {
  switch (c.tls.handshake()) {
    case TlsSession::Io::kOk: {
      c.phase = Conn::Phase::kIdle;
      epoll_event ev{EPOLLIN | EPOLLRDHUP, {.u64 = c.key}};
      epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, c.fd.get(), &ev);
      return read_from(c);  // the request may have come with the handshake's last flight
    }
    case TlsSession::Io::kWantRead: return;
    case TlsSession::Io::kWantWrite: {
      epoll_event ev{EPOLLIN | EPOLLOUT | EPOLLRDHUP, {.u64 = c.key}};
      epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, c.fd.get(), &ev);
      return;
    }
    default: {
      // Plain HTTP on the TLS port, a client that refused our certificate, or
      // no common version: nothing can be said to it in HTTP. Logged at most
      // once a second, so a scanner cannot fill the journal.
      ++counters.tls_failed;
      const int64_t now = now_ns();
      if (now - tls_logged_ns_ > 1000 * kMs) {
        tls_logged_ns_ = now;
        log::info("gate: TLS handshake from " + c.peer + " failed: " + TlsSession::last_error());
      }
      return close(c);
    }
  }
}

void HttpGate::Impl::read_from(Conn& c) {
  if (c.phase == Conn::Phase::kServing) return;
  if (c.phase == Conn::Phase::kHandshake) return handshake(c);
  const size_t cap = buffer_cap(c);
  char buf[16384];
  bool got_line_end = false;
  for (;;) {
    if (c.in.size() >= cap) break;
    ssize_t n = receive(c, buf, sizeof buf);
    if (n > 0) {
      if (c.phase == Conn::Phase::kClosing) {
        c.lingered += static_cast<size_t>(n);
        if (c.lingered > kLingerBytes) return close(c);
        continue;
      }
      if (c.phase == Conn::Phase::kIdle) {
        c.phase = Conn::Phase::kReading;
        c.deadline_ns = now_ns() + opt_.request_timeout_ms * kMs;
      }
      got_line_end = got_line_end || std::memchr(buf, '\n', static_cast<size_t>(n)) != nullptr;
      c.in.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) {
      c.peer_done = true;
      break;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    return close(c);  // reset by the peer, or worse
  }
  if (c.phase == Conn::Phase::kClosing) {
    if (c.peer_done) close(c);
    return;
  }
  if (c.peer_done) {
    // Stop watching: a half-closed socket stays readable. What is buffered
    // is still served; the connection closes after it.
    watch(c, false);
  }
  // A head only completes at a line end: a slow sender's single bytes cost no parse.
  const uint64_t key = c.key;
  if (got_line_end || c.head_read || c.peer_done || c.in.size() > opt_.limits.max_request_line) advance(c);
  // Still reading with a full buffer: no valid request is this long (a
  // chunked body cut into tiny chunks, say); refuse rather than grow.
  auto it = conns_.find(key);
  if (it != conns_.end() && it->second->phase == Conn::Phase::kReading &&
      it->second->in.size() >= buffer_cap(*it->second))
    refuse(*it->second, {413, "too_large", "the request is larger than any this daemon accepts"});
}

// Serves the next complete request in c.in, refuses a bad one, or waits.
void HttpGate::Impl::advance(Conn& c) {
  if (c.in.empty()) {
    if (c.peer_done) close(c);
    return;
  }
  HeadParse parsed = parse_head(c.in, opt_.limits);
  if (auto* e = std::get_if<ApiError>(&parsed)) return refuse(c, *e);
  auto* head = std::get_if<HttpHead>(&parsed);
  if (!head) {
    if (c.peer_done) refuse(c, {400, "bad_request", "the connection ended before the request head did"});
    return;
  }
  const bool has_body = head->chunked || head->content_length > 0;
  if (has_body && !admit_(*head, c.cred)) {
    // No credentials: answered from the head alone, the body never read.
    c.in.clear();
    return dispatch(c, *head, {}, 0, false);
  }
  std::string_view rest = std::string_view(c.in).substr(head->head_bytes);
  auto wait_for_body = [&] {
    c.head_read = true;
    if (c.peer_done) return refuse(c, {400, "bad_request", "the connection ended before the body did"});
    if (head->expect_continue && !c.sent_continue) {
      send_now(c, "HTTP/1.1 100 Continue\r\n\r\n");
      c.sent_continue = true;
    }
  };
  if (head->chunked) {
    ChunkedParse body = decode_chunked(rest, opt_.limits.max_body);
    if (auto* e = std::get_if<ApiError>(&body)) return refuse(c, *e);
    auto* b = std::get_if<ChunkedBody>(&body);
    if (!b) return wait_for_body();
    return dispatch(c, *head, b->body, head->head_bytes + b->consumed, true);
  }
  if (rest.size() < head->content_length) return wait_for_body();
  dispatch(c, *head, rest.substr(0, head->content_length), head->head_bytes + head->content_length, true);
}

void HttpGate::Impl::dispatch(Conn& c, const HttpHead& head, std::string_view body, size_t consumed,
                              bool admitted) {
  c.head = head;
  c.body.assign(body);
  c.in.erase(0, consumed);
  if (c.in.capacity() > 64 * 1024 && c.in.size() < 16 * 1024) c.in.shrink_to_fit();
  c.close_after = head.close || !admitted || c.served + 1 >= opt_.max_requests_per_connection;
  c.sent_continue = false;
  c.head_read = false;
  if (!c.peer_done) watch(c, false);
  c.phase = Conn::Phase::kServing;
  std::shared_ptr<Impl> self = shared_from_this();
  Conn* conn = &c;
  pool_.enqueue([self, conn] {
    Served served;
    t_gate = self.get();
    t_conn_key = conn->key;
    t_cred = &conn->cred;
    try {
      ConnStream stream(*conn, self->opt_.write_timeout_ms);
      served = self->serve_(conn->head, std::move(conn->body), stream, conn->close_after);
    } catch (const std::exception& e) {
      log::error(std::string("API request failed: ") + e.what());
    } catch (...) {
      log::error("API request failed");
    }
    t_gate = nullptr;
    t_cred = nullptr;
    self->hand_back(*conn, served);
  });
}

void HttpGate::Impl::hand_back(Conn& c, Served served) {
  std::lock_guard lock(mu_);
  if (stopping_) {
    c.fd.reset();
    return;
  }
  returned_.emplace_back(c.key, served);
  uint64_t one = 1;
  if (::write(wake_.get(), &one, sizeof one) < 0) log::warning("gate: eventfd write failed");
}

void HttpGate::Impl::note_authenticated(uint64_t key) {
  std::lock_guard lock(mu_);
  if (stopping_) return;
  authenticated_.push_back(key);
  uint64_t one = 1;
  if (::write(wake_.get(), &one, sizeof one) < 0) log::warning("gate: eventfd write failed");
}

void HttpGate::Impl::take_back() {
  std::vector<std::pair<uint64_t, Served>> back;
  std::vector<uint64_t> authed;
  {
    std::lock_guard lock(mu_);
    back.swap(returned_);
    authed.swap(authenticated_);
  }
  for (uint64_t key : authed)
    if (auto it = conns_.find(key); it != conns_.end()) authenticated(*it->second);
  for (auto [key, served] : back) {
    auto it = conns_.find(key);
    if (it == conns_.end()) continue;
    Conn& c = *it->second;
    ++c.served;
    c.head = HttpHead();
    c.body = std::string();
    if (!served.keep_open || c.close_after) {
      linger(c);
      continue;
    }
    c.phase = c.in.empty() ? Conn::Phase::kIdle : Conn::Phase::kReading;
    c.deadline_ns = now_ns() + (c.in.empty() ? opt_.keep_alive_ms : opt_.request_timeout_ms) * kMs;
    if (!c.peer_done) watch(c, true);
    // Pipelined requests already buffered are served now, in order; bytes
    // OpenSSL decrypted beyond the buffer's cap are not announced by epoll.
    if (conns_.contains(key)) c.tls && c.tls.pending() ? read_from(c) : advance(c);
  }
}

void HttpGate::Impl::authenticated(Conn& c) {
  if (!c.unauthenticated) return;
  c.unauthenticated = false;
  --unauthenticated_;
  auto it = unauthenticated_per_peer_.find(c.peer);
  if (it != unauthenticated_per_peer_.end() && --it->second == 0) unauthenticated_per_peer_.erase(it);
}

void HttpGate::Impl::refuse(Conn& c, const ApiError& e) {
  ++(e.status == 408 ? counters.timed_out : counters.bad_requests);
  send_now(c, refusal(e));
  linger(c);
}

void HttpGate::Impl::linger(Conn& c) {
  c.in = std::string();
  if (c.peer_done) return close(c);
  if (c.tls) c.tls.close_notify();
  shutdown(c.fd.get(), SHUT_WR);
  if (c.phase == Conn::Phase::kServing) watch(c, true);
  c.phase = Conn::Phase::kClosing;
  c.deadline_ns = now_ns() + kLingerMs * kMs;
}

void HttpGate::Impl::close(Conn& c) {
  authenticated(c);  // leaves the unauthenticated totals either way
  conns_.erase(c.key);  // closes the fd, which leaves the epoll set
}

void HttpGate::Impl::expire() {
  const int64_t now = now_ns();
  if (accept_paused_until_ && accept_paused_until_ <= now) {
    accept_paused_until_ = 0;
    watch_listeners(true);
  }
  std::vector<Conn*> due;
  for (auto& [key, c] : conns_)
    if (c->phase != Conn::Phase::kServing && c->deadline_ns <= now) due.push_back(c.get());
  for (Conn* c : due) {
    if (c->phase == Conn::Phase::kHandshake) {
      // A TLS client that does not finish its handshake in time holds a
      // connection like a slow sender: dropped, with nothing to say.
      ++counters.timed_out;
      ++counters.tls_failed;
      close(*c);
    } else if (c->phase == Conn::Phase::kReading)
      refuse(*c, {408, "request_timeout",
                  "the request did not arrive whole within " + std::to_string(opt_.request_timeout_ms) + " ms"});
    else
      close(*c);  // idle past keep-alive, or done lingering
  }
}

HttpGate::HttpGate(std::vector<int> listen_fds, GateOptions options, TaskPool& pool, Serve serve,
                   Admit admit)
    : impl_(std::make_shared<Impl>(std::move(listen_fds), options, pool, std::move(serve), std::move(admit))) {}

HttpGate::~HttpGate() { stop(); }

void HttpGate::serve_tls_on(int listen_fd, TlsContext* tls) { impl_->tls_[listen_fd] = tls; }
Status HttpGate::start() { return impl_->start(); }
void HttpGate::stop() { impl_->stop(); }
const GateCounters& HttpGate::counters() const { return impl_->counters; }

void HttpGate::note_authenticated() {
  if (t_gate) t_gate->note_authenticated(t_conn_key);
}

std::optional<PeerCredentials> HttpGate::peer_credentials() { return t_cred ? *t_cred : std::optional<PeerCredentials>{}; }

}  // namespace forkwatch
