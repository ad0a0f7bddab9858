// The `ready`, `start_timeout_ms`, `health`, `watchdog_ms` and `depends_on`
// entries of the program field table (program_fields.h): parsing with errors
// that name program and field, JSON written back, and the checks that span
// fields (a watchdog needs notify). Pure; any thread.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "program_spec.h"
#include "sys_error.h"

namespace forkwatch {

Status parse_ready_field(const nlohmann::json& v, ProgramSpec& spec, const std::string& where);
Status parse_health_field(const nlohmann::json& v, ProgramSpec& spec, const std::string& where);
Status parse_depends_on_field(const nlohmann::json& v, ProgramSpec& spec, const std::string& where);
void ready_to_json(const ProgramSpec& spec, nlohmann::json& j);
void health_to_json(const ProgramSpec& spec, nlohmann::json& j);
void depends_on_to_json(const ProgramSpec& spec, nlohmann::json& j);

// What one program's fields say together: watchdog_ms only with notify.
Status check_readiness_fields(const ProgramSpec& spec, const std::string& where);

// http://HOST[:PORT][/PATH], the only form an http probe takes (no TLS).
struct HttpTarget {
  std::string host;
  int port = 80;
  std::string path = "/";
};
std::optional<HttpTarget> parse_http_url(std::string_view url);

}  // namespace forkwatch
