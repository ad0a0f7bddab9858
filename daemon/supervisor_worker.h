// Supervisor::Worker, shared by the supervisor's files (supervisor*.cpp):
// one worker's live state. Loop thread only; private to the supervisor.
#pragma once

#include <signal.h>
#include <unistd.h>

#include <cstring>
#include <regex>

#include "log.h"
#include "notify_socket.h"
#include "supervisor.h"

namespace forkwatch {

struct Supervisor::Worker {
  int64_t id = 0;
  std::string name, program;
  std::string config_program;  // the config program it is an instance of; "" for API workers
  ProgramSpec spec;
  bool persistent = false;
  WorkerState state = WorkerState::kStopped;
  pid_t pid = -1;         // main process; -1 once reaped (set back exactly once, in on_reaped)
  pid_t group = -1;       // the process group its last spawn led (the main pid until pid_file or MAINPID= moves it)
  SpawnRequest request;   // what the current process was started with
  int64_t started_mono_ns = 0, started_at_ns = 0;
  int restarts = 0, consecutive_failures = 0;
  std::optional<WaitRecord> last_exit;
  std::deque<WaitRecord> recent_exits;
  EventLoop::TimerId restart_timer = 0, kill_timer = 0;
  bool restart_after_stop = false, remove_after_stop = false;
  std::string fatal_reason;  // why it is fatal, or why its last start failed
  StartLimit start_limit;
  bool start_failed = false;  // the last start made no running process (spawn or watch failed)
  std::shared_ptr<OutputLog> output;
  StopFacts stop;  // the stop in progress, for its exit's cause; cleared at each start
  // Readiness, health, order (supervisor_readiness.cpp).
  std::optional<NotifySocket> notify;  // open for `ready: notify` workers, for the worker's life
  // `ready: {"fd": N}`: the read end of this run's pipe (the child holds the
  // write end as fd N), non-blocking, watched; closed once ready or at EOF.
  Fd ready_fd;
  std::string ready_fd_text;  // what it wrote before a newline (at most kMaxReadyFdText bytes)
  bool ready = false;                  // the current process passed its ready check
  int64_t ready_at_ns = 0;             // CLOCK_REALTIME when it did; 0 until then
  std::string status_text;             // the last STATUS=
  std::string waiting_for;             // why it waits (state waiting), else empty
  int64_t watchdog_usec = 0;           // this run's WATCHDOG_USEC (WATCHDOG_USEC= may change it)
  EventLoop::TimerId start_timer = 0, watchdog_timer = 0;
  EventLoop::TimerId probe_timer = 0;  // the next ready or health probe
  int64_t ready_mono_ns = 0;           // CLOCK_MONOTONIC when it became ready (start_period_ms)
  int health_failures = 0;             // consecutive failed health probes
  std::optional<bool> healthy;         // none until a health probe decided
  int64_t probe_at_ns = 0;             // CLOCK_REALTIME of the last probe's result
  std::string probe_detail;            // its result in words ("HTTP 200", "connect: Connection refused")
  std::shared_ptr<const std::regex> ready_pattern;  // `ready: {"log": …}`, compiled at spawn
  std::string log_carry;  // the start of an output line not yet ended, while starting (at most 4 KiB)
  // Processes left in its place (cgroup) after the main process went: the
  // stop signal went out, cgroup.kill follows at the timer (or the restart).
  EventLoop::TimerId leftover_timer = 0;
  int64_t leftovers_killed_ns = 0;  // CLOCK_MONOTONIC of the last kill_all; 0: none
  bool paused = false;
  // pid_file: polling for the file after the first process exited 0; 0 when not.
  EventLoop::TimerId pid_file_timer = 0;
  bool following_pid_file = false;
  Fd main_pidfd;  // watched while the main process is not the daemon's child (watch_foreign_main)
  int64_t oom_kills_at_start = 0;  // memory.events oom_kill when the main process started
  int memory_samples_over = 0;     // this run's samples in a row above memory_restart
};

}  // namespace forkwatch
