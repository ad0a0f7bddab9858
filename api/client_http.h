// ApiClient: the `forkwatch` client's connection to forkwatchd. One request
// at a time from one thread, except stop(), which another thread may call to
// abort a streaming request (the events command does, on SIGINT). Replies are
// values; the caller maps them onto the client's exit codes (1: the daemon
// said no, 3: it could not be reached).
//
// HTTP/1.1 over a Unix socket or TCP, one connection per request
// (Connection: close), and HTTPS through forkwatch-tls.so, loaded only for an
// https:// URL (api/tls.h). No cpp-httplib: linking it (and with it libssl,
// libcrypto, brotli and zlib) cost every invocation 2 ms of CPU before main,
// a third of a `forkwatch status` (bench/RESULTS.md, issue 16).
// Header-only for the same reason as client_format.h.
#pragma once

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>

#include "fd.h"
#include "parse_number.h"
#include "tls.h"

namespace forkwatch::client {

struct Reply {
  int status = 0;          // HTTP status; 0 when the daemon could not be reached
  std::string body;
  std::string transport;   // why it could not be reached ("connect: Connection refused", ...)
  bool ok() const { return status >= 200 && status < 300; }
};

using Headers = std::multimap<std::string, std::string>;

class ApiClient {
 public:
  // `url` is scheme://host[:port], already checked by the caller; or, with
  // unix_socket, the path of the daemon's Unix socket. `ca_file` is the
  // certificate an https:// daemon must present ("": the system's CA store).
  ApiClient(const std::string& url, std::string token, bool unix_socket = false, std::string ca_file = "")
      : token_(std::move(token)), ca_file_(std::move(ca_file)) {
    if (unix_socket) {
      socket_path_ = url;
      host_header_ = "localhost";
      return;
    }
    tls_ = url.rfind("https://", 0) == 0;
    std::string rest = url.substr(url.find("://") + 3);
    rest = rest.substr(0, rest.find('/'));
    host_header_ = rest;
    port_ = tls_ ? "443" : "80";
    if (!rest.empty() && rest[0] == '[') {  // [::1]:7420
      const size_t close = rest.find(']');
      host_ = rest.substr(1, close == std::string::npos ? std::string::npos : close - 1);
      if (close != std::string::npos && close + 1 < rest.size() && rest[close + 1] == ':')
        port_ = rest.substr(close + 2);
    } else if (const size_t colon = rest.rfind(':'); colon != std::string::npos) {
      host_ = rest.substr(0, colon);
      port_ = rest.substr(colon + 1);
    } else {
      host_ = rest;
    }
  }

  Reply get(const std::string& path) { return request("GET", path, {}, "", kReadTimeout, nullptr); }
  Reply post(const std::string& path, const std::string& body) {
    return request("POST", path, {{"Content-Type", "application/json"}}, body, kReadTimeout, nullptr);
  }
  Reply del(const std::string& path) { return request("DELETE", path, {}, "", kReadTimeout, nullptr); }

  // A streaming GET: `on_data` gets the body as it arrives while the status is
  // 200 and returns false to stop; an error reply's body is collected instead.
  Reply stream(const std::string& path, const Headers& extra, std::chrono::seconds read_timeout,
               const std::function<bool(const char*, size_t)>& on_data) {
    return request("GET", path, extra, "", read_timeout, &on_data);
  }

  // Aborts a request in flight on another thread: its reads return at once.
  void stop() {
    stopped_ = true;
    if (int fd = fd_.load(); fd >= 0) ::shutdown(fd, SHUT_RDWR);
  }

 private:
  static constexpr std::chrono::seconds kConnectTimeout{3};
  // The daemon answers a command within its own 10 s budget, or says 503.
  static constexpr std::chrono::seconds kReadTimeout{15};
  static constexpr size_t kMaxHead = 64 << 10;

  using Sink = std::function<bool(const char*, size_t)>;

  // One connection, read through TLS when there is a session.
  struct Conn {
    Fd fd;
    TlsSession tls;
    std::chrono::seconds timeout{kReadTimeout};

    // Waits for `events` within the timeout; false (errno set) when it passed.
    bool wait(short events) const {
      pollfd p{fd.get(), events, 0};
      int r;
      do r = ::poll(&p, 1, static_cast<int>(std::chrono::milliseconds(timeout).count()));
      while (r < 0 && errno == EINTR);
      if (r == 0) errno = ETIMEDOUT;
      return r > 0;
    }
    // > 0 bytes, 0 at the end, -1 on an error (errno, or TLS's reason in `why`).
    ssize_t read(char* buf, size_t n, std::string& why) {
      for (;;) {
        if (!tls) {
          if (!wait(POLLIN)) return -1;
          ssize_t got = ::recv(fd.get(), buf, n, 0);
          if (got < 0 && errno == EINTR) continue;
          return got;
        }
        TlsIo io;
        ssize_t got = tls.read(buf, n, io);
        if (got > 0) return got;
        if (io == TlsIo::kClosed) return 0;
        if (io == TlsIo::kWantRead || io == TlsIo::kWantWrite) {
          if (!wait(io == TlsIo::kWantRead ? POLLIN : POLLOUT)) return -1;
          continue;
        }
        why = "TLS: " + TlsSession::last_error();
        return -1;
      }
    }
    bool write_all(const std::string& data, std::string& why) {
      size_t done = 0;
      while (done < data.size()) {
        if (!tls) {
          if (!wait(POLLOUT)) return false;
          ssize_t n = ::send(fd.get(), data.data() + done, data.size() - done, MSG_NOSIGNAL);
          if (n < 0 && errno == EINTR) continue;
          if (n < 0) return false;
          done += static_cast<size_t>(n);
          continue;
        }
        TlsIo io;
        ssize_t n = tls.write(data.data() + done, data.size() - done, io);
        if (n > 0) {
          done += static_cast<size_t>(n);
        } else if (io == TlsIo::kWantRead || io == TlsIo::kWantWrite) {
          if (!wait(io == TlsIo::kWantRead ? POLLIN : POLLOUT)) return false;
        } else {
          why = "TLS: " + TlsSession::last_error();
          return false;
        }
      }
      return true;
    }
  };

  static Reply unreachable(const std::string& why) {
    Reply r;
    r.transport = why;
    return r;
  }
  static std::string errno_text(const char* step) { return std::string(step) + ": " + std::strerror(errno); }

  // A connected socket (non-blocking, so every wait has its deadline), or why not.
  std::variant<Fd, std::string> connect_socket() {
    if (!socket_path_.empty()) {
      sockaddr_un a{};
      a.sun_family = AF_UNIX;
      if (socket_path_.size() >= sizeof a.sun_path) return "socket path too long: " + socket_path_;
      std::memcpy(a.sun_path, socket_path_.data(), socket_path_.size());
      // A local connect is done or refused at once; only then non-blocking.
      Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
      if (!fd) return errno_text("socket");
      if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return errno_text("connect");
      ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) | O_NONBLOCK);
      return fd;
    }
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* list = nullptr;
    if (int e = ::getaddrinfo(host_.c_str(), port_.c_str(), &hints, &list); e != 0)
      return "resolve " + host_ + ": " + gai_strerror(e);
    std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> hold(list, ::freeaddrinfo);
    std::string why = "connect: no address";
    for (addrinfo* ai = list; ai; ai = ai->ai_next) {
      Fd fd(::socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
      if (!fd) continue;
      if (::connect(fd.get(), ai->ai_addr, ai->ai_addrlen) == 0) return fd;
      if (errno != EINPROGRESS) {
        why = errno_text("connect");
        continue;
      }
      Conn probe{std::move(fd), {}, kConnectTimeout};
      if (!probe.wait(POLLOUT)) {
        why = errno_text("connect");
        continue;
      }
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(probe.fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
      if (err == 0) return std::move(probe.fd);
      errno = err;
      why = errno_text("connect");
    }
    return why;
  }

  std::variant<Conn, std::string> open() {
    auto sock = connect_socket();
    if (auto* why = std::get_if<std::string>(&sock)) return *why;
    Conn c{std::move(std::get<Fd>(sock)), {}, kConnectTimeout};
    if (!tls_) return c;
    if (!tls_ctx_) {
      auto ctx = TlsContext::load_client(ca_file_);
      if (!ctx) return ctx.error().message();
      tls_ctx_ = std::move(*ctx);
    }
    c.tls = tls_ctx_->new_client_session(c.fd.get(), host_);
    if (!c.tls) return "TLS: " + TlsSession::last_error();
    for (;;) {
      TlsIo io = c.tls.handshake();
      if (io == TlsIo::kOk) return c;
      if ((io != TlsIo::kWantRead && io != TlsIo::kWantWrite) || !c.wait(io == TlsIo::kWantRead ? POLLIN : POLLOUT))
        return "TLS handshake with " + host_header_ + ": " + TlsSession::last_error();
    }
  }

  Reply request(const char* method, const std::string& path, const Headers& extra, const std::string& body,
                std::chrono::seconds read_timeout, const Sink* on_data) {
    stopped_ = false;
    auto opened = open();
    if (auto* why = std::get_if<std::string>(&opened)) return unreachable(*why);
    Conn& c = std::get<Conn>(opened);
    fd_ = c.fd.get();
    struct Forget {
      std::atomic<int>& fd;
      ~Forget() { fd = -1; }
    } forget{fd_};
    if (stopped_) return unreachable("stopped");
    c.timeout = read_timeout;
    std::string head = std::string(method) + " " + path + " HTTP/1.1\r\nHost: " + host_header_ +
                       "\r\nConnection: close\r\nUser-Agent: forkwatch\r\n";
    if (!token_.empty()) head += "Authorization: Bearer " + token_ + "\r\n";
    for (const auto& [k, v] : extra) head += k + ": " + v + "\r\n";
    if (!body.empty() || std::strcmp(method, "POST") == 0) head += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    std::string why;
    if (!c.write_all(head + "\r\n" + body, why)) return unreachable(why.empty() ? errno_text("send") : why);
    return read_reply(c, on_data);
  }

  // The status line and headers, then the body: by Content-Length, chunked,
  // or to the end of the connection.
  Reply read_reply(Conn& c, const Sink* on_data) {
    std::string in, why;
    char buf[16384];
    size_t head_end;
    while ((head_end = in.find("\r\n\r\n")) == std::string::npos) {
      if (in.size() > kMaxHead) return unreachable("reply head over 64 KiB");
      ssize_t n = c.read(buf, sizeof buf, why);
      if (n <= 0) return unreachable(n == 0 ? "the daemon closed the connection" : why.empty() ? errno_text("recv") : why);
      in.append(buf, static_cast<size_t>(n));
    }
    Reply out;
    // "HTTP/1.1 200 OK"
    const size_t sp = in.find(' ');
    auto status = sp == std::string::npos ? std::nullopt : parse_decimal<int>(in.substr(sp + 1, 3));
    if (!status || *status < 100 || *status > 599) return unreachable("not an HTTP reply");
    out.status = *status;
    std::optional<size_t> length;
    bool chunked = false;
    for (size_t at = in.find("\r\n") + 2; at < head_end;) {
      const size_t eol = in.find("\r\n", at);
      std::string line = in.substr(at, eol - at);
      at = eol + 2;
      const size_t colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string name = line.substr(0, colon), value = line.substr(colon + 1);
      for (char& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      value.erase(0, value.find_first_not_of(" \t"));
      if (name == "content-length") length = parse_decimal<size_t>(value);
      else if (name == "transfer-encoding") chunked = value.find("chunked") != std::string::npos;
    }
    in.erase(0, head_end + 4);
    // Where the body goes: the caller's sink for a 200 stream, else collected.
    bool go_on = true;
    auto take = [&](const char* p, size_t n) {
      if (on_data && out.status == 200) go_on = (*on_data)(p, n) && go_on;
      else if (out.body.size() < (64u << 20)) out.body.append(p, n);
      return go_on;
    };
    auto more = [&]() -> bool {
      if (stopped_) return false;
      ssize_t n = c.read(buf, sizeof buf, why);
      if (n <= 0) return false;
      in.append(buf, static_cast<size_t>(n));
      return true;
    };
    if (chunked) {
      for (;;) {
        size_t eol;
        while ((eol = in.find("\r\n")) == std::string::npos)
          if (!more()) return out;  // a stream ends where the daemon or we stopped it
        auto size = parse_hex(in.substr(0, in.find_first_of(";\r")));
        if (!size) return out;
        if (*size == 0) return out;
        in.erase(0, eol + 2);
        while (in.size() < *size + 2)
          if (!more()) {
            take(in.data(), std::min(in.size(), *size));
            return out;
          }
        if (!take(in.data(), *size)) return out;
        in.erase(0, *size + 2);
      }
    }
    if (length) {
      while (in.size() < *length)
        if (!more()) break;
      take(in.data(), std::min(in.size(), *length));
      return out;
    }
    do {
      if (!take(in.data(), in.size())) return out;
      in.clear();
    } while (more());
    return out;
  }

  static std::optional<size_t> parse_hex(const std::string& text) {
    if (text.empty() || text.size() > 15) return std::nullopt;
    size_t v = 0;
    for (char ch : text) {
      int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
      if (d < 0) return std::nullopt;
      v = v * 16 + static_cast<size_t>(d);
    }
    return v;
  }

  std::string socket_path_, host_, port_, host_header_;
  bool tls_ = false;
  std::string token_, ca_file_;
  std::unique_ptr<TlsContext> tls_ctx_;
  std::atomic<int> fd_{-1};
  std::atomic<bool> stopped_{false};
};

// Feeds text/event-stream bytes in; calls `on_event(id, type, data)` for each
// complete event (blank-line terminated); comments (": heartbeat") are skipped.
class SseParser {
 public:
  using Handler = std::function<bool(const std::string& id, const std::string& type, const std::string& data)>;
  explicit SseParser(Handler on_event) : on_event_(std::move(on_event)) {}

  // Returns false when the handler asked to stop.
  bool feed(const char* data, size_t n) {
    buf_.append(data, n);
    size_t start = 0;
    for (size_t nl; (nl = buf_.find('\n', start)) != std::string::npos; start = nl + 1) {
      std::string line = buf_.substr(start, nl - start);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.empty()) {
        if (!data_.empty() || !type_.empty()) {
          bool go_on = on_event_(id_, type_.empty() ? "message" : type_, data_);
          type_.clear();
          data_.clear();
          if (!go_on) {
            buf_.erase(0, nl + 1);
            return false;
          }
        }
        continue;
      }
      if (line[0] == ':') continue;
      const size_t colon = line.find(':');
      std::string field = line.substr(0, colon);
      std::string value = colon == std::string::npos ? "" : line.substr(colon + 1);
      if (!value.empty() && value[0] == ' ') value.erase(0, 1);
      if (field == "id") id_ = value;
      else if (field == "event") type_ = value;
      else if (field == "data") data_ += (data_.empty() ? "" : "\n") + value;
    }
    buf_.erase(0, start);
    return true;
  }

 private:
  Handler on_event_;
  std::string buf_;
  std::string id_;  // the last id persists between events, as the SSE spec says
  std::string type_;
  std::string data_;
};

}  // namespace forkwatch::client
