// LifetimeSource: the proc connector as one more fd in the loop, feeding a
// LifetimeTracker. It counts what the sequence numbers say was lost, and on
// an overrun (ENOBUFS) or a gap enlarges the receive buffer, re-reads /proc
// and records a gap marker. When the socket cannot be had (no CAP_NET_ADMIN,
// a PID or network namespace, an old kernel) it says why in
// ProcessEventStats and the tree stays sampled. Loop thread only.
#pragma once

#include <functional>
#include <memory>
#include <optional>

#include "event_loop.h"
#include "lifetime.h"
#include "proc_connector.h"
#include "proc_reader.h"

namespace forkwatch {

struct LifetimeSourceOptions {
  int rcvbuf_bytes = 4 << 20;      // asked for at open (root: SO_RCVBUFFORCE)
  int max_rcvbuf_bytes = 64 << 20;  // an overrun doubles it up to this
  std::string proc_root = "/proc";
};

class LifetimeSource {
 public:
  LifetimeSource(EventLoop& loop, LifetimeTracker& tracker, ProcessEventStats& stats, LifetimeSourceOptions options);
  ~LifetimeSource();

  // Opens and subscribes; false (with stats.reason set) means sampling only.
  bool start();
  bool active() const { return connector_.has_value(); }
  // argv is read from /proc at the exec event; a short-lived program
  // (/bin/true: about 0.9 ms) is gone by then when the loop wakes late on a
  // busy machine (measured at load 7 on 2 cores: median lag 700 us, half the
  // argvs lost at nice 0; 65 us and none lost at SCHED_FIFO 1). Makes the
  // calling (loop) thread SCHED_FIFO 1 with SCHED_RESET_ON_FORK; returns why
  // not ("" on success). The kernel's RT throttling still leaves 5 % to others.
  static std::string raise_loop_priority();

 private:
  void on_readable();
  void resync();
  void arm_tick();

  EventLoop& loop_;
  LifetimeTracker& tracker_;
  ProcessEventStats& stats_;
  const LifetimeSourceOptions options_;
  std::optional<ProcConnector> connector_;
  SeqTracker seq_;
  std::unique_ptr<ProcReader> reader_;  // only for a re-read after a loss
  std::vector<ProcEvent> batch_;
  EventLoop::TimerId tick_ = 0;  // 0 while not armed
};

}  // namespace forkwatch
