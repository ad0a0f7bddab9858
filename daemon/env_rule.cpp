#include "env_rule.h"

#include <algorithm>
#include <array>

namespace forkwatch {
namespace {

bool portable_name(std::string_view n) {
  if (n.empty() || (n[0] >= '0' && n[0] <= '9')) return false;
  return std::all_of(n.begin(), n.end(), [](char c) {
    return c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
  });
}

bool is_locale_name(std::string_view n) {
  return n == "LANG" || n == "LANGUAGE" || (n.starts_with("LC_") && n.size() > 3);
}

// Locale values are names like "de_DE.UTF-8@euro" (LANGUAGE: a ':' list of
// them). glibc takes a value with '/' as a path to locale files, which are
// not meant to be parsed from untrusted sources: refuse any '/'.
bool safe_locale_value(std::string_view v) {
  return std::all_of(v.begin(), v.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-' || c == '@' || c == ':' || c == '+' || c == '=';
  });
}

// TZ is a POSIX rule ("CET-1CEST,M3.5.0,M10.5.0/3") or a zone under
// /usr/share/zoneinfo ("Europe/Berlin", ":Europe/Berlin"); an absolute
// path or "..", both ways to have tzset(3) parse any file, are refused.
bool safe_tz_value(std::string_view v) {
  if (v.starts_with(':')) v.remove_prefix(1);
  return !v.starts_with('/') && v.find("..") == std::string_view::npos;
}

}  // namespace

bool is_dangerous_env(std::string_view n) {
  // glibc's sysdeps/generic/unsecvars.h (what ld.so strips for setuid
  // programs), plus the prefixes that family grows under and the variables
  // that pick which program or script a shell or interpreter runs.
  static constexpr std::array<std::string_view, 26> kNames = {
      "GCONV_PATH", "GETCONF_DIR", "GLIBC_TUNABLES", "HOSTALIASES", "LOCALDOMAIN", "LOCPATH",
      "NIS_PATH",   "NLSPATH",     "RESOLV_HOST_CONF", "RES_OPTIONS", "TMPDIR",     "TZDIR",
      "PATH",       "IFS",         "ENV",            "BASH_ENV",    "SHELLOPTS",  "BASHOPTS",
      "PS4",        "PYTHONPATH",  "PYTHONSTARTUP",  "PERL5LIB",    "PERL5OPT",   "NODE_OPTIONS",
      "RUBYOPT",    "RUBYLIB"};
  if (n.starts_with("LD_") || n.starts_with("MALLOC_") || n.starts_with("BASH_FUNC_")) return true;
  return std::find(kNames.begin(), kNames.end(), n) != kNames.end();
}

std::string env_refusal(std::string_view name, std::string_view value, const ProgramSpec& program,
                        bool allow_commands) {
  const std::string n(name);
  if (!portable_name(name)) return "is not a variable name (letters, digits and _, not starting with a digit)";
  if (program.env.contains(n)) return "is set by the program's config and cannot be overridden";
  if (name.starts_with("FORKWATCH_")) return "is reserved for the daemon (FORKWATCH_*)";
  if (allow_commands) return "";
  if (is_locale_name(name))
    return safe_locale_value(value) ? "" : "must be a locale name, not a path (letters, digits and _.-@:+=)";
  if (name == "TZ")
    return safe_tz_value(value) ? "" : "must be a zone name or rule, not an absolute path or one with ..";
  if (std::find(program.api_env.begin(), program.api_env.end(), n) != program.api_env.end()) return "";
  if (is_dangerous_env(name))
    return "is read by the dynamic loader, libc or a shell and can make the program run other code; "
           "only the daemon's --allow-commands lets a request set it";
  std::string allowed = "LANG, LANGUAGE, LC_*, TZ";
  for (const auto& a : program.api_env) allowed += ", " + a;
  return "may not be set for this program (a request may set " + allowed +
         "; a config lists more in the program's api_env)";
}

std::string api_env_problem(std::string_view name) {
  if (!portable_name(name)) return "is not a variable name (letters, digits and _, not starting with a digit)";
  if (name.starts_with("FORKWATCH_")) return "is reserved for the daemon (FORKWATCH_*)";
  if (is_dangerous_env(name))
    return "is read by the dynamic loader, libc or a shell: opening it to requests would let any token "
           "holder run code (use --allow-commands for that)";
  return "";
}

}  // namespace forkwatch
