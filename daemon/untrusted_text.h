// Text that came from outside (worker and program names, paths, process
// names, captured output): making it safe to print on a terminal or in one
// log line, and the rule for what may name a worker. Pure functions; any
// thread may call them.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace forkwatch {

// A name (worker `name`, config program `name`) is 1 to this many characters.
inline constexpr size_t kMaxNameChars = 64;

// `text` with every character that can move the cursor, end a line, talk to
// the terminal or reorder what is shown made visible as an escape:
//   C0 and DEL      \n \r \t, else \x1b style (two hex digits)
//   C1 U+0080..9F   \u009b style
//   bidi and line controls (U+061C, U+200E, U+200F, U+2028..U+202E,
//                   U+2066..U+2069)  \u202e style
//   invalid UTF-8   each bad byte as \xff style
// Everything else, backslash included, is copied as is, so ordinary text
// (UTF-8 names, Windows paths) reads unchanged. The result is one line.
std::string escape_control(std::string_view text);

// Why `name` cannot name a worker or program, e.g. "must not contain control
// characters (\\n at character 3)"; empty when it can. Refused: empty, more
// than kMaxNameChars code points, invalid UTF-8, and anything escape_control
// would escape.
std::string name_problem(std::string_view name);

}  // namespace forkwatch
