// JSON text written straight into a string, for the hot paths (tree samples,
// events, history rows) where building an nlohmann::json value first costs
// more than the rendering. Strings come out valid UTF-8: a byte that is not
// part of a valid sequence becomes U+FFFD, so a hostile process name cannot
// break a reader.
#pragma once

#include <charconv>
#include <concepts>
#include <optional>
#include <string>
#include <string_view>

namespace forkwatch::json_text {

inline void put_raw(std::string& out, std::string_view s) { out.append(s); }

template <typename T>
void put_int(std::string& out, T v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, end);
}

inline void put_bool(std::string& out, bool v) { out.append(v ? "true" : "false"); }

// The escaped characters of s, without quotes.
void put_string_body(std::string& out, std::string_view s);

inline void put_string(std::string& out, std::string_view s) {
  out += '"';
  put_string_body(out, s);
  out += '"';
}

// A key written with its punctuation (",\"pid\":" or "{\"id\":") and its value.
template <std::integral T>
  requires(!std::same_as<T, bool>)
void put_field(std::string& out, std::string_view key, T v) {
  put_raw(out, key);
  put_int(out, v);
}
inline void put_field(std::string& out, std::string_view key, bool v) {
  put_raw(out, key);
  put_bool(out, v);
}
inline void put_field(std::string& out, std::string_view key, std::string_view v) {
  put_raw(out, key);
  put_string(out, v);
}
// An absent value is null.
template <std::integral T>
void put_field(std::string& out, std::string_view key, const std::optional<T>& v) {
  if (v) return put_field(out, key, *v);
  put_raw(out, key);
  put_raw(out, "null");
}

}  // namespace forkwatch::json_text
