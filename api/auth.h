// Auth: bearer tokens and the dashboard's cookie. Pure functions over header
// values, so every rule is unit-tested without a server.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <sys/types.h>

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

// What a caller may do: read everything but secrets and watch events, or
// also change things (CONTRACT.md, "Access").
enum class Role { kNone, kRead, kAdmin };

// The daemon's tokens; `read` is empty when no --read-token-file was given.
struct Tokens {
  std::string admin, read;
};

// What a request's Authorization and Cookie headers prove. A bearer header is
// judged alone: a wrong one is not rescued by a cookie.
struct Proof {
  Role role = Role::kNone;
  bool by_cookie = false;     // only the dashboard's cookie: changes need a same-site Origin
  bool wrong_bearer = false;  // a bearer token was sent and matches neither token
};
Proof prove(std::string_view authorization, std::string_view cookie_header, const Tokens& tokens);
// The role one presented token grants.
Role token_role(std::string_view presented, const Tokens& tokens);

// A Unix-socket peer's role (CONTRACT.md): root and the daemon's own user are
// admin, members of `group` (its primary group or the user's supplementary
// groups) read-only, anyone else none. `in_group` answers membership.
Role peer_role(uid_t uid, gid_t gid, uid_t daemon_uid, std::optional<gid_t> group,
               bool (*in_group)(uid_t uid, gid_t group));
// Membership from the user database (getpwuid_r, getgrouplist).
bool user_in_group(uid_t uid, gid_t group);

// The host of a Host header: "127.0.0.1:7420" -> "127.0.0.1", "[::1]:80" -> "[::1]".
std::string_view host_of(std::string_view host_header);

// A redirect target that stays on this origin: `path` itself when it is an
// absolute path, "/" when a browser would read it as another site
// ("//evil.example/", "/\\evil.example").
std::string same_site_path(std::string_view path);

// A fresh random token: 32 bytes from getrandom, hex.
std::string generate_token();

// 127.0.0.0/8, ::1, "localhost".
bool is_loopback_host(std::string_view host);

}  // namespace forkwatch
