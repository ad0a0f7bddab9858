// Readiness as the API and the CLI show it: the worker object's fields and
// `forkwatch status`'s columns.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "client_format.h"
#include "json_map.h"

using namespace forkwatch;

TEST_CASE("a worker object carries ready, ready_at_ns, status_text, health and waiting_for", "[unit]") {
  WorkerView w;
  w.id = 3;
  w.name = "api";
  w.state = "waiting";
  w.waiting_for = "waiting for db to be ready";
  auto j = worker_json(w, false);
  CHECK(j["state"] == "waiting");
  CHECK(j["ready"] == false);
  CHECK(j["ready_at_ns"] == 0);
  CHECK(j["status_text"].is_null());
  CHECK(j["health"].is_null());
  CHECK(j["waiting_for"] == "waiting for db to be ready");
  w.state = "running";
  w.waiting_for.clear();
  w.ready = true;
  w.ready_at_ns = 42;
  w.status_text = "Ready to accept connections";
  w.healthy = false;
  j = worker_json(w, false);
  CHECK(j["ready"] == true);
  CHECK(j["ready_at_ns"] == 42);
  CHECK(j["status_text"] == "Ready to accept connections");
  CHECK(j["health"] == "unhealthy");
  CHECK(j["waiting_for"].is_null());
}

TEST_CASE("forkwatch status shows READY, HEALTH and why a worker waits", "[unit]") {
  const nlohmann::json workers = nlohmann::json::parse(R"([
    {"id": 1, "name": "db", "state": "starting", "pid": 10, "ready": false, "status_text": "loading\u001b[2J",
     "started_at_ns": 1, "restarts": 0},
    {"id": 2, "name": "api", "state": "waiting", "pid": null, "ready": false, "waiting_for": "waiting for db to be ready",
     "restarts": 0},
    {"id": 3, "name": "web", "state": "running", "pid": 12, "ready": true, "health": "healthy", "started_at_ns": 1,
     "restarts": 0}])");
  const std::string out = client::render_workers(workers, 2'000'000'000);
  CHECK(out.find("READY") != std::string::npos);
  CHECK(out.find("HEALTH") != std::string::npos);
  CHECK(out.find("waiting for db to be ready") != std::string::npos);
  CHECK(out.find("healthy") != std::string::npos);
  // A worker's STATUS= reaches the terminal escaped.
  CHECK(out.find('\x1b') == std::string::npos);
  CHECK(out.find("loading") != std::string::npos);
}
