// ProbeRunner: tcp and http probes run on the event loop without blocking
// it: a non-blocking connect watched for EPOLLOUT, an HTTP/1.0 GET whose
// status line decides (200..399 passes), every probe under a deadline timer.
// At most one probe per key (a worker id) is in flight; a new start cancels
// the old one. The `done` callback runs on the loop thread, exactly once per
// probe that is not cancelled. Owned by the supervisor; loop thread only.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "event_loop.h"
#include "fd.h"
#include "readiness_spec.h"

namespace forkwatch {

// ---- Pure helpers ----

// The status code of an HTTP/1.x response's first line; nullopt until a
// whole, well-formed status line is there.
std::optional<int> parse_http_status(std::string_view response);
// The probe's request: "GET PATH HTTP/1.0", Host, Connection: close.
std::string http_probe_request(std::string_view host, int port, std::string_view path);
// An IPv4 literal or "localhost" (127.0.0.1); no DNS on the loop thread.
std::optional<in_addr> probe_address(std::string_view host);

class ProbeRunner {
 public:
  // passed: the probe succeeded; detail: what happened, for the API ("connected",
  // "HTTP 503", "connect: Connection refused", "timed out after 2000 ms").
  using Done = std::function<void(bool passed, std::string detail)>;

  explicit ProbeRunner(EventLoop& loop) : loop_(loop) {}
  ~ProbeRunner();
  ProbeRunner(const ProbeRunner&) = delete;
  ProbeRunner& operator=(const ProbeRunner&) = delete;

  // Only tcp and http kinds; anything else fails at once.
  void start(int64_t key, const ProbeSpec& spec, int64_t timeout_ms, Done done);
  void cancel(int64_t key);
  size_t in_flight() const { return running_.size(); }

 private:
  struct Running {
    Fd fd;
    bool http = false;
    bool connected = false;
    std::string request;  // http: the GET, sent once connected
    size_t sent = 0;
    std::string response;  // http: what came back, at most 4 KiB
    EventLoop::TimerId deadline = 0;
    Done done;
  };
  void on_event(int64_t key);
  void finish(int64_t key, bool passed, std::string detail);

  EventLoop& loop_;
  std::map<int64_t, std::unique_ptr<Running>> running_;
};

}  // namespace forkwatch
