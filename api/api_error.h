// ApiError: how the API refuses a request, from framing (HttpGate) to
// validation (json_map). Rendered as CONTRACT.md's error body.
#pragma once

#include <string>

namespace forkwatch {

// A refusal: HTTP status, snake_case code, and a message that says what to fix.
struct ApiError {
  int status = 400;
  std::string code;
  std::string message;
};

// {"error":{"code":…,"message":…}}, valid JSON whatever bytes the message holds.
std::string error_body(const ApiError& e);

}  // namespace forkwatch
