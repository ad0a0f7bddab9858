#include "identity.h"

#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>

#include "config.h"
#include "temp_dir.h"

using namespace forkwatch;

namespace {
ProgramSpec spec_with(void (*set)(ProgramSpec&)) {
  ProgramSpec s;
  s.name = "p";
  s.command = {"true"};
  set(s);
  return s;
}
std::string error_of(const ProgramSpec& s, Credentials self = {0, 0}) {
  auto plan = plan_identity(s, "programs[0] (\"p\")", self);
  return plan ? "" : plan.error().message();
}
std::string config_error(const std::string& program_fields) {
  auto c = parse_config(R"({"programs":[{"name":"p","command":["true"],)" + program_fields + "}]}", "p.json");
  return c ? "" : c.error().message();
}
}  // namespace

TEST_CASE("a user by name gives its uid, primary group, supplementary groups and HOME", "[unit]") {
  auto plan = plan_identity(spec_with([](ProgramSpec& s) { s.user = "nobody"; }), "w", {0, 0});
  REQUIRE(plan);
  const passwd* pw = getpwnam("nobody");
  REQUIRE(pw);
  CHECK(plan->set_uid);
  CHECK(plan->uid == pw->pw_uid);
  CHECK(plan->gid == pw->pw_gid);
  CHECK(plan->effective_uid == pw->pw_uid);
  CHECK(std::find(plan->groups.begin(), plan->groups.end(), pw->pw_gid) != plan->groups.end());
  CHECK(plan->env.at("HOME") == pw->pw_dir);
  CHECK(plan->env.at("USER") == "nobody");
  CHECK(plan->env.at("LOGNAME") == "nobody");
  CHECK(plan->env.at("SHELL") == pw->pw_shell);
}

TEST_CASE("a numeric user and group need no entry, but a bare uid without one needs a group", "[unit]") {
  auto plan = plan_identity(spec_with([](ProgramSpec& s) { s.user = "54321"; s.group = "54322"; }), "w", {0, 0});
  REQUIRE(plan);
  CHECK(plan->uid == 54321);
  CHECK(plan->gid == 54322);
  CHECK(plan->groups == std::vector<gid_t>{54322});
  CHECK(error_of(spec_with([](ProgramSpec& s) { s.user = "54321"; })) ==
        "programs[0] (\"p\"): user: uid 54321 has no passwd entry, so `group` must be given");
}

TEST_CASE("an unknown user or group is refused naming program and field", "[unit]") {
  CHECK(error_of(spec_with([](ProgramSpec& s) { s.user = "no-such-user-fw"; })) ==
        "programs[0] (\"p\"): user: no such user: \"no-such-user-fw\"");
  CHECK(error_of(spec_with([](ProgramSpec& s) { s.group = "no-such-group-fw"; })) ==
        "programs[0] (\"p\"): group: no such group: \"no-such-group-fw\"");
  // Through the config, the file and program prefix the same words.
  CHECK(config_error(R"("user":"no-such-user-fw")") ==
        "p.json: programs[0] (\"p\"): user: no such user: \"no-such-user-fw\"");
}

TEST_CASE("a daemon that is not root refuses another user, another group and a raised limit", "[unit]") {
  const Credentials nobody{65534, 65534, 0};
  CHECK(error_of(spec_with([](ProgramSpec& s) { s.user = "root"; }), nobody) ==
        "programs[0] (\"p\"): user: the daemon runs as uid 65534, not root, so it cannot run a worker as "
        "\"root\" (uid 0)");
  CHECK(error_of(spec_with([](ProgramSpec& s) { s.group = "0"; }), nobody) ==
        "programs[0] (\"p\"): group: the daemon runs as gid 65534, not root, so it cannot run a worker with gid 0");
  // Its own user is fine, and then nothing changes ids in the child.
  auto own = plan_identity(spec_with([](ProgramSpec& s) { s.user = "nobody"; }), "w", nobody);
  REQUIRE(own);
  CHECK_FALSE(own->set_uid);
  CHECK_FALSE(own->set_gid);
  CHECK(own->env.at("USER") == "nobody");
  rlimit cur{};
  getrlimit(RLIMIT_NOFILE, &cur);
  REQUIRE(cur.rlim_max != RLIM_INFINITY);
  ProgramSpec raised = spec_with([](ProgramSpec&) {});
  raised.limits["nofile"] = {cur.rlim_max + 1, cur.rlim_max + 1};
  CHECK(error_of(raised, nobody) == "programs[0] (\"p\"): limits.nofile: hard limit " +
                                        std::to_string(cur.rlim_max + 1) + " is above the daemon's hard limit " +
                                        std::to_string(cur.rlim_max) + "; raising it needs CAP_SYS_RESOURCE, which the daemon lacks");
  CHECK(error_of(raised) == "");  // root with CAP_SYS_RESOURCE may raise it
  // Root without the capability (a container's root, this machine's) may not.
  Credentials capless{0, 0, ~(uint64_t{1} << CAP_SYS_RESOURCE)};
  CHECK(error_of(raised, capless).find("raising it needs CAP_SYS_RESOURCE") != std::string::npos);
}

TEST_CASE("limits: soft above hard, above fs.nr_open, and the plan's rlimits", "[unit]") {
  ProgramSpec s = spec_with([](ProgramSpec&) {});
  s.limits["core"] = {10, 5};
  CHECK(error_of(s) == "programs[0] (\"p\"): limits.core: soft limit 10 is above its hard limit 5");
  s.limits.clear();
  s.limits["nofile"] = {kLimitInfinity, kLimitInfinity};
  CHECK(error_of(s).find("limits.nofile: hard limit unlimited is above fs.nr_open (") != std::string::npos);
  s.limits.clear();
  s.limits["nofile"] = {256, 512};
  s.limits["core"] = {0, kLimitInfinity};
  auto plan = plan_identity(s, "w", {0, 0});
  REQUIRE(plan);
  REQUIRE(plan->limits.size() == 2);
  // std::map orders them: core, then nofile.
  CHECK(plan->limits[0].resource == RLIMIT_CORE);
  CHECK(plan->limits[0].value.rlim_max == RLIM_INFINITY);
  CHECK(plan->limits[1].resource == RLIMIT_NOFILE);
  CHECK(plan->limits[1].value.rlim_cur == 256);
  CHECK(identity_step_name(1 | (1 << 8), *plan) == "setrlimit(RLIMIT_NOFILE)");
}

TEST_CASE("the field table parses identity fields and refuses bad ones with the field's name", "[unit]") {
  CHECK(config_error(R"("umask":"0800")").find("umask: must be an octal string from \"0000\" to \"0777\"") != std::string::npos);
  CHECK(config_error(R"("umask":"12345")").find("umask: must be an octal string") != std::string::npos);
  CHECK(config_error(R"("umask":18)").find("umask: must be an octal string") != std::string::npos);
  CHECK(config_error(R"("limits":{"nofiles":10})") ==
        "p.json: programs[0] (\"p\"): limits.nofiles: is not a known limit (known: nofile, nproc, core, memlock, "
        "stack, as, cpu, fsize)");
  CHECK(config_error(R"("limits":{"core":-1})") == "p.json: programs[0] (\"p\"): limits.core: must not be negative (got -1)");
  CHECK(config_error(R"("limits":{"core":[5,1]})") ==
        "p.json: programs[0] (\"p\"): limits.core: soft limit 5 is above its hard limit 1");
  CHECK(config_error(R"("limits":{"core":[1,2,3]})") == "p.json: programs[0] (\"p\"): limits.core: must be [soft, hard]");
  CHECK(config_error(R"("nice":20)") == "p.json: programs[0] (\"p\"): nice: must be between -20 and 19 (got 20)");
  CHECK(config_error(R"("oom_score_adj":-1001)") ==
        "p.json: programs[0] (\"p\"): oom_score_adj: must be between -1000 and 1000 (got -1001)");
  CHECK(config_error(R"("env_file":"rel.env")") == "p.json: programs[0] (\"p\"): env_file: must be an absolute path");
  CHECK(config_error(R"("env_file":"/nonexistent/fw.env")") ==
        "p.json: programs[0] (\"p\"): env_file: open(/nonexistent/fw.env): No such file or directory");
  CHECK(config_error(R"("user":-3)").find("user: must be a name or a number") != std::string::npos);

  auto c = parse_config(R"({"programs":[{"name":"p","command":["true"],"user":65534,"group":"nogroup","umask":"027",
    "limits":{"nofile":1024,"core":[0,"unlimited"],"cpu":"unlimited"},"nice":5,"oom_score_adj":300,"no_new_privs":true}]})",
                        "p.json");
  REQUIRE(c);
  const ProgramSpec& p = c->programs[0];
  CHECK(p.user == "65534");
  CHECK(p.group == "nogroup");
  CHECK(p.umask == 027);
  CHECK(p.limits.at("nofile") == std::pair<uint64_t, uint64_t>{1024, 1024});
  CHECK(p.limits.at("core") == std::pair<uint64_t, uint64_t>{0, kLimitInfinity});
  CHECK(p.limits.at("cpu") == std::pair<uint64_t, uint64_t>{kLimitInfinity, kLimitInfinity});
  CHECK(p.nice == 5);
  CHECK(p.oom_score_adj == 300);
  CHECK(p.no_new_privs);
  // Written back and parsed again: the same spec.
  auto again = program_from_json(nlohmann::json::parse(program_to_json(p)), "again");
  REQUIRE(again);
  CHECK(*again == p);
}

TEST_CASE("env_file's variables come after the user's and before env", "[unit]") {
  fwtest::TempDir dir;
  std::ofstream(dir.file("w.env")) << "HOME=/from/file\nGREETING='hi there'\n";
  ProgramSpec s = spec_with([](ProgramSpec& s) { s.user = "nobody"; });
  s.env_file = dir.file("w.env");
  auto plan = plan_identity(s, "w", {0, 0});
  REQUIRE(plan);
  CHECK(plan->env.at("HOME") == "/from/file");
  CHECK(plan->env.at("GREETING") == "hi there");
  CHECK(plan->env.at("USER") == "nobody");
}

TEST_CASE("user_name and group_name read the databases, and an id without an entry is empty", "[unit]") {
  CHECK(user_name(0) == "root");
  CHECK(group_name(0) == "root");
  CHECK(user_name(54321).empty());
}
