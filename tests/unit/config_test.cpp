#include <signal.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "config.h"

using forkwatch::parse_config;

namespace {
// The error message for a config text, or "" if it parsed.
std::string error_of(const std::string& text) {
  auto c = parse_config(text, "programs.json");
  return c ? "" : c.error().message();
}
}  // namespace

TEST_CASE("a full config parses with every field", "[unit]") {
  auto c = parse_config(R"({"programs": [
    {"name": "echo", "command": ["echo-fork", "--port", "9000"], "instances": 2,
     "autostart": false, "restart": "always", "restart_delay_ms": 250, "max_restarts": 4,
     "stop_signal": "SIGINT", "stop_timeout_ms": 1500, "env": {"LANG": "C"}, "cwd": "/tmp", "output": "discard"},
    {"name": "min", "command": ["exit-with"]}]})", "p.json");
  REQUIRE(c);
  REQUIRE(c->programs.size() == 2);
  const auto& p = c->programs[0];
  CHECK(p.command == std::vector<std::string>{"echo-fork", "--port", "9000"});
  CHECK(p.instances == 2);
  CHECK_FALSE(p.autostart);
  CHECK(p.restart == forkwatch::RestartPolicy::kAlways);
  CHECK(p.restart_delay_ms == 250);
  CHECK(p.max_restarts == 4);
  CHECK(p.stop_signal == SIGINT);
  CHECK(p.stop_timeout_ms == 1500);
  CHECK(p.env.at("LANG") == "C");
  CHECK(p.cwd == "/tmp");
  CHECK_FALSE(p.capture_output);
  // Defaults for the minimal program.
  CHECK(c->programs[1].restart == forkwatch::RestartPolicy::kOnFailure);
  CHECK(c->programs[1].instances == 1);
  CHECK(c->programs[1].capture_output);
}

TEST_CASE("each bad config names the file, program and field", "[unit]") {
  CHECK(error_of("{").starts_with("programs.json: not valid JSON"));
  CHECK(error_of("[]") == "programs.json: must be an object with a \"programs\" array");
  CHECK(error_of(R"({"programs": {}})") == "programs.json: programs: is required and must be an array");
  CHECK(error_of(R"({"programs": [], "extra": 1})") == "programs.json: extra: is not a known field");
  CHECK(error_of(R"({"programs": [{"command": ["x"]}]})") == "programs.json: programs[0]: name: is required");
  CHECK(error_of(R"({"programs": [{"name": "a"}]})") == "programs.json: programs[0] (\"a\"): command: is required");
  CHECK(error_of(R"({"programs": [{"name": "a", "command": []}]})") ==
        "programs.json: programs[0] (\"a\"): command: must be a non-empty array of strings");
  CHECK(error_of(R"({"programs": [{"name": "a", "command": ["x", 3]}]})") ==
        "programs.json: programs[0] (\"a\"): command[1]: must be a string (got number)");
  CHECK(error_of(R"({"programs": [{"name": "a", "command": ["x"], "restart": "sometimes"}]})") ==
        "programs.json: programs[0] (\"a\"): restart: must be one of no, on-failure, always (got \"sometimes\")");
  CHECK(error_of(R"({"programs": [{"name": "a", "command": ["x"], "instances": 0}]})") ==
        "programs.json: programs[0] (\"a\"): instances: must be between 1 and 1000 (got 0)");
  CHECK(error_of(R"({"programs": [{"name": "a", "command": ["x"], "stop_signal": "SIGNOPE"}]})") ==
        "programs.json: programs[0] (\"a\"): stop_signal: names no signal (got \"SIGNOPE\")");
  CHECK(error_of(R"({"programs": [{"name": "a", "command": ["x"], "cwd": "rel"}]})") ==
        "programs.json: programs[0] (\"a\"): cwd: must be an absolute path");
  CHECK(error_of(R"({"programs": [{"name": "a", "command": ["x"], "output": "syslog"}]})") ==
        "programs.json: programs[0] (\"a\"): output: must be capture or discard (got \"syslog\")");
  CHECK(error_of(R"({"programs": [{"name": "a", "command": ["x"], "restrat": "no"}]})") ==
        "programs.json: programs[0] (\"a\"): restrat: is not a known field");
  CHECK(error_of(R"({"programs": [{"name": "a", "command": ["x"]}, {"name": "a", "command": ["y"]}]})") ==
        "programs.json: programs[1] (\"a\"): name: is used by an earlier program");
  CHECK(error_of(R"({"programs": [{"name": "a", "command": ["x"], "env": {"A=B": "c"}}]})") ==
        "programs.json: programs[0] (\"a\"): env: variable name \"A=B\" is not valid");
  CHECK(error_of(R"({"programs": [{"name": "a\nb", "command": ["x"]}]})") ==
        "programs.json: programs[0] (\"a\\nb\"): name: must not contain control or bidi characters (\\n at character 2)");
  CHECK(error_of(R"({"programs": [{"name": "a", "command": ["x"], "api_env": ["LD_PRELOAD"]}]})") ==
        "programs.json: programs[0] (\"a\"): api_env: LD_PRELOAD is read by the dynamic loader, libc or a shell: "
        "opening it to requests would let any token holder run code (use --allow-commands for that)");
  CHECK(error_of(R"({"programs": [{"name": "a", "command": ["x"], "env": {"G": "1"}, "api_env": ["G"]}]})") ==
        "programs.json: programs[0] (\"a\"): api_env: G is also set by env, and a request never overrides env");
  CHECK(error_of(R"({"programs": [{"name": "a", "command": ["x"], "max_restarts": 1.5}]})") ==
        "programs.json: programs[0] (\"a\"): max_restarts: must be an integer (got number)");
}

TEST_CASE("a spec survives the trip to JSON and back", "[unit]") {
  auto c = parse_config(R"({"programs": [{"name": "e", "command": ["exit-with", "--code", "3"],
    "restart": "no", "stop_signal": 2, "env": {"X": "1"}, "api_env": ["GREETING"], "cwd": "/", "output": "discard"}]})", "p");
  REQUIRE(c);
  auto j = nlohmann::json::parse(forkwatch::program_to_json(c->programs[0]));
  auto back = forkwatch::program_from_json(j, "again");
  REQUIRE(back);
  CHECK(*back == c->programs[0]);
}

TEST_CASE("a missing config file is a clear error", "[unit]") {
  auto c = forkwatch::load_config("/nonexistent/programs.json");
  REQUIRE_FALSE(c);
  CHECK(c.error().message() == "open(/nonexistent/programs.json): No such file or directory");
}
