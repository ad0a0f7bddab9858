// EventLoop on its own: timers and fd handlers, and that nothing thrown by
// one of them ends the loop (issue 19: no exception crosses the loop).
#include <sys/eventfd.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <stdexcept>

#include "event.h"
#include "event_loop.h"
#include "fd.h"

using namespace forkwatch;

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
