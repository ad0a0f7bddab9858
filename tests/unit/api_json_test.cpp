// Request validation and auth rules of the API, on plain data.
#include <catch2/catch.hpp>

#include "auth.h"
#include "json_map.h"

using namespace forkwatch;

namespace {

Snapshot catalogue() {
  Snapshot s;
  ProgramSpec p;
  p.name = "exit-with";
  p.command = {"exit-with"};
  p.restart = RestartPolicy::kNo;
  p.builtin = true;
  s.catalogue.push_back(p);
  return s;
}

// A configured program: its env is the config's, api_env opens one more name.
Snapshot with_configured() {
  Snapshot s = catalogue();
  ProgramSpec p;
  p.name = "web";
  p.command = {"echo-epoll", "--port", "0"};
  p.env = {{"LANG", "C"}};
  p.api_env = {"GREETING"};
  s.catalogue.push_back(p);
  return s;
}

ApiError refusal(const std::string& body, bool allow_commands = false) {
  auto r = parse_start_request(body, catalogue(), allow_commands);
  REQUIRE(std::holds_alternative<ApiError>(r));
  return std::get<ApiError>(r);
}

}  // namespace

TEST_CASE("a catalogue start request becomes the program's argv plus args", "[unit]") {
  auto r = parse_start_request(R"({"program":"exit-with","args":["--code","12"],"name":"demo","restart":"on-failure","stop_signal":"SIGINT"})",
                               catalogue(), false);
  REQUIRE(std::holds_alternative<StartWorker>(r));
  const auto& s = std::get<StartWorker>(r);
  CHECK(s.spec.command == std::vector<std::string>{"exit-with", "--code", "12"});
  CHECK(s.spec.name == "demo");
  CHECK(s.program == "exit-with");
  CHECK(s.spec.restart == RestartPolicy::kOnFailure);
  CHECK(s.persistent);  // a restart policy other than "no" is kept across daemon restarts
}

TEST_CASE("each bad start request gets its own status and code", "[unit]") {
  CHECK(refusal("").code == "malformed_json");
  CHECK(refusal("{").status == 400);
  CHECK(refusal("[1]").code == "malformed_json");
  CHECK(refusal(std::string(40, '[') + std::string(40, ']')).code == "too_deep");
  auto unknown = refusal(R"({"program":"nope"})");
  CHECK(unknown.status == 404);
  CHECK(unknown.code == "unknown_program");
  CHECK(refusal(R"({"program":"exit-with","colour":"red"})").code == "unknown_field");
  CHECK(refusal(R"({"program":"exit-with","restart":"sometimes"})").status == 422);
  CHECK(refusal(R"({"program":"exit-with","args":"--code 1"})").code == "invalid_value");
  CHECK(refusal(R"({"program":"exit-with","args":[1]})").code == "invalid_value");
  CHECK(refusal(R"({"program":7})").status == 422);
  CHECK(refusal(R"({"program":"exit-with","stop_timeout_ms":-5})").status == 422);
  auto cmd = refusal(R"({"command":["/bin/sh","-c","id"]})");
  CHECK(cmd.status == 403);
  CHECK(cmd.code == "commands_not_allowed");
  CHECK(refusal(R"({})").status == 422);
}

TEST_CASE("request env goes through the env rule and never replaces the config's env", "[unit]") {
  auto ld = refusal(R"({"program":"exit-with","env":{"LD_PRELOAD":"/tmp/e.so"}})");
  CHECK(ld.status == 422);
  CHECK(ld.code == "env_not_allowed");
  CHECK_THAT(ld.message, Catch::StartsWith("env.LD_PRELOAD: "));
  auto ok = parse_start_request(R"({"program":"web","env":{"GREETING":"hi","TZ":"UTC"}})", with_configured(), false);
  REQUIRE(std::holds_alternative<StartWorker>(ok));
  const auto& env = std::get<StartWorker>(ok).spec.env;
  CHECK(env == std::map<std::string, std::string>{{"GREETING", "hi"}, {"LANG", "C"}, {"TZ", "UTC"}});
  auto over = parse_start_request(R"({"program":"web","env":{"LANG":"de_DE.UTF-8"}})", with_configured(), true);
  REQUIRE(std::holds_alternative<ApiError>(over));
  CHECK(std::get<ApiError>(over).message == "env.LANG: is set by the program's config and cannot be overridden");
  // With --allow-commands the loader's variables are the caller's to set.
  auto allowed = parse_start_request(R"({"program":"exit-with","env":{"LD_PRELOAD":"/tmp/e.so"}})", catalogue(), true);
  REQUIRE(std::holds_alternative<StartWorker>(allowed));
  CHECK(std::get<StartWorker>(allowed).spec.env.at("LD_PRELOAD") == "/tmp/e.so");
}

TEST_CASE("args and env are bounded in count (422) and bytes (413), naming field and limit", "[unit]") {
  nlohmann::json args = nlohmann::json::array();
  for (int i = 0; i < 256; ++i) args.push_back("x");
  auto many = refusal(nlohmann::json{{"program", "exit-with"}, {"args", args}}.dump());
  CHECK(many.status == 422);
  CHECK(many.code == "too_many");
  CHECK(many.message == "args: 257 arguments with the program's own; the limit is 256");
  args = nlohmann::json::array();
  for (int i = 0; i < 17; ++i) args.push_back(std::string(4000, 'a'));  // 68,017 bytes with argv[0]
  auto big = refusal(nlohmann::json{{"program", "exit-with"}, {"args", args}}.dump());
  CHECK(big.status == 413);
  CHECK(big.code == "too_large");
  CHECK_THAT(big.message, Catch::StartsWith("args: ") && Catch::EndsWith("the limit is 65536"));
  args.erase(args.begin());  // 64,010 bytes: within the limit
  CHECK(std::holds_alternative<StartWorker>(
      parse_start_request(nlohmann::json{{"program", "exit-with"}, {"args", args}}.dump(), catalogue(), false)));
  nlohmann::json env = nlohmann::json::object();
  for (int i = 0; i < 65; ++i) env["LC_X" + std::to_string(i)] = "C";
  auto vars = refusal(nlohmann::json{{"program", "exit-with"}, {"env", env}}.dump(), true);
  CHECK(vars.status == 422);
  CHECK(vars.message == "env: 65 variables; the limit is 64");
  env = nlohmann::json::object();
  for (int i = 0; i < 9; ++i) env["V" + std::to_string(i)] = std::string(4000, 'v');
  auto bytes = refusal(nlohmann::json{{"program", "exit-with"}, {"env", env}}.dump(), true);
  CHECK(bytes.status == 413);
  CHECK_THAT(bytes.message, Catch::StartsWith("env: 36027 bytes") && Catch::EndsWith("the limit is 32768"));
  nlohmann::json cmd = nlohmann::json::array({"/bin/true"});
  for (int i = 0; i < 17; ++i) cmd.push_back(std::string(4000, 'c'));
  CHECK(refusal(nlohmann::json{{"command", cmd}}.dump(), true).status == 413);
}

TEST_CASE("worker names refuse control and bidi characters and count characters", "[unit]") {
  auto nl = refusal(R"({"program":"exit-with","name":"a\nforkwatchd: <0>forged"})");
  CHECK(nl.status == 422);
  CHECK(nl.message == "name: must not contain control or bidi characters (\\n at character 2)");
  CHECK(refusal(R"({"program":"exit-with","name":"a\u0000b"})").status == 422);
  CHECK(refusal("{\"program\":\"exit-with\",\"name\":\"\\u202egnp.exe\"}").status == 422);  // RLO
  CHECK(refusal(R"({"program":"exit-with","name":"\u001b]0;x\u0007"})").status == 422);
  std::string kanji;
  for (int i = 0; i < 64; ++i) kanji += "日";
  auto r = parse_start_request(nlohmann::json{{"program", "exit-with"}, {"name", kanji}}.dump(), catalogue(), false);
  REQUIRE(std::holds_alternative<StartWorker>(r));
  CHECK(std::get<StartWorker>(r).spec.name == kanji);
  CHECK(refusal(nlohmann::json{{"program", "exit-with"}, {"name", kanji + "x"}}.dump()).message ==
        "name: must be 1 to 64 characters (got 65)");
}

TEST_CASE("an arbitrary command is accepted only with --allow-commands", "[unit]") {
  auto r = parse_start_request(R"({"command":["/bin/true"]})", catalogue(), true);
  REQUIRE(std::holds_alternative<StartWorker>(r));
  CHECK(std::get<StartWorker>(r).spec.command == std::vector<std::string>{"/bin/true"});
}

TEST_CASE("signal requests take names and numbers, and refuse what is not a signal", "[unit]") {
  CHECK(std::get<int>(parse_signal_request(R"({"signal":"SIGSTOP"})")) == SIGSTOP);
  CHECK(std::get<int>(parse_signal_request(R"({"signal":18})")) == SIGCONT);
  CHECK(std::get<ApiError>(parse_signal_request(R"({"signal":"SIGNOPE"})")).code == "invalid_signal");
  CHECK(std::get<ApiError>(parse_signal_request(R"({"signal":99})")).code == "invalid_signal");
  CHECK(std::get<ApiError>(parse_signal_request(R"({"signal":true})")).status == 422);
  CHECK(std::get<ApiError>(parse_signal_request(R"({"sig":"TERM"})")).code == "unknown_field");
}

TEST_CASE("auth: bearer parsing, constant-time compare, cookies and origins", "[unit]") {
  CHECK(bearer_token("Bearer abc") == "abc");
  CHECK_FALSE(bearer_token("Basic abc"));
  CHECK_FALSE(bearer_token("Bearer "));
  CHECK(constant_time_equal("secret", "secret"));
  CHECK_FALSE(constant_time_equal("secret", "secreT"));
  CHECK_FALSE(constant_time_equal("secret", "secret2"));
  CHECK(cookie_value("a=1; forkwatch_token=xyz; b=2", "forkwatch_token") == "xyz");
  CHECK_FALSE(cookie_value("a=1", "forkwatch_token"));
  CHECK(same_origin("http://127.0.0.1:7420", "127.0.0.1:7420"));
  CHECK(same_origin("http://127.0.0.1:7420/index.html", "127.0.0.1:7420"));
  CHECK_FALSE(same_origin("http://evil.example", "127.0.0.1:7420"));
  CHECK_FALSE(same_origin("", "127.0.0.1:7420"));
  CHECK(is_loopback_host("127.0.0.1"));
  CHECK(is_loopback_host("127.3.2.1"));
  CHECK(is_loopback_host("::1"));
  CHECK(is_loopback_host("localhost"));
  CHECK_FALSE(is_loopback_host("0.0.0.0"));
  CHECK_FALSE(is_loopback_host("10.0.0.1"));
  CHECK(generate_token().size() == 64);
  CHECK(generate_token() != generate_token());
}
