#include "event_loop.h"

#include <sys/epoll.h>

#include <cerrno>
#include <cstring>
#include <climits>
#include <vector>

#include "event.h"
#include "log.h"

namespace forkwatch {

Result<std::unique_ptr<EventLoop>> EventLoop::create() {
  Fd ep(epoll_create1(EPOLL_CLOEXEC));
  if (!ep) return sys_error("epoll_create1");
  return std::unique_ptr<EventLoop>(new EventLoop(std::move(ep)));
}

Status EventLoop::add(int fd, FdHandler handler) { return watch(fd, std::move(handler), EPOLLIN); }

Status EventLoop::add_writable(int fd, FdHandler handler) { return watch(fd, std::move(handler), EPOLLOUT); }

Status EventLoop::watch(int fd, FdHandler handler, uint32_t events) {
  if (handlers_.size() >= max_watched_)
    return plain_error("epoll_ctl(ADD, " + std::to_string(fd) + "): the loop already watches " +
                       std::to_string(handlers_.size()) + " fds, its limit (half of RLIMIT_NOFILE)");
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = fd;
  if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0)
    return sys_error("epoll_ctl(ADD, " + std::to_string(fd) + ")");
  handlers_[fd] = std::move(handler);
  return Ok{};
}

Status EventLoop::want_readable(int fd) {
  if (!handlers_.contains(fd)) return plain_error("fd " + std::to_string(fd) + " is not watched");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = fd;
  if (epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, fd, &ev) != 0) return sys_error("epoll_ctl(MOD, " + std::to_string(fd) + ")");
  return Ok{};
}

void EventLoop::remove(int fd) {
  if (handlers_.erase(fd)) epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
}

EventLoop::TimerId EventLoop::add_timer(int64_t deadline_ns, std::function<void()> fn) {
  TimerId id = next_timer_++;
  timers_by_deadline_.emplace(deadline_ns, id);
  timers_.emplace(id, std::make_pair(deadline_ns, std::move(fn)));
  return id;
}

void EventLoop::cancel_timer(TimerId id) {
  auto it = timers_.find(id);
  if (it == timers_.end()) return;
  auto range = timers_by_deadline_.equal_range(it->second.first);
  for (auto t = range.first; t != range.second; ++t)
    if (t->second == id) {
      timers_by_deadline_.erase(t);
      break;
    }
  timers_.erase(it);
}

int EventLoop::timeout_ms() const {
  if (timers_by_deadline_.empty()) return -1;
  int64_t wait_ns = timers_by_deadline_.begin()->first - monotonic_ns();
  if (wait_ns <= 0) return 0;
  // Round up so that a timer never fires a hair early and spins.
  int64_t ms = (wait_ns + 999'999) / 1'000'000;
  return ms > INT_MAX ? INT_MAX : static_cast<int>(ms);
}

namespace {

// No exception crosses the loop (STYLE.md, habit 10): a handler that throws
// is logged and the loop carries on. Ending here would be std::terminate,
// and every worker left running unsupervised under pid 1.
template <typename F>
void contained(const char* what, F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    log::error(std::string("loop: a ") + what + " failed and was skipped: " + e.what());
  } catch (...) {
    log::error(std::string("loop: a ") + what + " failed and was skipped");
  }
}

}  // namespace

void EventLoop::run_due_timers() {
  const int64_t now = monotonic_ns();
  while (!timers_by_deadline_.empty() && timers_by_deadline_.begin()->first <= now) {
    TimerId id = timers_by_deadline_.begin()->second;
    timers_by_deadline_.erase(timers_by_deadline_.begin());
    auto it = timers_.find(id);
    if (it == timers_.end()) continue;
    auto fn = std::move(it->second.second);
    timers_.erase(it);
    contained("timer", fn);
  }
}

void EventLoop::run() {
  running_ = true;
  std::vector<epoll_event> events(64);
  while (running_) {
    int n = epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()), timeout_ms());
    if (n < 0) {
      if (errno == EINTR) continue;
      log::error("epoll_wait: " + std::string(strerror(errno)));
      break;
    }
    ++wakeups_;
    for (int i = 0; i < n; ++i) {
      // Look the handler up per event: an earlier handler may have removed this fd.
      auto it = handlers_.find(events[i].data.fd);
      if (it == handlers_.end()) continue;
      FdHandler handler = it->second;  // a copy: the handler may remove itself
      contained("handler", [&] { handler(events[i].events); });
    }
    run_due_timers();
    if (after_dispatch_) contained("round's end", after_dispatch_);
  }
}

}  // namespace forkwatch
