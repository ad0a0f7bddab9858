// JSON forms of the API: workers, programs, errors, and the validation of a
// POST /api/workers body. Pure functions over plain data, unit-tested.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <variant>

#include "api_error.h"
#include "command.h"
#include "snapshot.h"

namespace forkwatch {

nlohmann::json worker_json(const WorkerView& w, bool with_exits);
// redact_env: `env` values show as "***" (read-only callers; CONTRACT.md, "Access").
nlohmann::json program_json(const ProgramSpec& p, bool redact_env = false);
// RFC 3339 UTC with milliseconds: "2026-11-24T10:00:00.123Z".
std::string rfc3339(int64_t realtime_ns);

inline constexpr int kMaxJsonDepth = 16;
// The deepest nesting of arrays and objects in `text` (strings are skipped).
int json_depth(std::string_view text);

// Limits of a start request (docs/API.md, "Limits"). They bound what one
// worker costs the daemon: its argv and env are kept in memory, in SQLite
// and in every GET /api/workers reply. Counts over a limit are 422, bytes
// 413; argument and value sizes are config.h's kMaxArgs and kMaxArgBytes.
inline constexpr size_t kMaxRequestArgBytes = 64 * 1024;  // all of argv, the program's own included
inline constexpr size_t kMaxRequestEnvVars = 64;
inline constexpr size_t kMaxRequestEnvBytes = 32 * 1024;  // names and values together

// Parses and validates a start request against the catalogue. Returns the
// command to post, or the error to answer with.
std::variant<StartWorker, ApiError> parse_start_request(const std::string& body,
                                                        const Snapshot& snapshot,
                                                        bool allow_commands);

// A signal request body: {"signal": "SIGSTOP"} or {"signal": 19}.
std::variant<int, ApiError> parse_signal_request(const std::string& body);

// Parses a whole body as a JSON object with the depth limit; errors are 400s.
std::variant<nlohmann::json, ApiError> parse_body_object(const std::string& body);

}  // namespace forkwatch
