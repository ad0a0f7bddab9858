#include "config.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "identity.h"
#include "program_fields.h"
#include "dependency_graph.h"
#include "json_dump.h"
#include "readiness_fields.h"

namespace forkwatch {

using nlohmann::json;

std::string_view restart_policy_name(RestartPolicy p) {
  switch (p) {
    case RestartPolicy::kNo: return "no";
    case RestartPolicy::kOnFailure: return "on-failure";
    case RestartPolicy::kAlways: return "always";
  }
  return "no";
}

Status apply_overrides(const json& j, ProgramSpec& spec, const std::string& where) {
  for (const auto& [key, value] : j.items()) {
    const ProgramField* f = find_program_field(key);
    if (!f || !f->overridable || !f->in_request || !f->parse) continue;
    if (auto st = f->parse(value, spec, where); !st) return st;
  }
  return check_readiness_fields(spec, where);
}

Result<ProgramSpec> program_from_json(const json& j, const std::string& where) {
  if (!j.is_object()) return plain_error(where + ": must be an object (got " + std::string(j.type_name()) + ")");
  ProgramSpec spec;
  for (const auto& [key, value] : j.items()) {
    const ProgramField* f = find_program_field(key);
    if (!f || !f->in_config || !f->parse) return field_error(where, key, "is not a known field");
    if (auto st = f->parse(value, spec, where); !st) return st.error();
  }
  if (spec.name.empty()) return field_error(where, "name", "is required");
  if (spec.command.empty()) return field_error(where, "command", "is required");
  for (const auto& n : spec.api_env)
    if (spec.env.contains(n))
      return field_error(where, "api_env", n + " is also set by env, and a request never overrides env");
  if (auto st = check_readiness_fields(spec, where); !st) return st.error();
  return spec;
}

Result<Config> parse_config(std::string_view text, std::string_view origin) {
  const std::string o(origin);
  auto parsed = parse_json(text);
  if (auto* why = std::get_if<std::string>(&parsed)) return plain_error(o + ": not valid JSON: " + *why);
  json doc = std::move(std::get<json>(parsed));
  if (!doc.is_object()) return plain_error(o + ": must be an object with a \"programs\" array");
  for (const auto& [key, value] : doc.items())
    if (key != "programs") return plain_error(o + ": " + key + ": is not a known field");
  auto it = doc.find("programs");
  if (it == doc.end() || !it->is_array())
    return plain_error(o + ": programs: is required and must be an array");
  Config config;
  std::set<std::string> names;
  for (size_t i = 0; i < it->size(); ++i) {
    const json& p = (*it)[i];
    std::string where = o + ": programs[" + std::to_string(i) + "]";
    if (p.is_object() && p.contains("name") && p["name"].is_string())
      where += " (" + dump_json(json(p["name"])) + ")";
    auto spec = program_from_json(p, where);
    if (!spec) return spec.error();
    // Users, groups, limits and the env_file are checked now, so a bad one
    // refuses the config (exit 2, or SIGHUP keeps the old one), not a start.
    if (auto plan = plan_identity(*spec, where, Credentials::current()); !plan) return plan.error();
    if (!names.insert(spec->name).second)
      return plain_error(where + ": name: is used by an earlier program");
    config.programs.push_back(std::move(*spec));
  }
  if (auto graph = DependencyGraph::build(config.programs, o); !graph) return graph.error();
  return config;
}

std::string program_to_json(const ProgramSpec& p) {
  json j = json::object();
  for (const ProgramField& f : program_fields())
    if (f.to_json) f.to_json(p, j);
  return dump_json(j);
}

Result<Config> load_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return sys_error("open(" + path + ")");
  std::ostringstream text;
  text << in.rdbuf();
  if (text.str().size() > (16u << 20)) return plain_error(path + ": larger than 16 MiB");
  return parse_config(text.str(), path);
}

}  // namespace forkwatch
