#include "json_map.h"

#include <time.h>

#include <map>
#include <optional>
#include <set>
#include <vector>

#include "cgroup.h"
#include "config.h"
#include "program_fields.h"
#include "env_rule.h"
#include "event_json.h"
#include "identity.h"
#include "json_dump.h"
#include "signals.h"
#include "untrusted_text.h"

namespace forkwatch {

using nlohmann::json;

std::string error_body(const ApiError& e) {
  return dump_json(json{{"error", {{"code", e.code}, {"message", e.message}}}});
}

std::string rfc3339(int64_t ns) {
  if (ns <= 0) return "";
  time_t secs = static_cast<time_t>(ns / 1'000'000'000);
  struct tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf + n, sizeof buf - n, ".%03dZ", static_cast<int>(ns % 1'000'000'000 / 1'000'000));
  return buf;
}

json program_json(const ProgramSpec& p, bool redact_env) {
  json j = json::parse(program_to_json(p));
  if (redact_env && j.contains("env"))
    for (auto& [name, value] : j["env"].items()) value = "***";
  j["builtin"] = p.builtin;
  return j;
}

json worker_json(const WorkerView& w, bool with_exits) {
  json j = {
      {"id", w.id},
      {"name", w.name},
      {"program", w.program.empty() ? json(nullptr) : json(w.program)},
      {"state", w.state},
      {"pid", w.pid > 0 ? json(w.pid) : json(nullptr)},
      {"uid", w.uid >= 0 ? json(w.uid) : json(nullptr)},
      {"gid", w.gid >= 0 ? json(w.gid) : json(nullptr)},
      {"restarts", w.restarts},
      {"started_at", w.started_at_ns > 0 ? json(rfc3339(w.started_at_ns)) : json(nullptr)},
      {"started_at_ns", w.started_at_ns},
      {"command", w.spec.command},
      {"restart", restart_policy_name(w.spec.restart)},
      {"stop_signal", signal_name(w.spec.stop_signal)},
      {"persistent", w.persistent},
      {"last_exit", w.last_exit ? json::parse(wait_record_json(*w.last_exit)) : json(nullptr)},
  };
  j["user"] = nullptr;
  j["group"] = nullptr;
  if (w.uid >= 0) {
    // The name of the effective id, or its number when it has no entry.
    const std::string u = user_name(static_cast<uid_t>(w.uid)), g = group_name(static_cast<gid_t>(w.gid));
    j["user"] = u.empty() ? std::to_string(w.uid) : u;
    j["group"] = g.empty() ? std::to_string(w.gid) : g;
  }
  if (!w.fatal_reason.empty()) j["fatal_reason"] = w.fatal_reason;
  j["ready"] = w.ready;
  j["ready_at_ns"] = w.ready_at_ns;
  j["status_text"] = w.status_text.empty() ? json(nullptr) : json(w.status_text);
  j["health"] = w.healthy ? json(*w.healthy ? "healthy" : "unhealthy") : json(nullptr);
  j["waiting_for"] = w.waiting_for.empty() ? json(nullptr) : json(w.waiting_for);
  if (w.probe_at_ns > 0) j["last_probe"] = {{"at_ns", w.probe_at_ns}, {"result", w.probe_detail}};
  j["cgroup"] = w.cgroup.empty() ? json(nullptr) : json(w.cgroup);
  j["paused"] = w.paused;
  // A main process that exited while its cgroup still holds processes (a
  // daemonizing program) is not simply "exited": say what is left.
  j["processes_left"] = w.processes_left;
  j["limits_not_enforced"] = w.limits_not_enforced;
  if (with_exits && !w.cgroup_dir.empty()) {
    // Read now from cgroupfs: CPU of every process that ever ran in it
    // (reaped ones included), PSI, and memory/pids where those controllers are.
    const CgroupStats s = read_cgroup_stats(w.cgroup_dir);
    auto opt = [](const std::optional<int64_t>& v) { return v ? json(*v) : json(nullptr); };
    j["cgroup_stats"] = {{"cpu_usage_usec", s.cpu_usage_usec},   {"cpu_user_usec", s.cpu_user_usec},
                         {"cpu_system_usec", s.cpu_system_usec}, {"processes", s.processes},
                         {"cpu_pressure_total_us", opt(s.cpu_pressure_us)},
                         {"memory_pressure_total_us", opt(s.memory_pressure_us)},
                         {"io_pressure_total_us", opt(s.io_pressure_us)},
                         {"memory_current_bytes", opt(s.memory_current)},
                         {"pids_current", opt(s.pids_current)},
                         {"oom_kills", opt(s.oom_kills)}};
  }
  if (with_exits) {
    json exits = json::array();
    for (auto it = w.recent_exits.rbegin(); it != w.recent_exits.rend(); ++it)
      exits.push_back(json::parse(wait_record_json(*it)));
    j["recent_exits"] = std::move(exits);
    if (w.output) {
      OutputStats st = w.output->stats();
      j["output"] = {{"lines", st.lines}, {"bytes", st.bytes}, {"evicted_lines", st.evicted_lines},
                     {"dropped_bytes", st.dropped_bytes}, {"cut_lines", st.cut_lines},
                     {"cut_bytes", st.cut_bytes}, {"rotated_bytes", st.rotated_bytes},
                     {"ring_bytes", st.ring_bytes}, {"file", w.output->file_path()}};
    }
  }
  return j;
}

int json_depth(std::string_view text) {
  int depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '[' || c == '{') deepest = std::max(deepest, ++depth);
    else if (c == ']' || c == '}') --depth;
  }
  return deepest;
}

std::variant<json, ApiError> parse_body_object(const std::string& body) {
  if (body.empty()) return ApiError{400, "malformed_json", "the request needs a JSON object body"};
  if (json_depth(body) > kMaxJsonDepth)
    return ApiError{400, "too_deep", "JSON nests deeper than " + std::to_string(kMaxJsonDepth) + " levels"};
  auto parsed = parse_json(body);
  if (auto* why = std::get_if<std::string>(&parsed))
    return ApiError{400, "malformed_json", "the body is not valid JSON: " + *why};
  json j = std::move(std::get<json>(parsed));
  if (!j.is_object())
    return ApiError{400, "malformed_json", std::string("the body must be a JSON object, not ") + j.type_name()};
  return j;
}

namespace {

ApiError too_many_args(size_t count, const char* field) {
  return ApiError{422, "too_many", std::string(field) + ": " + std::to_string(count) +
                                       " arguments with the program's own; the limit is " +
                                       std::to_string(kMaxArgs)};
}

// argv as a whole stays within the request limits: count (422), bytes (413).
std::optional<ApiError> argv_over_limit(const std::vector<std::string>& argv, const char* field) {
  if (argv.size() > static_cast<size_t>(kMaxArgs)) return too_many_args(argv.size(), field);
  size_t bytes = 0;
  for (const auto& a : argv) bytes += a.size() + 1;  // as execve(2) counts them, NUL included
  if (bytes > kMaxRequestArgBytes)
    return ApiError{413, "too_large", std::string(field) + ": " + std::to_string(bytes) +
                                          " bytes of arguments with the program's own; the limit is " +
                                          std::to_string(kMaxRequestArgBytes)};
  return std::nullopt;
}

// The request's env on top of the program's, through the one rule of
// env_rule.h; the config's variables are never replaced.
std::optional<ApiError> merge_request_env(const json& env, ProgramSpec& spec, bool allow_commands) {
  if (!env.is_object()) return ApiError{422, "invalid_value", "env: must be an object of strings"};
  if (env.size() > kMaxRequestEnvVars)
    return ApiError{422, "too_many", "env: " + std::to_string(env.size()) + " variables; the limit is " +
                                         std::to_string(kMaxRequestEnvVars)};
  size_t bytes = 0;
  for (const auto& [name, value] : env.items())
    bytes += name.size() + 1 + (value.is_string() ? value.get_ref<const std::string&>().size() : 0);
  if (bytes > kMaxRequestEnvBytes)
    return ApiError{413, "too_large", "env: " + std::to_string(bytes) + " bytes of names and values; the limit is " +
                                          std::to_string(kMaxRequestEnvBytes)};
  std::map<std::string, std::string> added;
  for (const auto& [name, value] : env.items()) {
    const std::string field = "env." + escape_control(name);
    if (!value.is_string()) return ApiError{422, "invalid_value", field + ": must be a string"};
    const auto& v = value.get_ref<const std::string&>();
    if (v.size() > kMaxArgBytes || v.find('\0') != std::string::npos)
      return ApiError{422, "invalid_value",
                      field + ": is longer than " + std::to_string(kMaxArgBytes) + " bytes or holds a NUL"};
    if (auto why = env_refusal(name, v, spec, allow_commands); !why.empty())
      return ApiError{422, "env_not_allowed", field + ": " + why};
    added[name] = v;
  }
  spec.env.merge(added);
  return std::nullopt;
}

}  // namespace

std::variant<StartWorker, ApiError> parse_start_request(const std::string& body, const Snapshot& snap,
                                                        bool allow_commands) {
  auto parsed = parse_body_object(body);
  if (auto* e = std::get_if<ApiError>(&parsed)) return *e;
  const json& j = std::get<json>(parsed);
  for (const auto& [key, value] : j.items()) {
    const ProgramField* f = find_program_field(key);
    if (!f || !f->in_request)
      return ApiError{422, "unknown_field", "\"" + escape_control(key) + "\" is not a field of a worker request (known: " + request_field_names() + ")"};
    if (f->needs_allow_commands && !allow_commands)
      return ApiError{403, "commands_not_allowed", std::string(f->name) + ": changes who or what runs; start the daemon with --allow-commands to set it over the API"};
  }
  const bool has_program = j.contains("program"), has_command = j.contains("command");
  if (has_program == has_command)
    return ApiError{422, "invalid_value", "give exactly one of \"program\" (a catalogue name) or \"command\" (an argv array)"};

  StartWorker start;
  if (has_program) {
    if (!j["program"].is_string())
      return ApiError{422, "invalid_value", "program: must be a string"};
    const std::string name = j["program"].get<std::string>();
    const ProgramSpec* found = nullptr;
    for (const auto& p : snap.catalogue)
      if (p.name == name) found = &p;
    if (!found) {
      std::string known;
      for (const auto& p : snap.catalogue) known += (known.empty() ? "" : ", ") + p.name;
      return ApiError{404, "unknown_program", "no program \"" + escape_control(name) + "\" in the catalogue (known: " + known + ")"};
    }
    start.spec = *found;
    start.spec.instances = 1;
    start.program = name;
    if (j.contains("args")) {
      const json& args = j["args"];
      if (!args.is_array()) return ApiError{422, "invalid_value", "args: must be an array of strings"};
      if (args.size() + start.spec.command.size() > static_cast<size_t>(kMaxArgs))
        return too_many_args(args.size() + start.spec.command.size(), "args");
      for (const auto& a : args) {
        if (!a.is_string()) return ApiError{422, "invalid_value", "args: every argument must be a string"};
        const auto& s = a.get_ref<const std::string&>();
        if (s.size() > kMaxArgBytes || s.find('\0') != std::string::npos)
          return ApiError{422, "invalid_value", "args: an argument is longer than " + std::to_string(kMaxArgBytes) + " bytes or holds a NUL"};
        start.spec.command.push_back(s);
      }
      if (auto e = argv_over_limit(start.spec.command, "args")) return *e;
    }
  } else {
    if (!allow_commands)
      return ApiError{403, "commands_not_allowed", "arbitrary commands are refused; start the daemon with --allow-commands, or use a catalogue \"program\""};
    if (j.contains("args")) return ApiError{422, "invalid_value", "args: goes with program; put the arguments in command"};
    json p = {{"name", "command"}, {"command", j["command"]}};
    auto spec = program_from_json(p, "request");
    if (!spec) return ApiError{422, "invalid_value", spec.error().message()};
    start.spec = *spec;
    start.spec.restart = RestartPolicy::kNo;
    if (auto e = argv_over_limit(start.spec.command, "command")) return *e;
  }
  start.spec.name.clear();
  if (j.contains("name")) {
    if (!j["name"].is_string()) return ApiError{422, "invalid_value", "name: must be a string"};
    if (auto why = name_problem(j["name"].get_ref<const std::string&>()); !why.empty())
      return ApiError{422, "invalid_value", "name: " + why};
    start.spec.name = j["name"].get<std::string>();
  }
  json overrides = j;
  overrides.erase("env");  // merged below, through the env rule
  if (auto st = apply_overrides(overrides, start.spec, "request"); !st)
    return ApiError{422, "invalid_value", st.error().message()};
  if (j.contains("env"))
    if (auto e = merge_request_env(j["env"], start.spec, allow_commands)) return *e;
  if (auto plan = plan_identity(start.spec, "request", Credentials::current()); !plan)
    return ApiError{422, "invalid_value", plan.error().message()};
  start.persistent = start.spec.restart != RestartPolicy::kNo;
  return start;
}

std::variant<int, ApiError> parse_signal_request(const std::string& body) {
  auto parsed = parse_body_object(body);
  if (auto* e = std::get_if<ApiError>(&parsed)) return *e;
  const json& j = std::get<json>(parsed);
  for (const auto& [key, value] : j.items())
    if (key != "signal") return ApiError{422, "unknown_field", "\"" + key + "\" is not a field of a signal request (known: signal)"};
  if (!j.contains("signal")) return ApiError{422, "invalid_value", "signal: is required, e.g. {\"signal\":\"SIGTERM\"}"};
  const json& v = j["signal"];
  std::optional<int> sig;
  if (v.is_string()) sig = parse_signal(v.get<std::string>());
  else if (v.is_number_integer()) sig = parse_signal(std::to_string(v.get<int64_t>()));
  else return ApiError{422, "invalid_value", "signal: must be a name like \"SIGTERM\" or a number"};
  if (!sig) return ApiError{422, "invalid_signal", "signal: " + dump_json(v) + " names no signal (use SIGTERM, TERM or 1..64)"};
  return *sig;
}

}  // namespace forkwatch
