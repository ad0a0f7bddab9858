#include "readiness_fields.h"

#include <nlohmann/json.hpp>
#include <regex>

#include "json_dump.h"
#include "parse_number.h"
#include "probe.h"
#include "program_fields.h"

namespace forkwatch {

using nlohmann::json;

std::string_view probe_kind_name(ProbeKind k) {
  switch (k) {
    case ProbeKind::kNone: return "none";
    case ProbeKind::kNotify: return "notify";
    case ProbeKind::kTcp: return "tcp";
    case ProbeKind::kHttp: return "http";
    case ProbeKind::kExec: return "exec";
    case ProbeKind::kLog: return "log";
    case ProbeKind::kFd: return "fd";
  }
  return "none";
}

std::string_view dependency_condition_name(DependencyCondition c) {
  switch (c) {
    case DependencyCondition::kStarted: return "started";
    case DependencyCondition::kReady: return "ready";
    case DependencyCondition::kHealthy: return "healthy";
    case DependencyCondition::kCompleted: return "completed";
  }
  return "ready";
}

std::optional<HttpTarget> parse_http_url(std::string_view url) {
  constexpr std::string_view kScheme = "http://";
  if (url.substr(0, kScheme.size()) != kScheme) return std::nullopt;
  url.remove_prefix(kScheme.size());
  HttpTarget t;
  const size_t slash = url.find('/');
  std::string_view authority = url.substr(0, slash);
  if (slash != std::string_view::npos) t.path = std::string(url.substr(slash));
  if (const size_t colon = authority.rfind(':'); colon != std::string_view::npos) {
    auto port = parse_decimal<int>(authority.substr(colon + 1));
    if (!port || *port < 1 || *port > 65535) return std::nullopt;
    t.port = *port;
    authority = authority.substr(0, colon);
  }
  if (authority.empty()) return std::nullopt;
  for (char c : authority)
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-')) return std::nullopt;
  for (char c : t.path)
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return std::nullopt;
  t.host = std::string(authority);
  return t;
}

namespace {

Status bad(const std::string& where, std::string_view field, const std::string& why) {
  return field_error(where, field, why);
}

Result<int64_t> positive_ms(const json& v, const std::string& where, const std::string& field) {
  if (!v.is_number_integer() || v.get<int64_t>() <= 0 || v.get<int64_t>() > kMaxDelayMs)
    return field_error(where, field, "must be an integer between 1 and " + std::to_string(kMaxDelayMs) + " (got " + dump_json(v) + ")");
  return v.get<int64_t>();
}

// {"tcp"…} / {"http"…} / … : exactly one kind; `field` is "ready" or "health".
Status parse_probe(const json& v, ProbeSpec& p, const std::string& where, const std::string& field,
                   bool health) {
  static const std::vector<std::string> kReadyKinds = {"notify", "tcp", "http", "exec", "log", "fd"};
  static const std::vector<std::string> kHealthKinds = {"tcp", "http", "exec"};
  const auto& kinds = health ? kHealthKinds : kReadyKinds;
  std::string known;
  for (const auto& k : kinds) known += (known.empty() ? "" : ", ") + k;
  if (!v.is_object()) return bad(where, field, "must be an object with one of " + known + " (got " + std::string(v.type_name()) + ")");
  std::string kind;
  for (const auto& [key, value] : v.items()) {
    if (std::find(kinds.begin(), kinds.end(), key) == kinds.end()) continue;
    if (!kind.empty()) return bad(where, field, "gives two kinds at once (" + kind + " and " + key + "); choose one");
    kind = key;
  }
  if (kind.empty()) return bad(where, field, "names no kind (one of " + known + ")");
  const json& x = v[kind];
  const std::string f = field + "." + kind;
  p = ProbeSpec{};
  if (kind == "notify") {
    if (x != json(true)) return bad(where, f, "must be true");
    p.kind = ProbeKind::kNotify;
  } else if (kind == "tcp") {
    p.kind = ProbeKind::kTcp;
    int port = 0;
    if (x.is_number_integer()) {
      port = x.get<int64_t>() >= 1 && x.get<int64_t>() <= 65535 ? static_cast<int>(x.get<int64_t>()) : 0;
    } else if (x.is_string()) {
      const std::string& s = x.get_ref<const std::string&>();
      const size_t colon = s.rfind(':');
      auto url = colon == std::string::npos ? std::nullopt : parse_http_url("http://" + s);
      if (url && url->path == "/" && s.find('/') == std::string::npos) {
        p.host = url->host;
        port = url->port;
      }
    }
    if (port == 0) return bad(where, f, "must be a port 1..65535 or \"HOST:PORT\" (got " + dump_json(x) + ")");
    if (!probe_address(p.host)) return bad(where, f, "host must be an IPv4 address or localhost (no DNS on the event loop)");
    p.port = port;
  } else if (kind == "http") {
    if (!x.is_string() || !parse_http_url(x.get<std::string>()))
      return bad(where, f, "must be a URL http://HOST[:PORT]/PATH (got " + dump_json(x) + ")");
    if (!probe_address(parse_http_url(x.get<std::string>())->host))
      return bad(where, f, "host must be an IPv4 address or localhost (no DNS on the event loop)");
    p.kind = ProbeKind::kHttp;
    p.url = x.get<std::string>();
  } else if (kind == "exec") {
    if (!x.is_array() || x.empty() || x.size() > static_cast<size_t>(kMaxArgs))
      return bad(where, f, "must be a non-empty array of strings");
    for (const auto& a : x) {
      if (!a.is_string() || a.get_ref<const std::string&>().size() > kMaxArgBytes ||
          a.get_ref<const std::string&>().find('\0') != std::string::npos)
        return bad(where, f, "must be a non-empty array of strings");
      p.argv.push_back(a.get<std::string>());
    }
    if (p.argv[0].empty()) return bad(where, f, "command must not be empty");
    p.kind = ProbeKind::kExec;
  } else if (kind == "log") {
    if (!x.is_string() || x.get_ref<const std::string&>().empty() || x.get_ref<const std::string&>().size() > kMaxArgBytes)
      return bad(where, f, "must be a non-empty regular expression");
    try {
      std::regex re(x.get<std::string>(), std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      return bad(where, f, "is not a valid regular expression (" + std::string(e.what()) + ")");
    }
    p.kind = ProbeKind::kLog;
    p.pattern = x.get<std::string>();
  } else if (kind == "fd") {
    if (!x.is_number_integer() || x.get<int64_t>() < 3 || x.get<int64_t>() > 1023)
      return bad(where, f, "must be an fd number 3..1023 (got " + dump_json(x) + ")");
    p.kind = ProbeKind::kFd;
    p.fd = static_cast<int>(x.get<int64_t>());
  }
  return Ok{};
}

json probe_json(const ProbeSpec& p) {
  json j = json::object();
  switch (p.kind) {
    case ProbeKind::kNone: return json(nullptr);
    case ProbeKind::kNotify: j["notify"] = true; break;
    case ProbeKind::kTcp:
      j["tcp"] = p.host == "127.0.0.1" ? json(p.port) : json(p.host + ":" + std::to_string(p.port));
      break;
    case ProbeKind::kHttp: j["http"] = p.url; break;
    case ProbeKind::kExec: j["exec"] = p.argv; break;
    case ProbeKind::kLog: j["log"] = p.pattern; break;
    case ProbeKind::kFd: j["fd"] = p.fd; break;
  }
  return j;
}

}  // namespace

Status parse_ready_field(const json& v, ProgramSpec& spec, const std::string& where) {
  if (v.is_null()) {
    spec.ready = ProbeSpec{};
    return Ok{};
  }
  if (v.is_object())
    for (const auto& [key, value] : v.items())
      if (key != "notify" && key != "tcp" && key != "http" && key != "exec" && key != "log" && key != "fd")
        return bad(where, "ready." + key, "is not a known readiness kind (known: notify, tcp, http, exec, log, fd)");
  return parse_probe(v, spec.ready, where, "ready", false);
}

Status parse_health_field(const json& v, ProgramSpec& spec, const std::string& where) {
  if (v.is_null()) {
    spec.health = HealthSpec{};
    return Ok{};
  }
  HealthSpec h;
  if (auto st = parse_probe(v, h.probe, where, "health", true); !st) return st;
  for (const auto& [key, value] : v.items()) {
    if (key == probe_kind_name(h.probe.kind)) continue;
    const std::string f = "health." + key;
    if (key == "interval_ms" || key == "timeout_ms" || key == "start_period_ms") {
      if (key == "start_period_ms" && value == json(0)) continue;
      auto ms = positive_ms(value, where, f);
      if (!ms) return ms.error();
      (key == "interval_ms" ? h.interval_ms : key == "timeout_ms" ? h.timeout_ms : h.start_period_ms) = *ms;
    } else if (key == "failures") {
      if (!value.is_number_integer() || value.get<int64_t>() < 1 || value.get<int64_t>() > 1000)
        return bad(where, f, "must be an integer between 1 and 1000 (got " + dump_json(value) + ")");
      h.failures = static_cast<int>(value.get<int64_t>());
    } else {
      return bad(where, f, "is not a known field (known: tcp, http, exec, interval_ms, timeout_ms, failures, start_period_ms)");
    }
  }
  spec.health = h;
  return Ok{};
}

Status parse_depends_on_field(const json& v, ProgramSpec& spec, const std::string& where) {
  if (!v.is_array()) return bad(where, "depends_on", "must be an array of program names or {\"program\", \"condition\"} objects");
  spec.depends_on.clear();
  for (size_t i = 0; i < v.size(); ++i) {
    const json& d = v[i];
    const std::string f = "depends_on[" + std::to_string(i) + "]";
    Dependency dep;
    if (d.is_string()) {
      dep.program = d.get<std::string>();
    } else if (d.is_object()) {
      for (const auto& [key, value] : d.items()) {
        if (key == "program" && value.is_string()) {
          dep.program = value.get<std::string>();
        } else if (key == "condition" && value.is_string()) {
          const std::string& c = value.get_ref<const std::string&>();
          if (c == "started") dep.condition = DependencyCondition::kStarted;
          else if (c == "ready") dep.condition = DependencyCondition::kReady;
          else if (c == "healthy") dep.condition = DependencyCondition::kHealthy;
          else if (c == "completed") dep.condition = DependencyCondition::kCompleted;
          else return bad(where, f + ".condition", "must be one of started, ready, healthy, completed (got " + dump_json(value) + ")");
        } else if (key == "part_of" && value.is_boolean()) {
          dep.part_of = value.get<bool>();
        } else {
          return bad(where, f + "." + key, key == "program" || key == "condition" || key == "part_of"
                                                ? "has the wrong type (got " + std::string(value.type_name()) + ")"
                                                : "is not a known field (known: program, condition, part_of)");
        }
      }
    } else {
      return bad(where, f, "must be a program name or {\"program\", \"condition\"} (got " + std::string(d.type_name()) + ")");
    }
    if (dep.program.empty()) return bad(where, f + ".program", "is required");
    spec.depends_on.push_back(std::move(dep));
  }
  return Ok{};
}

void ready_to_json(const ProgramSpec& spec, json& j) { j["ready"] = probe_json(spec.ready); }

void health_to_json(const ProgramSpec& spec, json& j) {
  if (spec.health.probe.kind == ProbeKind::kNone) {
    j["health"] = nullptr;
    return;
  }
  json h = probe_json(spec.health.probe);
  h["interval_ms"] = spec.health.interval_ms;
  h["timeout_ms"] = spec.health.timeout_ms;
  h["failures"] = spec.health.failures;
  h["start_period_ms"] = spec.health.start_period_ms;
  j["health"] = std::move(h);
}

void depends_on_to_json(const ProgramSpec& spec, json& j) {
  json list = json::array();
  for (const Dependency& d : spec.depends_on) {
    json x = {{"program", d.program}, {"condition", dependency_condition_name(d.condition)}};
    if (d.part_of) x["part_of"] = true;
    list.push_back(std::move(x));
  }
  j["depends_on"] = std::move(list);
}

Status check_readiness_fields(const ProgramSpec& spec, const std::string& where) {
  if (spec.watchdog_ms > 0 && spec.ready.kind != ProbeKind::kNotify)
    return bad(where, "watchdog_ms", "needs \"ready\": {\"notify\": true} (the keep-alive is WATCHDOG=1 on the notify socket)");
  for (const Dependency& d : spec.depends_on)
    if (d.program == spec.name) return bad(where, "depends_on", spec.name + " depends on itself");
  return Ok{};
}

}  // namespace forkwatch
