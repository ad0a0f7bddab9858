// Event: what the supervisor reports. The loop thread creates each event,
// numbers it, and hands it to every EventSink in order (the store first, so an
// event reaches the store's queue before any API reader can see it).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "exit_cause.h"
#include "wait_status.h"

namespace forkwatch {

enum class EventKind { kSpawn, kExit, kStop, kContinue, kRestart, kAdopt, kState, kSample, kProcess, kPause, kResume };

// The SSE event name: "spawn", "exit", "stop", "continue", "restart", "adopt", "state", "sample",
// "process" (the kernel's fork, exec, exit or a gap; shown live, never stored as an event),
// "pause" and "resume" (a worker's tree frozen or thawed, cgroup.freeze).
std::string_view event_kind_name(EventKind kind);

// One row of the wait_status table: one status that wait4 returned.
struct WaitRecord {
  int64_t id = 0;     // row id; 0 until the store has written it
  int64_t ts_ns = 0;  // CLOCK_REALTIME when reaped
  pid_t pid = 0;
  std::optional<int64_t> worker_id;  // for an adopted orphan: the worker whose group it was in
  bool adopted = false;              // not the daemon's own child
  WaitStatus status;
  Rusage rusage;  // zero for stop and continue
  ExitCause cause = ExitCause::kExited;  // why (exit_cause.h); the `cause` column
};

struct Event {
  uint64_t id = 0;  // assigned by the loop; strictly increasing, also across daemon restarts
  EventKind kind = EventKind::kState;
  int64_t ts_ns = 0;  // CLOCK_REALTIME
  std::optional<int64_t> worker_id;
  pid_t pid = 0;
  std::optional<WaitRecord> wait;  // set for exit, stop, continue, adopt: one wait_status row
  std::string state;               // kState: the worker's new state; kRestart: "backoff"
  std::string detail;              // words for people: a fatal reason, a restart delay
  std::string data_json;           // kSample, kProcess: the ready-made JSON payload
};

// Receives events on the loop thread. Implementations must not block for long
// and must not call back into the supervisor.
class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void publish(const Event& event) = 0;
  // After the events of one loop round: a sink that wakes readers wakes them
  // here, once per round rather than once per event. Never a wait: the loop
  // calls it every round. (Named apart from Store::flush(), which waits for
  // SQLite: under that name the store overrode it, and a full disk stopped
  // the loop.)
  virtual void round_done() {}
};

int64_t realtime_ns();
int64_t monotonic_ns();

}  // namespace forkwatch
