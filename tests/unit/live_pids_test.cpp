#include <catch2/catch.hpp>

#include "live_pids.h"

using namespace forkwatch;

TEST_CASE("live pids round-trip through their file format and bad lines are skipped", "[unit]") {
  std::vector<LivePid> pids = {{1, 4242, 4242, 123456789}, {17, 99, 99, 5}};
  CHECK(format_live_pids(pids) == "1 4242 4242 123456789\n17 99 99 5\n");
  CHECK(parse_live_pids(format_live_pids(pids)) == pids);
  // Truncated, extra fields, words, and pids that would mean init or "every process".
  auto parsed = parse_live_pids("3 100 100\n4 101 101 7 8\nx 1 1 1\n5 1 1 9\n6 200 0 9\n7 300 -1 9\n8 400 400 11\n");
  REQUIRE(parsed.size() == 1);
  CHECK(parsed[0] == LivePid{8, 400, 400, 11});
  CHECK(parse_live_pids("").empty());
}
