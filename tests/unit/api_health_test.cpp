#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "health.h"

using namespace forkwatch;

namespace {
constexpr int64_t kSecond = 1'000'000'000;
}

TEST_CASE("health is ok until a spawn fails, degraded for the next minute, then ok again", "[unit]") {
  HealthMonitor m;
  const int64_t t0 = 100 * kSecond;
  CHECK_FALSE(m.assess(nullptr, 0, t0).degraded());
  Health h = m.assess(nullptr, 3, t0 + kSecond);
  REQUIRE(h.degraded());
  CHECK(h.reasons.at(0).code == "spawns_failing");
  CHECK_THAT(h.reasons[0].message, Catch::Contains("3 spawns failed"));
  CHECK(m.assess(nullptr, 3, t0 + 30 * kSecond).degraded());
  CHECK_FALSE(m.assess(nullptr, 3, t0 + 62 * kSecond).degraded());
  Health again = m.assess(nullptr, 4, t0 + 63 * kSecond);
  REQUIRE(again.degraded());
  CHECK(again.reasons[0].numbers.at(0) == std::pair<std::string, int64_t>{"spawn_failures", 1});
}

TEST_CASE("a store that cannot write makes health degraded with its queue depth and reason", "[unit]") {
  HealthMonitor m;
  db::StoreStats s;
  s.degraded = true;
  s.queue_depth = 1200;
  s.max_queue_items = 60000;
  s.items_dropped = 0;
  s.last_error = "sqlite3_step(...): database or disk is full";
  Health h = m.assess(&s, 0, kSecond);
  REQUIRE(h.degraded());
  auto j = nlohmann::json::parse(health_json(h, &s, "1.0", 42, 7));
  CHECK(j["status"] == "degraded");
  CHECK(j["pid"] == 42);
  CHECK(j["reasons"][0]["code"] == "store_unwritable");
  CHECK(j["reasons"][0]["queue_depth"] == 1200);
  CHECK_THAT(j["reasons"][0]["message"].get<std::string>(), Catch::Contains("disk is full"));
  CHECK(j["store"]["queue_limit"] == 60000);

  s.degraded = false;
  s.queue_depth = 0;
  s.last_catch_up_ns = 250'000'000;
  Health ok = m.assess(&s, 0, 2 * kSecond);
  auto k = nlohmann::json::parse(health_json(ok, &s, "1.0", 42, 8));
  CHECK(k["status"] == "ok");
  CHECK_FALSE(k.contains("reasons"));
  CHECK(k["store"]["last_catch_up_ms"] == 250);
}
