// EventLoop on its own: timers and fd handlers, and that nothing thrown by
// one of them ends the loop (issue 19: no exception crosses the loop).
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <stdexcept>
#include <vector>

#include "event.h"
#include "event_loop.h"
#include "fd.h"

using namespace forkwatch;

TEST_CASE("want_readable turns a writable watch into a readable one, keeping its handler", "[unit]") {
  auto loop = EventLoop::create();
  REQUIRE(loop);
  EventLoop& l = **loop;
  int p[2];
  REQUIRE(pipe2(p, O_NONBLOCK | O_CLOEXEC) == 0);
  Fd rd(p[0]), wr(p[1]);
  CHECK_FALSE(l.want_readable(rd.get()));  // not watched
  // The read end is never writable: watched for EPOLLOUT it stays silent.
  std::vector<uint32_t> seen;
  REQUIRE(l.add_writable(rd.get(), [&](uint32_t ev) {
    seen.push_back(ev);
    l.stop();
  }));
  REQUIRE(::write(wr.get(), "x", 1) == 1);
  l.add_timer(monotonic_ns() + 50'000'000, [&] { l.stop(); });
  l.run();
  CHECK(seen.empty());
  REQUIRE(l.want_readable(rd.get()));
  l.add_timer(monotonic_ns() + 5'000'000'000, [&] { l.stop(); });  // a deadline, not a wait
  l.run();
  REQUIRE(seen.size() == 1);
  CHECK((seen[0] & EPOLLIN) != 0);
}

TEST_CASE("a handler or timer that throws is skipped and the loop carries on", "[unit]") {
  auto loop = EventLoop::create();
  REQUIRE(loop);
  EventLoop& l = **loop;
  Fd efd(eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC));  // readable at once
  REQUIRE(efd);
  int handled = 0, timers = 0;
  REQUIRE(l.add(efd.get(), [&](uint32_t) {
    uint64_t v;
    (void)!::read(efd.get(), &v, sizeof v);
    ++handled;
    throw std::runtime_error("a handler's bug");
  }));
  const int64_t now = monotonic_ns();
  l.add_timer(now, [&] {
    ++timers;
    throw std::bad_alloc();
  });
  l.add_timer(now + 1'000'000, [&] {
    ++timers;
    l.stop();
  });
  l.run();  // returns only if the throws were contained
  CHECK(handled == 1);
  CHECK(timers == 2);
}
