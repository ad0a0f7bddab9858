#include "auth.h"

#include <arpa/inet.h>
#include <grp.h>
#include <pwd.h>
#include <sys/random.h>

#include <algorithm>
#include <vector>

#include <cstdio>

namespace forkwatch {

bool constant_time_equal(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

std::optional<std::string> bearer_token(std::string_view h) {
  constexpr std::string_view kPrefix = "Bearer ";
  if (h.size() <= kPrefix.size() || h.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
  h.remove_prefix(kPrefix.size());
  while (!h.empty() && h.front() == ' ') h.remove_prefix(1);
  while (!h.empty() && h.back() == ' ') h.remove_suffix(1);
  if (h.empty()) return std::nullopt;
  return std::string(h);
}

std::optional<std::string> cookie_value(std::string_view header, std::string_view name) {
  while (!header.empty()) {
    size_t end = header.find(';');
    std::string_view part = header.substr(0, end);
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    size_t eq = part.find('=');
    if (eq != std::string_view::npos && part.substr(0, eq) == name)
      return std::string(part.substr(eq + 1));
    if (end == std::string_view::npos) break;
    header.remove_prefix(end + 1);
  }
  return std::nullopt;
}

bool same_origin(std::string_view origin, std::string_view host) {
  if (origin.empty() || host.empty()) return false;
  for (std::string_view scheme : {"http://", "https://"}) {
    if (origin.substr(0, scheme.size()) != scheme) continue;
    std::string_view rest = origin.substr(scheme.size());
    rest = rest.substr(0, rest.find('/'));  // a Referer carries a path
    return rest == host;
  }
  return false;
}

Role token_role(std::string_view presented, const Tokens& tokens) {
  // Both tokens are compared every time: how long the answer takes says
  // nothing about which one matched.
  const bool admin = !tokens.admin.empty() && constant_time_equal(presented, tokens.admin);
  const bool read = !tokens.read.empty() && constant_time_equal(presented, tokens.read);
  return admin ? Role::kAdmin : read ? Role::kRead : Role::kNone;
}

Proof prove(std::string_view authorization, std::string_view cookie_header, const Tokens& tokens) {
  auto judge = [&](std::string_view presented) { return token_role(presented, tokens); };
  Proof p;
  if (!authorization.empty()) {
    auto tok = bearer_token(authorization);
    p.role = tok ? judge(*tok) : Role::kNone;
    p.wrong_bearer = p.role == Role::kNone;
    return p;
  }
  if (auto cookie = cookie_value(cookie_header, kCookieName)) {
    p.role = judge(*cookie);
    p.by_cookie = p.role != Role::kNone;
  }
  return p;
}

Role peer_role(uid_t uid, gid_t gid, uid_t daemon_uid, std::optional<gid_t> group,
               bool (*in_group)(uid_t, gid_t)) {
  if (uid == 0 || uid == daemon_uid) return Role::kAdmin;
  if (group && (gid == *group || in_group(uid, *group))) return Role::kRead;
  return Role::kNone;
}

bool user_in_group(uid_t uid, gid_t group) {
  passwd pw{};
  passwd* found = nullptr;
  std::vector<char> buf(16384);
  if (getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) != 0 || !found) return false;
  int n = 64;
  std::vector<gid_t> groups(static_cast<size_t>(n));
  if (getgrouplist(pw.pw_name, pw.pw_gid, groups.data(), &n) < 0) {
    groups.resize(static_cast<size_t>(n));
    if (getgrouplist(pw.pw_name, pw.pw_gid, groups.data(), &n) < 0) return false;
  }
  groups.resize(static_cast<size_t>(n));
  return std::find(groups.begin(), groups.end(), group) != groups.end();
}

std::string_view host_of(std::string_view host) {
  if (host.starts_with('[')) return host.substr(0, host.find(']') + 1);
  return host.substr(0, host.find(':'));
}

std::string same_site_path(std::string_view path) {
  if (!path.starts_with('/') || path.starts_with("//") || path.starts_with("/\\")) return "/";
  for (char c : path)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f || c == '\\') return "/";
  return std::string(path);
}

std::string generate_token() {
  unsigned char bytes[32];
  size_t got = 0;
  while (got < sizeof bytes) {
    ssize_t n = getrandom(bytes + got, sizeof bytes - got, 0);
    if (n > 0) got += static_cast<size_t>(n);
  }
  std::string hex;
  char buf[3];
  for (unsigned char b : bytes) {
    std::snprintf(buf, sizeof buf, "%02x", b);
    hex += buf;
  }
  return hex;
}

bool is_loopback_host(std::string_view host) {
  if (host == "localhost") return true;
  std::string h(host);
  if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  in_addr a4{};
  if (inet_pton(AF_INET, h.c_str(), &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
  in6_addr a6{};
  if (inet_pton(AF_INET6, h.c_str(), &a6) == 1) return IN6_IS_ADDR_LOOPBACK(&a6);
  return false;
}

}  // namespace forkwatch
