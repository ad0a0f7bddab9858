#include "json_map.h"

#include <time.h>

#include <set>

#include "config.h"
#include "event_json.h"
#include "signals.h"

namespace forkwatch {

using nlohmann::json;

std::string error_body(const ApiError& e) {
  return json{{"error", {{"code", e.code}, {"message", e.message}}}}.dump();
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

json program_json(const ProgramSpec& p) {
  json j = json::parse(program_to_json(p));
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
      {"restarts", w.restarts},
      {"started_at", w.started_at_ns > 0 ? json(rfc3339(w.started_at_ns)) : json(nullptr)},
      {"started_at_ns", w.started_at_ns},
      {"command", w.spec.command},
      {"restart", restart_policy_name(w.spec.restart)},
      {"stop_signal", signal_name(w.spec.stop_signal)},
      {"persistent", w.persistent},
      {"last_exit", w.last_exit ? json::parse(wait_record_json(*w.last_exit)) : json(nullptr)},
  };
  if (!w.fatal_reason.empty()) j["fatal_reason"] = w.fatal_reason;
  if (with_exits) {
    json exits = json::array();
    for (auto it = w.recent_exits.rbegin(); it != w.recent_exits.rend(); ++it)
      exits.push_back(json::parse(wait_record_json(*it)));
    j["recent_exits"] = std::move(exits);
    if (w.output) {
      OutputStats st = w.output->stats();
      j["output"] = {{"lines", st.lines}, {"bytes", st.bytes}, {"evicted_lines", st.evicted_lines},
                     {"dropped_bytes", st.dropped_bytes}, {"file", w.output->file_path()}};
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
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded()) {
    std::string why = "the body is not valid JSON";
    try {
      json ignored = json::parse(body);
      (void)ignored;
    } catch (const json::parse_error& e) {
      why += ": " + std::string(e.what());
    }
    return ApiError{400, "malformed_json", why};
  }
  if (!j.is_object())
    return ApiError{400, "malformed_json", std::string("the body must be a JSON object, not ") + j.type_name()};
  return j;
}

std::variant<StartWorker, ApiError> parse_start_request(const std::string& body, const Snapshot& snap,
                                                        bool allow_commands) {
  auto parsed = parse_body_object(body);
  if (auto* e = std::get_if<ApiError>(&parsed)) return *e;
  const json& j = std::get<json>(parsed);
  static const std::set<std::string> kKnown = {"program", "args", "name", "command", "env", "cwd", "output",
                                               "restart", "restart_delay_ms", "max_restarts",
                                               "stop_signal", "stop_timeout_ms"};
  for (const auto& [key, value] : j.items())
    if (!kKnown.contains(key))
      return ApiError{422, "unknown_field", "\"" + key + "\" is not a field of a worker request (known: program, args, name, command, env, cwd, output, restart, restart_delay_ms, max_restarts, stop_signal, stop_timeout_ms)"};
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
      return ApiError{404, "unknown_program", "no program \"" + name + "\" in the catalogue (known: " + known + ")"};
    }
    start.spec = *found;
    start.spec.instances = 1;
    start.program = name;
    if (j.contains("args")) {
      const json& args = j["args"];
      if (!args.is_array()) return ApiError{422, "invalid_value", "args: must be an array of strings"};
      if (args.size() + start.spec.command.size() > kMaxArgs)
        return ApiError{422, "invalid_value", "args: more than 256 arguments"};
      for (const auto& a : args) {
        if (!a.is_string()) return ApiError{422, "invalid_value", "args: every argument must be a string"};
        const auto& s = a.get_ref<const std::string&>();
        if (s.size() > kMaxArgBytes || s.find('\0') != std::string::npos)
          return ApiError{422, "invalid_value", "args: an argument is longer than 4096 bytes or holds a NUL"};
        start.spec.command.push_back(s);
      }
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
  }
  start.spec.name.clear();
  if (j.contains("name")) {
    if (!j["name"].is_string() || j["name"].get<std::string>().empty() || j["name"].get<std::string>().size() > 64)
      return ApiError{422, "invalid_value", "name: must be a string of 1 to 64 characters"};
    start.spec.name = j["name"].get<std::string>();
  }
  if (auto st = apply_overrides(j, start.spec, "request"); !st)
    return ApiError{422, "invalid_value", st.error().message()};
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
  if (!sig) return ApiError{422, "invalid_signal", "signal: " + v.dump() + " names no signal (use SIGTERM, TERM or 1..64)"};
  return *sig;
}

}  // namespace forkwatch
