#include "program_fields.h"

#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "config.h"
#include "json_map.h"

using namespace forkwatch;
using nlohmann::json;

namespace {
std::string read_doc(const std::string& name) {
  std::ifstream in(std::string(FORKWATCH_SOURCE_DIR) + "/" + name);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

Snapshot one_program() {
  Snapshot s;
  ProgramSpec p;
  p.name = "prog";
  p.command = {"exit-with"};
  s.catalogue.push_back(p);
  return s;
}
}  // namespace

TEST_CASE("every program field of the table is documented: config fields in config.md, request fields in API.md", "[unit]") {
  const std::string config_md = read_doc("docs/config.md"), api_md = read_doc("docs/API.md");
  for (const ProgramField& f : program_fields()) {
    INFO(f.name);
    const std::string quoted = "`" + std::string(f.name) + "`";
    if (f.in_config) CHECK(config_md.find(quoted) != std::string::npos);
    if (f.in_request) CHECK(api_md.find(quoted) != std::string::npos);
    CHECK_FALSE(f.doc.empty());
  }
}

TEST_CASE("the field table drives config and API validation alike: one bad value, one message", "[unit]") {
  for (const ProgramField& f : program_fields()) {
    if (!f.overridable || !f.in_config || !f.in_request) continue;
    INFO(f.name);
    const json bad = json::array({json::array()});  // wrong for every field
    json program = {{"name", "prog"}, {"command", {"exit-with"}}, {std::string(f.name), bad}};
    auto from_config = program_from_json(program, "programs[0]");
    REQUIRE_FALSE(from_config);
    json request = {{"program", "prog"}, {std::string(f.name), bad}};
    auto from_api = parse_start_request(request.dump(), one_program(), /*allow_commands=*/true);
    auto* e = std::get_if<ApiError>(&from_api);
    REQUIRE(e);
    CHECK(e->status == 422);
    // The same words after the prefix: "<where>: <field>: <why>".
    const std::string config_msg = from_config.error().message();
    const std::string tail = config_msg.substr(config_msg.find(": ") + 2);
    CHECK(e->message.find(tail) != std::string::npos);
  }
}

TEST_CASE("program JSON writes every field the table writes, and parses back equal", "[unit]") {
  ProgramSpec p;
  p.name = "x";
  p.command = {"a", "b"};
  p.cwd = "/tmp";
  p.pid_file = "/run/x.pid";
  p.kill_mode = KillMode::kProcess;
  p.api_env = {"GREETING"};
  p.user = "nobody";
  p.group = "nogroup";
  p.umask = 027;
  p.limits["nofile"] = {100, 200};
  p.nice = 3;
  p.oom_score_adj = -7;
  p.no_new_privs = true;
  p.env_file = "/etc/fw.env";
  p.memory_restart = 200LL << 20;
  const json j = json::parse(program_to_json(p));
  for (const ProgramField& f : program_fields())
    if (f.to_json && f.in_config) CHECK(j.contains(std::string(f.name)));
  auto back = program_from_json(j, "again");
  REQUIRE(back);
  CHECK(*back == p);
}

TEST_CASE("memory_restart: bytes from 1 MiB, refused as zero, negative or not a number, in the config and the API alike", "[unit]") {
  json ok = {{"name", "prog"}, {"command", {"exit-with"}}, {"memory_restart", 200 << 20}};
  auto spec = program_from_json(ok, "programs[0]");
  REQUIRE(spec);
  CHECK(spec->memory_restart == 200 << 20);
  ok["memory_restart"] = nullptr;
  CHECK(program_from_json(ok, "programs[0]")->memory_restart == -1);
  for (const json& bad : {json(0), json(-1), json("200M"), json(1.5), json(1 << 19)}) {
    INFO(bad.dump());
    json program = {{"name", "prog"}, {"command", {"exit-with"}}, {"memory_restart", bad}};
    auto from_config = program_from_json(program, "programs[0]");
    REQUIRE_FALSE(from_config);
    CHECK(from_config.error().message().starts_with("programs[0]: memory_restart: must be"));
    // Over the API without --allow-commands: it only restarts what the caller could.
    json request = {{"program", "prog"}, {"memory_restart", bad}};
    auto from_api = parse_start_request(request.dump(), one_program(), /*allow_commands=*/false);
    auto* e = std::get_if<ApiError>(&from_api);
    REQUIRE(e);
    CHECK(e->status == 422);
    CHECK(e->message.find("memory_restart: must be") != std::string::npos);
  }
  json request = {{"program", "prog"}, {"memory_restart", 200 << 20}};
  CHECK_FALSE(std::holds_alternative<ApiError>(parse_start_request(request.dump(), one_program(), false)));
}
