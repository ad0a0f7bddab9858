// HttpGate: owns the API's connections, from accept to close, so that no
// client can hold the server with what it has not sent yet. One thread reads
// every connection with epoll until it holds a whole request (head and body,
// within HttpLimits and a deadline), checks its framing strictly, and only
// then hands it to the task pool, where http::Server routes it and writes the
// reply to the socket. On a TLS listener the gate also runs each handshake
// (non-blocking, within the request deadline) and reads through SSL_read;
// the pool thread writes with SSL_write. Idle keep-alive connections and slow
// senders wait in the gate's epoll set, never in a pool thread; pipelined
// requests are served one after another, in order. Beyond its caps the gate
// answers 503 at once. Every limit and default is in docs/API.md ("Limits").
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <sys/types.h>

#include "http_head.h"
#include "sys_error.h"

namespace forkwatch {

class TaskPool;
class TlsContext;
namespace http {
class ReplyStream;
}

struct GateOptions {
  HttpLimits limits;
  size_t max_connections = 1024;            // open at once, every kind
  size_t max_unauthenticated = 512;         // that have not yet sent one authorized request
  size_t max_unauthenticated_per_peer = 64; // the same, from one address
  int64_t request_timeout_ms = 10'000;      // first byte to last byte of a request
  int64_t keep_alive_ms = 5'000;            // idle between requests
  int64_t write_timeout_ms = 5'000;         // a reply that cannot be written for this long is dropped
  size_t max_requests_per_connection = 1000;
};

// What serving one request found.
struct Served {
  bool keep_open = false;  // the reply allows another request on the connection
};

// Who is at the other end of a Unix socket connection, as the kernel says.
struct PeerCredentials {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};

struct GateCounters {
  std::atomic<uint64_t> accepted{0}, refused_busy{0}, timed_out{0}, bad_requests{0};
  std::atomic<uint64_t> tls_failed{0};  // handshakes that failed or missed the deadline
};

class HttpGate {
 public:
  // Runs on a pool thread: route the request (its head and whole body) and
  // write its reply to `out`. close_after: the reply must say Connection: close.
  using Serve = std::function<Served(const HttpHead& head, std::string body, http::ReplyStream& out,
                                     bool close_after)>;
  // Runs on the gate thread with a complete head: may its body be read? A
  // request that may not (no valid credentials) is served without its body
  // (its reply will be a 401), and the connection is closed after it.
  using Admit = std::function<bool(const HttpHead& head, const std::optional<PeerCredentials>& peer)>;

  // The listening sockets (TCP, Unix) stay the caller's; pool must outlive stop().
  HttpGate(std::vector<int> listen_fds, GateOptions options, TaskPool& pool, Serve serve, Admit admit);
  ~HttpGate();

  // Before start(): connections accepted on `listen_fd` speak TLS with the
  // pair `tls` holds at their accept (tls must outlive stop()).
  void serve_tls_on(int listen_fd, TlsContext* tls);

  Status start();
  // Stops accepting and closes every connection not being served; a request
  // in a pool thread finishes, and its connection closes after it.
  void stop();

  const GateCounters& counters() const;

  // Called by a request's handler on its pool thread once the request proved
  // valid credentials: its connection leaves the unauthenticated caps at
  // once, an event stream included (which holds its thread for its life).
  static void note_authenticated();
  // On a pool thread: the peer of the connection being served, when it came
  // through a Unix socket; nullopt for TCP.
  static std::optional<PeerCredentials> peer_credentials();

  class Impl;  // opaque; public only so the pool thread's note can name it

 private:
  std::shared_ptr<Impl> impl_;  // shared with pool tasks that hand connections back
};

}  // namespace forkwatch
