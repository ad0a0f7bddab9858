#include "config.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "signals.h"

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

namespace {

// A field failure: "<where>: <field>: <why>".
SysError field_error(const std::string& where, std::string_view field, const std::string& why) {
  return plain_error(where + ": " + std::string(field) + ": " + why);
}

std::string type_name(const json& v) { return v.type_name(); }

Result<int64_t> integer_field(const json& v, const std::string& where, std::string_view field,
                              int64_t min, int64_t max) {
  if (!v.is_number_integer())
    return field_error(where, field, "must be an integer (got " + type_name(v) + ")");
  int64_t n = v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX)
                  ? INT64_MAX
                  : v.get<int64_t>();
  if (n < min || n > max)
    return field_error(where, field,
                       "must be between " + std::to_string(min) + " and " + std::to_string(max) +
                           " (got " + v.dump() + ")");
  return n;
}

Result<std::string> string_field(const json& v, const std::string& where, std::string_view field) {
  if (!v.is_string()) return field_error(where, field, "must be a string (got " + type_name(v) + ")");
  const auto& s = v.get_ref<const std::string&>();
  if (s.size() > kMaxArgBytes) return field_error(where, field, "is longer than 4096 bytes");
  if (s.find('\0') != std::string::npos) return field_error(where, field, "contains a NUL byte");
  return s;
}

Status set_override(const std::string& key, const json& v, ProgramSpec& spec,
                    const std::string& where) {
  if (key == "restart") {
    auto s = string_field(v, where, key);
    if (!s) return s.error();
    if (*s == "no") spec.restart = RestartPolicy::kNo;
    else if (*s == "on-failure") spec.restart = RestartPolicy::kOnFailure;
    else if (*s == "always") spec.restart = RestartPolicy::kAlways;
    else return field_error(where, key, "must be one of no, on-failure, always (got " + v.dump() + ")");
  } else if (key == "restart_delay_ms") {
    auto n = integer_field(v, where, key, 0, kMaxDelayMs);
    if (!n) return n.error();
    spec.restart_delay_ms = *n;
  } else if (key == "max_restarts") {
    auto n = integer_field(v, where, key, 0, 1'000'000);
    if (!n) return n.error();
    spec.max_restarts = static_cast<int>(*n);
  } else if (key == "stop_timeout_ms") {
    auto n = integer_field(v, where, key, 0, kMaxDelayMs);
    if (!n) return n.error();
    spec.stop_timeout_ms = *n;
  } else if (key == "stop_signal") {
    std::optional<int> sig;
    if (v.is_string()) sig = parse_signal(v.get<std::string>());
    else if (v.is_number_integer()) sig = parse_signal(std::to_string(v.get<int64_t>()));
    if (!sig) return field_error(where, key, "names no signal (got " + v.dump() + ")");
    spec.stop_signal = *sig;
  } else if (key == "cwd") {
    auto s = string_field(v, where, key);
    if (!s) return s.error();
    if (!s->empty() && (*s)[0] != '/') return field_error(where, key, "must be an absolute path");
    spec.cwd = *s;
  } else if (key == "output") {
    auto s = string_field(v, where, key);
    if (!s) return s.error();
    if (*s == "capture") spec.capture_output = true;
    else if (*s == "discard") spec.capture_output = false;
    else return field_error(where, key, "must be capture or discard (got " + v.dump() + ")");
  } else if (key == "env") {
    if (!v.is_object()) return field_error(where, key, "must be an object of strings");
    if (v.size() > kMaxArgs) return field_error(where, key, "has more than 256 variables");
    spec.env.clear();
    for (const auto& [name, value] : v.items()) {
      if (name.empty() || name.find('=') != std::string::npos || name.find('\0') != std::string::npos)
        return field_error(where, key, "variable name " + json(name).dump() + " is not valid");
      auto s = string_field(value, where, "env." + name);
      if (!s) return s.error();
      spec.env[name] = *s;
    }
  } else {
    return plain_error("");  // not an override key; the caller decides
  }
  return Ok{};
}

bool is_override_key(const std::string& key) {
  static const std::set<std::string> kKeys = {"restart",     "restart_delay_ms", "max_restarts",
                                              "stop_signal", "stop_timeout_ms",  "env",
                                              "cwd",         "output"};
  return kKeys.contains(key);
}

}  // namespace

Status apply_overrides(const json& j, ProgramSpec& spec, const std::string& where) {
  for (const auto& [key, value] : j.items()) {
    if (!is_override_key(key)) continue;
    if (auto st = set_override(key, value, spec, where); !st) return st;
  }
  return Ok{};
}

Result<ProgramSpec> program_from_json(const json& j, const std::string& where) {
  if (!j.is_object()) return plain_error(where + ": must be an object (got " + type_name(j) + ")");
  ProgramSpec spec;
  for (const auto& [key, value] : j.items()) {
    if (key == "name") {
      auto s = string_field(value, where, key);
      if (!s) return s.error();
      if (s->empty() || s->size() > 64)
        return field_error(where, key, "must be 1 to 64 characters");
      spec.name = *s;
    } else if (key == "command") {
      if (!value.is_array() || value.empty())
        return field_error(where, key, "must be a non-empty array of strings");
      if (value.size() > kMaxArgs) return field_error(where, key, "has more than 256 arguments");
      for (size_t i = 0; i < value.size(); ++i) {
        auto s = string_field(value[i], where, "command[" + std::to_string(i) + "]");
        if (!s) return s.error();
        spec.command.push_back(*s);
      }
      if (spec.command[0].empty()) return field_error(where, "command[0]", "must not be empty");
    } else if (key == "instances") {
      auto n = integer_field(value, where, key, 1, kMaxInstances);
      if (!n) return n.error();
      spec.instances = static_cast<int>(*n);
    } else if (key == "autostart") {
      if (!value.is_boolean()) return field_error(where, key, "must be true or false");
      spec.autostart = value.get<bool>();
    } else if (is_override_key(key)) {
      if (auto st = set_override(key, value, spec, where); !st) return st.error();
    } else {
      return field_error(where, key, "is not a known field");
    }
  }
  if (spec.name.empty()) return field_error(where, "name", "is required");
  if (spec.command.empty()) return field_error(where, "command", "is required");
  return spec;
}

Result<Config> parse_config(std::string_view text, std::string_view origin) {
  const std::string o(origin);
  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    // Parse again with exceptions for the byte position of the error.
    try {
      json ignored = json::parse(text);
      (void)ignored;
    } catch (const json::parse_error& e) {
      return plain_error(o + ": not valid JSON: " + e.what());
    }
    return plain_error(o + ": not valid JSON");
  }
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
      where += " (" + json(p["name"]).dump() + ")";
    auto spec = program_from_json(p, where);
    if (!spec) return spec.error();
    if (!names.insert(spec->name).second)
      return plain_error(where + ": name: is used by an earlier program");
    config.programs.push_back(std::move(*spec));
  }
  return config;
}

std::string program_to_json(const ProgramSpec& p) {
  json env = json::object();
  for (const auto& [k, v] : p.env) env[k] = v;
  json j = {{"name", p.name},
            {"command", p.command},
            {"instances", p.instances},
            {"autostart", p.autostart},
            {"restart", restart_policy_name(p.restart)},
            {"restart_delay_ms", p.restart_delay_ms},
            {"max_restarts", p.max_restarts},
            {"stop_signal", signal_name(p.stop_signal)},
            {"stop_timeout_ms", p.stop_timeout_ms},
            {"env", env},
            {"output", p.capture_output ? "capture" : "discard"}};
  if (!p.cwd.empty()) j["cwd"] = p.cwd;
  return j.dump();
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
