// The text of an env_file (systemd's EnvironmentFile=): KEY=VALUE lines,
// blank lines and comments ('#' or ';' first on a line), an optional
// leading "export ", values bare (trailing blanks dropped, a backslash
// escapes the next character, one at the end of a line joins the next),
// in single quotes (literal, may span lines) or in double quotes (\" \\ \$
// \` escaped, a backslash-newline joins lines). A later KEY wins. Pure; any
// thread.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "sys_error.h"

namespace forkwatch {

// Errors read "line N: why", e.g. "line 3: \"1X\" is not a variable name".
Result<std::map<std::string, std::string>> parse_env_file(std::string_view text);

// Reads and parses `path` (at most 1 MiB). Errors name the file:
// "open(/etc/x.env): No such file or directory", "/etc/x.env: line 3: …".
Result<std::map<std::string, std::string>> read_env_file(const std::string& path);

}  // namespace forkwatch
