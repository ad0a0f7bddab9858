#include <catch2/catch.hpp>
#include <vector>

#include "fd_counts.h"

using namespace forkwatch;

namespace {

constexpr int64_t kSec = 1'000'000'000;

// One point per second for 60 s, counts from f(second).
template <typename F>
std::vector<FdPoint> series(F f) {
  std::vector<FdPoint> v;
  for (int64_t s = 0; s < 60; ++s) v.push_back({s * kSec, f(s)});
  return v;
}

}  // namespace

TEST_CASE("a descriptor floor that keeps rising for a minute is a leak", "[unit]") {
  CHECK(fd_growing(series([](int64_t s) { return 10 + s / 2; })));
  // Clients coming and going on top of a rising floor: still a leak.
  CHECK(fd_growing(series([](int64_t s) { return 10 + s / 3 + (s % 5 == 0 ? 40 : 0); })));
}

TEST_CASE("busy but steady, a one-off rise, or too little time is no leak", "[unit]") {
  CHECK_FALSE(fd_growing(series([](int64_t s) { return 10 + (s % 7) * 5; })));        // clients come and go
  CHECK_FALSE(fd_growing(series([](int64_t s) { return s < 30 ? 10 : 200; })));       // one step up
  CHECK_FALSE(fd_growing(series([](int64_t s) { return 10 + s / 20; })));             // rises by 2
  auto young = series([](int64_t s) { return 10 + s; });
  young.resize(30);
  CHECK_FALSE(fd_growing(young));                                                     // 30 s of data
  CHECK_FALSE(fd_growing(std::vector<FdPoint>{{0, 1}, {50 * kSec, 100}}));            // two points
}
