// JSON forms of the API: workers, programs, errors, and the validation of a
// POST /api/workers body. Pure functions over plain data, unit-tested.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <variant>

#include "command.h"
#include "snapshot.h"

namespace forkwatch {

// A refusal: HTTP status, snake_case code, and a message that says what to fix.
struct ApiError {
  int status = 400;
  std::string code;
  std::string message;
};

std::string error_body(const ApiError& e);

nlohmann::json worker_json(const WorkerView& w, bool with_exits);
nlohmann::json program_json(const ProgramSpec& p);
// RFC 3339 UTC with milliseconds: "2026-11-24T10:00:00.123Z".
std::string rfc3339(int64_t realtime_ns);

inline constexpr int kMaxJsonDepth = 16;
// The deepest nesting of arrays and objects in `text` (strings are skipped).
int json_depth(std::string_view text);

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
