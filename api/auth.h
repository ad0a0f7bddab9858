// Auth: bearer tokens and the dashboard's cookie. Pure functions over header
// values, so every rule is unit-tested without a server.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace forkwatch {

inline constexpr std::string_view kCookieName = "forkwatch_token";

// Compares in time that depends only on the lengths, not on where they differ.
bool constant_time_equal(std::string_view a, std::string_view b);

// "Bearer abc" -> "abc"; anything else -> nullopt.
std::optional<std::string> bearer_token(std::string_view authorization);
// The value of cookie `name` in a Cookie header.
std::optional<std::string> cookie_value(std::string_view cookie_header, std::string_view name);

// An Origin (or Referer) is acceptable for a cookie-only state change when its
// scheme://host:port is the Host the request was sent to.
bool same_origin(std::string_view origin_or_referer, std::string_view host_header);

// A fresh random token: 32 bytes from getrandom, hex.
std::string generate_token();

// 127.0.0.0/8, ::1, "localhost".
bool is_loopback_host(std::string_view host);

}  // namespace forkwatch
