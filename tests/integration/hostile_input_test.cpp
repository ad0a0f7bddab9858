// What a token holder or a worker must not be able to do to the daemon and
// its other users (issue 19): run code through the loader, read the admin
// token from a worker's environment, forge daemon log lines.
#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>

#include "daemon_harness.h"

using namespace fwtest;


TEST_CASE("without --allow-commands a request cannot set the loader's variables, and nothing starts",
          "[integration]") {
  Daemon d;
  for (const char* var : {"LD_PRELOAD", "LD_AUDIT", "GCONV_PATH", "GLIBC_TUNABLES", "PATH"}) {
    INFO(var);
    auto r = d.post("/api/workers", Json{{"program", "exit-with"}, {"args", {"--sleep"}},
                                         {"env", {{var, "/tmp/e.so"}}}}.dump());
    CHECK(r.status == 422);
    CHECK(r.json()["error"]["code"] == "env_not_allowed");
    CHECK(r.json()["error"]["message"].get<std::string>().starts_with(std::string("env.") + var + ": "));
  }
  CHECK(d.get("/api/workers").json()["workers"].empty());
  // What a token holder may set still gets through, beside the daemon's own.
  auto w = d.start({{"program", "exit-with"}, {"args", {"--sleep"}}, {"env", {{"LC_ALL", "C"}, {"TZ", "UTC"}}}});
  REQUIRE(d.wait_state(w["id"], "running"));
  auto vars = program_environ(w["pid"].get<pid_t>());
  CHECK(has_entry(vars, "LC_ALL=C"));
  CHECK(has_entry(vars, "TZ=UTC"));
}

TEST_CASE("a request's env never overrides what the config set for the program", "[integration]") {
  Daemon d({.config = R"({"programs": [{"name": "greeter", "command": ["exit-with", "--sleep"],
    "autostart": false, "env": {"LANG": "C.UTF-8"}, "api_env": ["GREETING"]}]})"});
  auto over = d.post("/api/workers", R"({"program":"greeter","env":{"LANG":"de_DE.UTF-8"}})");
  CHECK(over.status == 422);
  CHECK(over.json()["error"]["message"] == "env.LANG: is set by the program's config and cannot be overridden");
  auto w = d.start({{"program", "greeter"}, {"env", {{"GREETING", "hello"}}}});
  REQUIRE(d.wait_state(w["id"], "running"));
  auto vars = program_environ(w["pid"].get<pid_t>());
  CHECK(has_entry(vars, "LANG=C.UTF-8"));  // the config's, kept
  CHECK(has_entry(vars, "GREETING=hello"));
}

TEST_CASE("the token the daemon was given is not in any worker's environment", "[integration]") {
  const std::string secret = "s3cret-admin-token-for-the-environ-test";
  Daemon d({.env = {{"FORKWATCH_TOKEN", secret}}});
  auto w = d.start({{"program", "exit-with"}, {"args", {"--sleep"}}});
  REQUIRE(d.wait_state(w["id"], "running"));
  auto vars = program_environ(w["pid"].get<pid_t>());
  REQUIRE(has_entry(vars, "FORKWATCH_WORKER_ID=" + std::to_string(w["id"].get<int>())));
  for (const auto& kv : vars) {
    INFO(kv);
    CHECK(kv.find(secret) == std::string::npos);
    CHECK_FALSE(kv.starts_with("FORKWATCH_TOKEN="));
  }
}

TEST_CASE("a newline in a cwd a request gave stays inside one daemon log line", "[integration]") {
  Daemon d;
  const std::string forged = "<0>forkwatchd: forged emergency";
  auto r = d.post("/api/workers", Json{{"program", "exit-with"}, {"cwd", "/nonexistent\n" + forged}}.dump());
  REQUIRE(r.status == 201);
  REQUIRE(d.wait_state(r.json()["id"], "fatal"));
  // The fatal reason names the cwd; it reaches the log as one escaped line.
  REQUIRE(wait_until([&] { return d.stderr_text().find("nonexistent") != std::string::npos; }));
  std::istringstream lines(d.stderr_text());
  bool seen = false;
  for (std::string line; std::getline(lines, line);) {
    INFO(line);
    CHECK(line.rfind("forkwatchd: ", 0) == 0);  // every line is the daemon's own
    if (line.find("nonexistent") != std::string::npos) {
      seen = true;
      CHECK(line.find("/nonexistent\\n" + forged) != std::string::npos);
    }
  }
  CHECK(seen);
}
