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
