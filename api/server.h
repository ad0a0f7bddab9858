// ApiServer: the REST API, SSE stream, /metrics and the dashboard's static
// files, on cpp-httplib. Handlers validate, then post a Command to the loop
// and wait for its reply, or read the latest Snapshot; they never touch
// supervisor state. History comes from SQLite through History's own
// connections. Every answer is JSON, errors and exceptions included.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "command.h"
#include "event_hub.h"
#include "metrics.h"
#include "snapshot.h"
#include "sys_error.h"

namespace forkwatch {

namespace db {
class History;
}

struct ApiOptions {
  std::string token;          // required unless no_auth
  bool no_auth = false;
  bool allow_commands = false;
  std::string web_dir;        // the dashboard; empty: no static files
  size_t max_body_bytes = 1 << 20;
  size_t max_threads = 160;   // >= SSE clients + headroom (FIELD-NOTES.md)
  int read_timeout_s = 5;     // a client that sends nothing is dropped after this
  int64_t sample_ms = 1000;   // how fresh a tree must be to serve without asking for a sample
  std::string version;
};

struct ApiDeps {
  SnapshotBox* snapshots = nullptr;
  CommandQueue* commands = nullptr;
  SupervisorCounters* counters = nullptr;
  EventHub* hub = nullptr;
  db::History* history = nullptr;
  std::function<std::string()> store_metrics;  // the store's Prometheus lines
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
  // Starts serving on its own thread; returns once connections are accepted.
  Status start();
  void stop();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace forkwatch
