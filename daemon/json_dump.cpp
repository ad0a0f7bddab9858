#include "json_dump.h"

namespace forkwatch {

std::string dump_json(const nlohmann::json& j, int indent) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::variant<nlohmann::json, std::string> parse_json(std::string_view text) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    // parse_error carries the byte position; out_of_range (a number beyond
    // double, 1e400) is the caller's mistake all the same.
    return std::string(e.what());
  }
}

}  // namespace forkwatch
