// Which environment variables a POST /api/workers request may set for a
// program, and which ones a config's `api_env` may open to requests. One
// rule, used by the API's request validation and by config parsing; pure,
// any thread may call it. docs/API.md ("What a token holder can do") is the
// user-facing statement of it.
#pragma once

#include <string>
#include <string_view>

#include "program_spec.h"

namespace forkwatch {

// Why a request may not set `name` to `value` for `program`; empty when it
// may. Always refused: names that are not [A-Za-z_][A-Za-z0-9_]*, names the
// program's config `env` sets (the config wins), and FORKWATCH_* (the
// daemon's own). Without `allow_commands` only LANG, LANGUAGE, LC_*, TZ and
// the names in the program's `api_env` may be set, locale and zone values
// may not name files, and the loader's and libc's variables are refused by
// name. With `allow_commands` any other name passes: that caller can run any
// argv anyway.
std::string env_refusal(std::string_view name, std::string_view value, const ProgramSpec& program,
                        bool allow_commands);

// True for the variables the dynamic loader and libc act on (LD_*, MALLOC_*,
// glibc's unsecvars.h list: GCONV_PATH, GLIBC_TUNABLES, LOCPATH, ...) plus
// PATH and the shells' start-up variables: setting one can make a program
// load or run code of the setter's choice.
bool is_dangerous_env(std::string_view name);

// Why a config may not list `name` in `api_env`; empty when it may.
std::string api_env_problem(std::string_view name);

}  // namespace forkwatch
