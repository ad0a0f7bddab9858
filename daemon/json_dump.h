// The one way untrusted text goes through nlohmann/json. Process names,
// paths, arguments and request bodies may hold any bytes; json::dump() throws
// on invalid UTF-8 (type_error 316), and a parse that overflows a number
// throws out_of_range rather than parse_error. Everything here answers
// instead of throwing: invalid UTF-8 comes out as U+FFFD, as json_text.h does.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <variant>

namespace forkwatch {

// j as JSON text (indent < 0: compact); never throws for any string content.
std::string dump_json(const nlohmann::json& j, int indent = -1);

// A parsed document, or why the text is not one ("at byte 12: ...").
std::variant<nlohmann::json, std::string> parse_json(std::string_view text);

}  // namespace forkwatch
