// Parsing and validating programs: the --config file, and the worker requests
// of POST /api/workers. Each error names the file, the program and the field,
// e.g. `programs.json: programs[1] ("echo"): restart: must be one of no,
// on-failure, always (got "sometimes")`. No I/O but load_config's read and,
// in parse_config, identity.h's checks (the user and group databases, the
// env_file, the daemon's own limits).
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>

#include "program_spec.h"
#include "sys_error.h"

namespace forkwatch {

// The text of a whole config file. `origin` prefixes every error (the path).
Result<Config> parse_config(std::string_view text, std::string_view origin);
Result<Config> load_config(const std::string& path);

// One program object. `where` prefixes errors ("programs[1] (\"echo\")").
// Unknown fields are errors: a typo must not silently become a default.
Result<ProgramSpec> program_from_json(const nlohmann::json& j, const std::string& where);

// The fields a worker request may override on top of a catalogue program
// (env, cwd, restart, restart_delay_ms, max_restarts, stop_signal,
// stop_timeout_ms); every other key is left to the caller.
Status apply_overrides(const nlohmann::json& j, ProgramSpec& spec, const std::string& where);

// The inverse of program_from_json: a spec as a JSON object text that parses
// back to an equal spec (how the store keeps API workers across restarts).
std::string program_to_json(const ProgramSpec& spec);

}  // namespace forkwatch
