// Why every process ended: the `cause` of wait_status rows and /api/history,
// against a real daemon and real processes.
#include <signal.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <string>

#include "daemon_harness.h"

using namespace fwtest;

namespace {
std::string id_of(const Json& w) { return std::to_string(w["id"].get<int64_t>()); }

// The newest history row of worker `w` that ended its main process.
Json last_exit_row(const Daemon& d, const Json& w) {
  Json row;
  REQUIRE(wait_until([&] {
    const Json history = d.get("/api/history?worker=" + id_of(w)).json();
    for (const auto& r : history["rows"])
      if (!r["adopted"].get<bool>() && (r["wifexited"].get<bool>() || r["wifsignaled"].get<bool>())) {
        row = r;
        return true;
      }
    return false;
  }));
  return row;
}
}  // namespace

TEST_CASE("cause: an exit of its own is exited or signaled", "[integration]") {
  Daemon d;
  auto a = d.start({{"program", "exit-with"}, {"args", {"--code", "3"}}, {"restart", "no"}});
  CHECK(last_exit_row(d, a)["cause"] == "exited");
  auto b = d.start({{"program", "exit-with"}, {"args", {"--signal", "SIGTERM"}}, {"restart", "no"}});
  CHECK(last_exit_row(d, b)["cause"] == "signaled");
}

TEST_CASE("cause: a stop by request is stop_requested, one that ignored SIGTERM is stop_timeout_killed", "[integration]") {
  Daemon d;
  auto a = d.start({{"program", "exit-with"}, {"args", {"--sleep"}}, {"restart", "always"}});
  REQUIRE(d.wait_state(a["id"], "running"));
  REQUIRE(d.post("/api/workers/" + id_of(a) + "/stop").status == 200);
  auto row = last_exit_row(d, a);
  CHECK(row["cause"] == "stop_requested");
  CHECK(row["wtermsig"] == SIGTERM);
  auto b = d.start({{"program", "exit-with"}, {"args", {"--ignore-term", "--sleep"}}, {"stop_timeout_ms", 50}});
  REQUIRE(d.wait_state(b["id"], "running"));
  const pid_t pid = d.worker(b["id"])["pid"];
  REQUIRE(wait_until([&] { return ignores_term(pid); }));
  REQUIRE(d.post("/api/workers/" + id_of(b) + "/stop").status == 200);
  row = last_exit_row(d, b);
  CHECK(row["cause"] == "stop_timeout_killed");
  CHECK(row["wtermsig"] == SIGKILL);
}

TEST_CASE("cause: what the daemon's shutdown stops is recorded as shutdown", "[integration]") {
  Daemon d;
  auto a = d.start({{"program", "exit-with"}, {"args", {"--sleep"}}, {"restart", "always"}});
  REQUIRE(d.wait_state(a["id"], "running"));
  const std::string db = d.db_path();
  REQUIRE(d.terminate() == 0);
  CHECK(query_int(db, "SELECT count(*) FROM wait_status WHERE worker_id = " + id_of(a) +
                          " AND cause = 'shutdown'") == 1);
}
