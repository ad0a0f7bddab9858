// Strict decimal parsing for flags, environment variables, URL parts and
// signal numbers: the whole text must be the number (no sign where T is
// unsigned, no spaces, no trailing bytes), and it must fit in T.
#pragma once

#include <charconv>
#include <optional>
#include <string_view>

namespace forkwatch {

template <typename T>
std::optional<T> parse_decimal(std::string_view text) {
  T value{};
  if (text.empty()) return std::nullopt;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return value;
}

}  // namespace forkwatch
