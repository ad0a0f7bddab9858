#include "dependency_graph.h"

#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "config.h"
#include "json_map.h"

using namespace forkwatch;

namespace {
ProgramSpec prog(const std::string& name, std::vector<std::string> deps = {}) {
  ProgramSpec p;
  p.name = name;
  p.command = {"true"};
  for (auto& d : deps) p.depends_on.push_back(Dependency{d});
  return p;
}
}  // namespace

TEST_CASE("dependency graph: every program starts after what it depends on, dependents are listed", "[unit]") {
  auto g = DependencyGraph::build({prog("api", {"db", "cache"}), prog("worker", {"api"}), prog("db"), prog("cache")}, "c");
  REQUIRE(g);
  const auto& order = g->start_order();
  auto pos = [&](const std::string& n) { return std::find(order.begin(), order.end(), n) - order.begin(); };
  REQUIRE(order.size() == 4);
  CHECK(pos("db") < pos("api"));
  CHECK(pos("cache") < pos("api"));
  CHECK(pos("api") < pos("worker"));
  CHECK(g->dependents("db") == std::vector<std::string>{"api"});
  CHECK(g->dependents("api") == std::vector<std::string>{"worker"});
  CHECK(g->dependents("worker").empty());
  CHECK(g->depth("db") == 0);
  CHECK(g->depth("worker") == 2);
}

TEST_CASE("dependency graph: a cycle is refused with every program of it named, in order", "[unit]") {
  auto g = DependencyGraph::build({prog("web", {"api"}), prog("api", {"db"}), prog("db", {"web"}), prog("lone")}, "f.json");
  REQUIRE_FALSE(g);
  CHECK(g.error().message() == "f.json: depends_on: a dependency cycle: web -> api -> db -> web");
}

TEST_CASE("dependency graph: a dependency on itself or on an unknown program is refused, naming it", "[unit]") {
  auto self = DependencyGraph::build({prog("a", {"a"})}, "f");
  REQUIRE_FALSE(self);
  CHECK(self.error().message().find("program a: depends_on: depends on itself") != std::string::npos);
  auto unknown = DependencyGraph::build({prog("a", {"nope"})}, "f");
  REQUIRE_FALSE(unknown);
  CHECK(unknown.error().message() == "f: program a: depends_on: no program named nope");
}

TEST_CASE("config: depends_on, ready and health are parsed, and bad values name program and field", "[unit]") {
  auto ok = parse_config(R"({"programs": [
      {"name": "db", "command": ["true"], "ready": {"notify": true}, "watchdog_ms": 1000},
      {"name": "migrate", "command": ["true"], "restart": "no"},
      {"name": "api", "command": ["true"], "ready": {"tcp": "127.0.0.1:8080"},
       "health": {"http": "http://127.0.0.1:8080/health", "interval_ms": 500, "failures": 2},
       "depends_on": ["db", {"program": "migrate", "condition": "completed", "part_of": true}]}]})", "c.json");
  REQUIRE(ok);
  const ProgramSpec& api = ok->programs[2];
  CHECK(api.ready.kind == ProbeKind::kTcp);
  CHECK(api.ready.port == 8080);
  CHECK(api.health.probe.kind == ProbeKind::kHttp);
  CHECK(api.health.interval_ms == 500);
  CHECK(api.health.failures == 2);
  REQUIRE(api.depends_on.size() == 2);
  CHECK(api.depends_on[0].condition == DependencyCondition::kReady);
  CHECK(api.depends_on[1].condition == DependencyCondition::kCompleted);
  CHECK(api.depends_on[1].part_of);
  // Written back and read again: the same program.
  auto again = program_from_json(nlohmann::json::parse(program_to_json(api)), "again");
  REQUIRE(again);
  CHECK(*again == api);

  auto bad = [](const std::string& fields) {
    auto c = parse_config(R"({"programs": [{"name": "p", "command": ["true"], )" + fields + "}]}", "c.json");
    REQUIRE_FALSE(c);
    return c.error().message();
  };
  CHECK(bad(R"("depends_on": [{"program": "q", "condition": "soon"}])") ==
        R"(c.json: programs[0] ("p"): depends_on[0].condition: must be one of started, ready, healthy, completed (got "soon"))");
  CHECK(bad(R"("ready": {"tcp": 80, "notify": true})").find("ready: gives two kinds at once") != std::string::npos);
  CHECK(bad(R"("ready": {"tcp": 70000})").find("ready.tcp: must be a port 1..65535") != std::string::npos);
  CHECK(bad(R"("ready": {"http": "ftp://x"})").find("ready.http: must be a URL") != std::string::npos);
  CHECK(bad(R"("ready": {"log": "(unclosed"})").find("ready.log: is not a valid regular expression") != std::string::npos);
  CHECK(bad(R"("health": {"tcp": 80, "interval_ms": 0})").find("health.interval_ms: must be an integer between 1") != std::string::npos);
  CHECK(bad(R"("health": {"tcp": 80, "timeout_ms": -5})").find("health.timeout_ms") != std::string::npos);
  CHECK(bad(R"("watchdog_ms": 1000)").find("watchdog_ms: needs \"ready\": {\"notify\": true}") != std::string::npos);
  CHECK(bad(R"("depends_on": ["p"])").find("p depends on itself") != std::string::npos);
  CHECK(bad(R"("depends_on": ["ghost"])") == "c.json: program p: depends_on: no program named ghost");
}

TEST_CASE("over the API a bad ready or health value is a 422 naming the field, depends_on is config-only", "[unit]") {
  Snapshot snap;
  ProgramSpec p;
  p.name = "prog";
  p.command = {"exit-with"};
  snap.catalogue.push_back(p);
  auto refused = [&](const std::string& body) {
    auto r = parse_start_request(body, snap, /*allow_commands=*/false);
    auto* e = std::get_if<ApiError>(&r);
    REQUIRE(e);
    CHECK(e->status == 422);
    return e->message;
  };
  CHECK(refused(R"({"program": "prog", "ready": {"tcp": 0}})").find("ready.tcp: must be a port 1..65535") != std::string::npos);
  CHECK(refused(R"({"program": "prog", "ready": {"http": "http://x y/"}})").find("ready.http") != std::string::npos);
  CHECK(refused(R"({"program": "prog", "health": {"http": "http://127.0.0.1/", "failures": 0}})").find("health.failures") != std::string::npos);
  CHECK(refused(R"({"program": "prog", "watchdog_ms": 500})").find("watchdog_ms: needs") != std::string::npos);
  CHECK(refused(R"({"program": "prog", "depends_on": ["db"]})").find("\"depends_on\" is not a field") != std::string::npos);
  auto ok = parse_start_request(R"({"program": "prog", "ready": {"notify": true}, "watchdog_ms": 500})", snap, false);
  REQUIRE(std::holds_alternative<StartWorker>(ok));
  CHECK(std::get<StartWorker>(ok).spec.ready.kind == ProbeKind::kNotify);
}
