#include "program_fields.h"

#include <cstdio>
#include <nlohmann/json.hpp>

#include "env_rule.h"
#include "identity.h"
#include "json_dump.h"
#include "readiness_fields.h"
#include "signals.h"
#include "untrusted_text.h"

namespace forkwatch {

using nlohmann::json;

SysError field_error(const std::string& where, std::string_view field, const std::string& why) {
  return plain_error(where + ": " + std::string(field) + ": " + why);
}

namespace {

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
                           " (got " + dump_json(v) + ")");
  return n;
}

Result<std::string> string_field(const json& v, const std::string& where, std::string_view field) {
  if (!v.is_string()) return field_error(where, field, "must be a string (got " + type_name(v) + ")");
  const auto& s = v.get_ref<const std::string&>();
  if (s.size() > kMaxArgBytes) return field_error(where, field, "is longer than 4096 bytes");
  if (s.find('\0') != std::string::npos) return field_error(where, field, "contains a NUL byte");
  return s;
}

// An integer field stored in spec.*member, within [min, max].
template <auto Member, int64_t Min, int64_t Max>
Status set_integer(const json& v, ProgramSpec& spec, const std::string& where, std::string_view name) {
  auto n = integer_field(v, where, name, Min, Max);
  if (!n) return n.error();
  spec.*Member = static_cast<std::remove_reference_t<decltype(spec.*Member)>>(*n);
  return Ok{};
}

Status parse_name(const json& v, ProgramSpec& spec, const std::string& where) {
  auto s = string_field(v, where, "name");
  if (!s) return s.error();
  if (auto why = name_problem(*s); !why.empty()) return field_error(where, "name", why);
  spec.name = *s;
  return Ok{};
}

Status parse_command(const json& v, ProgramSpec& spec, const std::string& where) {
  if (!v.is_array() || v.empty()) return field_error(where, "command", "must be a non-empty array of strings");
  if (v.size() > kMaxArgs) return field_error(where, "command", "has more than 256 arguments");
  spec.command.clear();
  for (size_t i = 0; i < v.size(); ++i) {
    auto s = string_field(v[i], where, "command[" + std::to_string(i) + "]");
    if (!s) return s.error();
    spec.command.push_back(*s);
  }
  if (spec.command[0].empty()) return field_error(where, "command[0]", "must not be empty");
  return Ok{};
}

Status parse_env(const json& v, ProgramSpec& spec, const std::string& where) {
  if (!v.is_object()) return field_error(where, "env", "must be an object of strings");
  if (v.size() > kMaxArgs) return field_error(where, "env", "has more than 256 variables");
  spec.env.clear();
  for (const auto& [name, value] : v.items()) {
    if (name.empty() || name.find('=') != std::string::npos || name.find('\0') != std::string::npos)
      return field_error(where, "env", "variable name " + dump_json(json(name)) + " is not valid");
    auto s = string_field(value, where, "env." + name);
    if (!s) return s.error();
    spec.env[name] = *s;
  }
  return Ok{};
}

Status parse_cwd(const json& v, ProgramSpec& spec, const std::string& where) {
  auto s = string_field(v, where, "cwd");
  if (!s) return s.error();
  if (!s->empty() && (*s)[0] != '/') return field_error(where, "cwd", "must be an absolute path");
  spec.cwd = *s;
  return Ok{};
}

Status parse_pid_file(const json& v, ProgramSpec& spec, const std::string& where) {
  auto s = string_field(v, where, "pid_file");
  if (!s) return s.error();
  if (s->empty() || (*s)[0] != '/') return field_error(where, "pid_file", "must be an absolute path");
  spec.pid_file = *s;
  return Ok{};
}

// A cgroup limit: a number in [min, max], or null for none (-1).
template <auto Member, int64_t Min, int64_t Max>
Status set_limit(const json& v, ProgramSpec& spec, const std::string& where, std::string_view name) {
  if (v.is_null()) {
    spec.*Member = -1;
    return Ok{};
  }
  return set_integer<Member, Min, Max>(v, spec, where, name);
}

Status parse_cpu_max(const json& v, ProgramSpec& spec, const std::string& where) {
  if (v.is_null()) {
    spec.cpu_max = -1;
    return Ok{};
  }
  // cpu.max's quota is at least 1 ms of each 100 ms period (cgroup-v2.rst).
  if (!v.is_number() || v.get<double>() < 0.01 || v.get<double>() > 1024)
    return field_error(where, "cpu_max", "must be a fraction of one core from 0.01 to 1024 (got " + dump_json(v) + ")");
  spec.cpu_max = v.get<double>();
  return Ok{};
}

Status parse_output(const json& v, ProgramSpec& spec, const std::string& where) {
  auto s = string_field(v, where, "output");
  if (!s) return s.error();
  if (*s == "capture") spec.capture_output = true;
  else if (*s == "discard") spec.capture_output = false;
  else return field_error(where, "output", "must be capture or discard (got " + dump_json(v) + ")");
  return Ok{};
}

Status parse_kill_mode(const json& v, ProgramSpec& spec, const std::string& where) {
  auto s = string_field(v, where, "kill_mode");
  if (!s) return s.error();
  if (*s == "control-group") spec.kill_mode = KillMode::kControlGroup;
  else if (*s == "process") spec.kill_mode = KillMode::kProcess;
  else return field_error(where, "kill_mode", "must be control-group or process (got " + dump_json(v) + ")");
  return Ok{};
}

Status parse_restart(const json& v, ProgramSpec& spec, const std::string& where) {
  auto s = string_field(v, where, "restart");
  if (!s) return s.error();
  if (*s == "no") spec.restart = RestartPolicy::kNo;
  else if (*s == "on-failure") spec.restart = RestartPolicy::kOnFailure;
  else if (*s == "always") spec.restart = RestartPolicy::kAlways;
  else return field_error(where, "restart", "must be one of no, on-failure, always (got " + dump_json(v) + ")");
  return Ok{};
}

Status parse_stop_signal(const json& v, ProgramSpec& spec, const std::string& where) {
  std::optional<int> sig;
  if (v.is_string()) sig = parse_signal(v.get<std::string>());
  else if (v.is_number_integer()) sig = parse_signal(std::to_string(v.get<int64_t>()));
  if (!sig) return field_error(where, "stop_signal", "names no signal (got " + dump_json(v) + ")");
  spec.stop_signal = *sig;
  return Ok{};
}

Status parse_autostart(const json& v, ProgramSpec& spec, const std::string& where) {
  if (!v.is_boolean()) return field_error(where, "autostart", "must be true or false");
  spec.autostart = v.get<bool>();
  return Ok{};
}

Status parse_api_env(const json& v, ProgramSpec& spec, const std::string& where) {
  if (!v.is_array()) return field_error(where, "api_env", "must be an array of variable names");
  spec.api_env.clear();
  for (const auto& item : v) {
    auto s = string_field(item, where, "api_env");
    if (!s) return s.error();
    if (auto why = api_env_problem(*s); !why.empty()) return field_error(where, "api_env", *s + " " + why);
    spec.api_env.push_back(*s);
  }
  return Ok{};
}

// `user` and `group`: a name, or a number kept as its digits.
Status parse_id_name(const json& v, std::string& out, const std::string& where, std::string_view field) {
  if (v.is_number_unsigned() && v.get<uint64_t>() < 0xffffffffu) {
    out = std::to_string(v.get<uint64_t>());
    return Ok{};
  }
  if (!v.is_string())
    return field_error(where, field, "must be a name or a number from 0 to 4294967294 (got " + dump_json(v) + ")");
  const auto& s = v.get_ref<const std::string&>();
  if (s.empty() || s.size() > 256 || s.find_first_of(std::string_view(":\n\0", 3)) != std::string::npos)
    return field_error(where, field, "is not a user or group name (got " + dump_json(v) + ")");
  out = s;
  return Ok{};
}

Status parse_user(const json& v, ProgramSpec& spec, const std::string& where) {
  return parse_id_name(v, spec.user, where, "user");
}
Status parse_group(const json& v, ProgramSpec& spec, const std::string& where) {
  return parse_id_name(v, spec.group, where, "group");
}

Status parse_umask(const json& v, ProgramSpec& spec, const std::string& where) {
  const std::string why = "must be an octal string from \"0000\" to \"0777\", e.g. \"0027\" (got " + dump_json(v) + ")";
  if (!v.is_string()) return field_error(where, "umask", why);
  const auto& s = v.get_ref<const std::string&>();
  if (s.empty() || s.size() > 4 || s.find_first_not_of("01234567") != std::string::npos)
    return field_error(where, "umask", why);
  const int m = std::stoi(s, nullptr, 8);
  if (m > 0777) return field_error(where, "umask", why);
  spec.umask = m;
  return Ok{};
}

// One limit value: a count, or "unlimited".
Result<uint64_t> limit_value(const json& v, const std::string& where, const std::string& field) {
  if (v.is_string() && v.get_ref<const std::string&>() == "unlimited") return kLimitInfinity;
  if (v.is_number_integer() && !v.is_number_unsigned() && v.get<int64_t>() < 0)
    return field_error(where, field, "must not be negative (got " + dump_json(v) + ")");
  if (!v.is_number_unsigned() || v.get<uint64_t>() == kLimitInfinity)
    return field_error(where, field, "must be a number, \"unlimited\" or [soft, hard] (got " + dump_json(v) + ")");
  return v.get<uint64_t>();
}

Status parse_limits(const json& v, ProgramSpec& spec, const std::string& where) {
  if (!v.is_object())
    return field_error(where, "limits", "must be an object such as {\"nofile\": 4096, \"core\": [0, \"unlimited\"]}");
  spec.limits.clear();
  for (const auto& [name, value] : v.items()) {
    const std::string field = "limits." + escape_control(name);
    if (limit_resource(name) < 0) {
      std::string known;
      for (auto n : limit_names()) known += (known.empty() ? "" : ", ") + std::string(n);
      return field_error(where, field, "is not a known limit (known: " + known + ")");
    }
    uint64_t soft = 0, hard = 0;
    if (value.is_array()) {
      if (value.size() != 2) return field_error(where, field, "must be [soft, hard]");
      auto s = limit_value(value[0], where, field);
      if (!s) return s.error();
      auto h = limit_value(value[1], where, field);
      if (!h) return h.error();
      soft = *s;
      hard = *h;
      if (soft > hard)
        return field_error(where, field, "soft limit " + dump_json(value[0]) + " is above its hard limit " + dump_json(value[1]));
    } else {
      auto n = limit_value(value, where, field);
      if (!n) return n.error();
      soft = hard = *n;
    }
    spec.limits[name] = {soft, hard};
  }
  return Ok{};
}

json limit_json(uint64_t v) { return v == kLimitInfinity ? json("unlimited") : json(v); }

template <auto Member, int64_t Min, int64_t Max>
Status set_optional_integer(const json& v, ProgramSpec& spec, const std::string& where, std::string_view name) {
  auto n = integer_field(v, where, name, Min, Max);
  if (!n) return n.error();
  spec.*Member = static_cast<int>(*n);
  return Ok{};
}

Status parse_no_new_privs(const json& v, ProgramSpec& spec, const std::string& where) {
  if (!v.is_boolean()) return field_error(where, "no_new_privs", "must be true or false");
  spec.no_new_privs = v.get<bool>();
  return Ok{};
}

Status parse_env_file(const json& v, ProgramSpec& spec, const std::string& where) {
  auto s = string_field(v, where, "env_file");
  if (!s) return s.error();
  if (s->empty() || (*s)[0] != '/') return field_error(where, "env_file", "must be an absolute path");
  spec.env_file = *s;
  return Ok{};
}

#define FW_INTEGER(member, min, max)                                                    \
  [](const json& v, ProgramSpec& s, const std::string& w) {                             \
    return set_integer<&ProgramSpec::member, min, max>(v, s, w, #member);               \
  }
#define FW_LIMIT(member, min, max)                                                      \
  [](const json& v, ProgramSpec& s, const std::string& w) {                             \
    return set_limit<&ProgramSpec::member, min, max>(v, s, w, #member);                 \
  }
#define FW_LIMIT_JSON(member)                                                           \
  [](const ProgramSpec& p, json& j) { j[#member] = p.member < 0 ? json(nullptr) : json(p.member); }

std::vector<ProgramField> make_fields() {
  using F = ProgramField;
  return {
      F{"program", false, true, false, false, nullptr, nullptr,
        "a catalogue program to start (requests only; give it or `command`)"},
      F{"args", false, true, false, false, nullptr, nullptr,
        "arguments appended to the program's command (requests only)"},
      F{"name", true, true, false, false, parse_name,
        [](const ProgramSpec& p, json& j) { j["name"] = p.name; }, "the program's (or worker's) name"},
      F{"command", true, true, false, false, parse_command,
        [](const ProgramSpec& p, json& j) { j["command"] = p.command; },
        "argv; a bare command[0] is looked up in --workers-dir, then PATH"},
      F{"env", true, true, true, false, parse_env,
        [](const ProgramSpec& p, json& j) {
          json env = json::object();
          for (const auto& [k, v] : p.env) env[k] = v;
          j["env"] = env;
        },
        "variables added to the daemon's environment"},
      F{"cwd", true, true, true, false, parse_cwd,
        [](const ProgramSpec& p, json& j) { if (!p.cwd.empty()) j["cwd"] = p.cwd; },
        "absolute working directory; default the daemon's"},
      // Over the API only with --allow-commands: it names a file the daemon reads.
      F{"pid_file", true, true, true, true, parse_pid_file,
        [](const ProgramSpec& p, json& j) { if (!p.pid_file.empty()) j["pid_file"] = p.pid_file; },
        "a daemonizing program's pid file: once its first process exits 0, the worker follows the pid written there"},
      // Bytes from 1 MiB to 1 PiB; a pid count up to the kernel's pid_max limit.
      F{"memory_max", true, true, true, true, FW_LIMIT(memory_max, 1LL << 20, 1LL << 50), FW_LIMIT_JSON(memory_max),
        "bytes: memory.max of the worker's cgroup (the OOM killer acts above it)"},
      F{"memory_high", true, true, true, true, FW_LIMIT(memory_high, 1LL << 20, 1LL << 50), FW_LIMIT_JSON(memory_high),
        "bytes: memory.high of the worker's cgroup (throttled and reclaimed above it)"},
      F{"pids_max", true, true, true, true, FW_LIMIT(pids_max, 1, 4'194'304), FW_LIMIT_JSON(pids_max),
        "pids.max of the worker's cgroup: at most this many processes and threads"},
      F{"cpu_max", true, true, true, true, parse_cpu_max, FW_LIMIT_JSON(cpu_max),
        "a fraction of one core: cpu.max of the worker's cgroup (0.5 is 50 ms of each 100 ms)"},
      // Bytes, as memory_max. It only restarts what the caller may restart
      // anyway, so a request needs no --allow-commands for it.
      F{"memory_restart", true, true, true, false, FW_LIMIT(memory_restart, 1LL << 20, 1LL << 50),
        FW_LIMIT_JSON(memory_restart),
        "bytes: restarted gracefully (cause memory_restart) once its whole tree's resident memory is above it for two samples in a row"},
      F{"output", true, true, true, false, parse_output,
        [](const ProgramSpec& p, json& j) { j["output"] = p.capture_output ? "capture" : "discard"; },
        "capture (pipes, logs) or discard (/dev/null)"},
      F{"kill_mode", true, true, true, false, parse_kill_mode,
        [](const ProgramSpec& p, json& j) {
          j["kill_mode"] = p.kill_mode == KillMode::kControlGroup ? "control-group" : "process";
        },
        "control-group (default) or process: whether what a dead main process left in its cgroup is stopped before a restart"},
      F{"restart", true, true, true, false, parse_restart,
        [](const ProgramSpec& p, json& j) { j["restart"] = restart_policy_name(p.restart); },
        "no, on-failure or always"},
      F{"restart_delay_ms", true, true, true, false, FW_INTEGER(restart_delay_ms, 0, kMaxDelayMs),
        [](const ProgramSpec& p, json& j) { j["restart_delay_ms"] = p.restart_delay_ms; },
        "base delay before a restart"},
      F{"max_restarts", true, true, true, false, FW_INTEGER(max_restarts, 0, 1'000'000),
        [](const ProgramSpec& p, json& j) { j["max_restarts"] = p.max_restarts; },
        "consecutive automatic restarts before fatal"},
      F{"stop_signal", true, true, true, false, parse_stop_signal,
        [](const ProgramSpec& p, json& j) { j["stop_signal"] = signal_name(p.stop_signal); },
        "signal that asks it to stop"},
      F{"stop_timeout_ms", true, true, true, false, FW_INTEGER(stop_timeout_ms, 0, kMaxDelayMs),
        [](const ProgramSpec& p, json& j) { j["stop_timeout_ms"] = p.stop_timeout_ms; },
        "how long a stop waits before SIGKILL"},
      F{"user", true, true, true, true, parse_user,
        [](const ProgramSpec& p, json& j) { if (!p.user.empty()) j["user"] = p.user; },
        "user name or uid to run as; default the daemon's own"},
      F{"group", true, true, true, true, parse_group,
        [](const ProgramSpec& p, json& j) { if (!p.group.empty()) j["group"] = p.group; },
        "group name or gid; default the user's primary group"},
      F{"umask", true, true, true, false, parse_umask,
        [](const ProgramSpec& p, json& j) {
          if (p.umask < 0) return;
          char text[16];
          std::snprintf(text, sizeof text, "%04o", p.umask);
          j["umask"] = text;
        },
        "octal string, e.g. \"0027\"; default the daemon's"},
      F{"limits", true, true, true, true, parse_limits,
        [](const ProgramSpec& p, json& j) {
          if (p.limits.empty()) return;
          json l = json::object();
          for (const auto& [name, v] : p.limits)
            l[name] = v.first == v.second ? limit_json(v.first) : json::array({limit_json(v.first), limit_json(v.second)});
          j["limits"] = l;
        },
        "resource limits: nofile, nproc, core, memlock, stack, as, cpu, fsize"},
      F{"nice", true, true, true, false,
        [](const json& v, ProgramSpec& s, const std::string& w) {
          return set_optional_integer<&ProgramSpec::nice, -20, 19>(v, s, w, "nice");
        },
        [](const ProgramSpec& p, json& j) { if (p.nice) j["nice"] = *p.nice; }, "scheduling niceness, -20..19"},
      F{"oom_score_adj", true, true, true, false,
        [](const json& v, ProgramSpec& s, const std::string& w) {
          return set_optional_integer<&ProgramSpec::oom_score_adj, -1000, 1000>(v, s, w, "oom_score_adj");
        },
        [](const ProgramSpec& p, json& j) { if (p.oom_score_adj) j["oom_score_adj"] = *p.oom_score_adj; },
        "the OOM killer's bias, -1000..1000"},
      F{"no_new_privs", true, true, true, false, parse_no_new_privs,
        [](const ProgramSpec& p, json& j) { if (p.no_new_privs) j["no_new_privs"] = true; },
        "PR_SET_NO_NEW_PRIVS: exec never grants privileges (setuid bits, file capabilities)"},
      F{"env_file", true, true, true, true, parse_env_file,
        [](const ProgramSpec& p, json& j) { if (!p.env_file.empty()) j["env_file"] = p.env_file; },
        "a file of KEY=VALUE lines added to the environment, read at each start"},
      F{"instances", true, false, false, false, FW_INTEGER(instances, 1, kMaxInstances),
        [](const ProgramSpec& p, json& j) { j["instances"] = p.instances; }, "how many workers run it"},
      F{"autostart", true, false, false, false, parse_autostart,
        [](const ProgramSpec& p, json& j) { j["autostart"] = p.autostart; }, "start it when the daemon starts"},
      F{"api_env", true, false, false, false, parse_api_env,
        [](const ProgramSpec& p, json& j) { if (!p.api_env.empty()) j["api_env"] = p.api_env; },
        "variable names a request may set in env"},
      F{"ready", true, true, true, false, parse_ready_field, ready_to_json,
        "how it says it is ready: notify, tcp, http, exec, log or fd; starting until then"},
      F{"start_timeout_ms", true, true, true, false, FW_INTEGER(start_timeout_ms, 0, kMaxDelayMs),
        [](const ProgramSpec& p, json& j) { j["start_timeout_ms"] = p.start_timeout_ms; },
        "not ready by then: the start failed (cause start_timeout); 0: no limit"},
      F{"health", true, true, true, false, parse_health_field, health_to_json,
        "a tcp, http or exec health check; unhealthy: restarted (cause health_check)"},
      F{"watchdog_ms", true, true, true, false, FW_INTEGER(watchdog_ms, 0, kMaxDelayMs),
        [](const ProgramSpec& p, json& j) { j["watchdog_ms"] = p.watchdog_ms; },
        "notify workers: WATCHDOG=1 at least this often, or restarted (cause watchdog)"},
      F{"depends_on", true, false, false, false, parse_depends_on_field, depends_on_to_json,
        "programs that must be started, ready, healthy or completed first"},
  };
}

#undef FW_INTEGER

}  // namespace

const std::vector<ProgramField>& program_fields() {
  static const std::vector<ProgramField> fields = make_fields();
  return fields;
}

const ProgramField* find_program_field(std::string_view name) {
  for (const ProgramField& f : program_fields())
    if (f.name == name) return &f;
  return nullptr;
}

std::string request_field_names() {
  std::string out;
  for (const ProgramField& f : program_fields())
    if (f.in_request) out += (out.empty() ? "" : ", ") + std::string(f.name);
  return out;
}

}  // namespace forkwatch
