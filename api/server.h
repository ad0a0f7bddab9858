// ApiServer: the REST API, SSE stream, /metrics and the dashboard's static
// files. HttpGate owns the connections and their limits (and TLS, when
// configured); http::Server routes each whole request on a pool thread. Handlers validate, then post a Command to the loop
// and wait for its reply, or read the latest Snapshot; they never touch
// supervisor state. History comes from SQLite through History's own
// connections. Every answer is JSON, errors and exceptions included.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <optional>
#include <thread>

#include <sys/types.h>

#include "command.h"
#include "event_hub.h"
#include "http_gate.h"
#include "metrics.h"
#include "snapshot.h"
#include "sys_error.h"

namespace forkwatch {

namespace db {
class History;
}
class TlsContext;
struct ProcessEventStats;

struct ApiOptions {
  std::string token;          // required unless no_auth
  std::string read_token;     // empty: no read-only token
  std::optional<gid_t> socket_group;  // Unix socket peers in it are read-only (--socket-group)
  bool no_auth = false;
  bool allow_commands = false;
  std::string web_dir;        // the dashboard; empty: no static files
  GateOptions gate;           // connection caps, deadlines, request size limits
  std::shared_ptr<TlsContext> tls;  // HTTPS on the TCP listener; null: plain HTTP
  size_t max_threads = 160;   // requests served at once: SSE clients + headroom
  int64_t sample_ms = 1000;   // how fresh a tree must be to serve without asking for a sample
  std::string version;
};

struct ApiDeps {
  SnapshotBox* snapshots = nullptr;
  CommandQueue* commands = nullptr;
  SupervisorCounters* counters = nullptr;
  EventHub* hub = nullptr;
  db::History* history = nullptr;
  WorkerTally* tally = nullptr;  // per-worker exits for /metrics; a sink of the supervisor's events
  const ProcessEventStats* process_events = nullptr;  // null: no proc connector at all
  const Containment* containment = nullptr;           // null: not said (tests without a daemon)
  std::function<db::StoreStats()> store_stats;  // for /metrics and /api/health; empty: no store
  // Waits at most `timeout` until all that was queued for the store is
  // committed (false: not yet). A start, stop, restart or removal is answered
  // after its worker row is on disk, so a daemon killed right after the
  // answer restores what it said it did. Empty: no store, no wait.
  std::function<bool(std::chrono::milliseconds timeout)> store_committed;
  int64_t started_mono_ns = 0;
};

class ApiServer {
 public:
  ApiServer(ApiDeps deps, ApiOptions options);
  ~ApiServer();

  // Binds host:port (port 0: any); returns the bound port.
  Result<int> bind(const std::string& host, int port);
  // Serves on a listening socket handed over by systemd instead.
  Result<int> adopt(int listen_fd);
  // Also serves on a Unix socket at `path` (mode 0660, group socket_group),
  // where the peer's credentials decide the role; or on one systemd passed.
  Status listen_unix(const std::string& path);
  void adopt_unix(int listen_fd);
  // Starts serving on its own thread; returns once connections are accepted.
  Status start();
  // SIGHUP, on the loop thread: re-reads the TLS pair; on error the old one
  // stays in use and the error says why. Ok without TLS.
  Status reload_tls();
  void stop();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace forkwatch
