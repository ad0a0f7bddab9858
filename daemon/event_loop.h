// EventLoop: one epoll over every event source, plus an ordered timer list
// whose nearest deadline sets the epoll timeout (one timerfd is not needed:
// the timeout is the timer). Handlers are small; the loop only dispatches.
// Owned and run by the loop thread; nothing here is thread-safe except wake().
#pragma once

#include <cstdint>
#include <cstddef>
#include <functional>
#include <memory>
#include <map>
#include <unordered_map>

#include "fd.h"
#include "sys_error.h"

namespace forkwatch {

class EventLoop {
 public:
  using FdHandler = std::function<void(uint32_t epoll_events)>;
  using TimerId = uint64_t;

  static Result<std::unique_ptr<EventLoop>> create();

  // Watch `fd` for EPOLLIN (and hang-up). The handler may remove any fd, itself included.
  // Fails (and watches nothing) once max_watched() fds are watched, or when epoll_ctl fails.
  Status add(int fd, FdHandler handler);
  // Watch `fd` for EPOLLOUT instead (a non-blocking connect completing).
  Status add_writable(int fd, FdHandler handler);
  // A watched fd's handler now runs on EPOLLIN instead (its request sent):
  // one epoll_ctl, the handler kept. Fails for an fd not watched.
  Status want_readable(int fd);
  void remove(int fd);
  // A bound on watched fds, so that output pipes cannot take the fd table the
  // API's sockets and the store need: main sets half of RLIMIT_NOFILE.
  void set_max_watched(size_t n) { max_watched_ = n; }
  size_t max_watched() const { return max_watched_; }

  // Run `fn` once at CLOCK_MONOTONIC `deadline_ns`. Cancelling a fired or unknown id is fine.
  TimerId add_timer(int64_t deadline_ns, std::function<void()> fn);
  void cancel_timer(TimerId id);

  // Called after each round of dispatch (the supervisor publishes its snapshot here).
  void set_after_dispatch(std::function<void()> fn) { after_dispatch_ = std::move(fn); }

  // Runs until stop(); returns after the round in which stop() was called.
  void run();
  void stop() { running_ = false; }
  uint64_t wakeups() const { return wakeups_; }

 private:
  explicit EventLoop(Fd epoll) : epoll_(std::move(epoll)) {}
  void run_due_timers();
  Status watch(int fd, FdHandler handler, uint32_t events);
  int timeout_ms() const;

  Fd epoll_;
  std::unordered_map<int, FdHandler> handlers_;
  std::multimap<int64_t, TimerId> timers_by_deadline_;
  std::unordered_map<TimerId, std::pair<int64_t, std::function<void()>>> timers_;
  TimerId next_timer_ = 1;
  size_t max_watched_ = SIZE_MAX;
  bool running_ = false;
  uint64_t wakeups_ = 0;
  std::function<void()> after_dispatch_;
};

}  // namespace forkwatch
