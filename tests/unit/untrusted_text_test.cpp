// Escaping of untrusted text for terminals and log lines, the name rule, and
// the env rule of POST /api/workers: tables of inputs and what must come out.
#include <catch2/catch.hpp>

#include "env_rule.h"
#include "untrusted_text.h"

using namespace forkwatch;

TEST_CASE("escape_control makes every terminal and line control visible, and nothing else", "[unit]") {
  const std::vector<std::pair<std::string, std::string>> table = {
      {"plain name", "plain name"},
      {"naïve 日本 ✓", "naïve 日本 ✓"},                           // UTF-8 text passes
      {"C:\\path\\x", "C:\\path\\x"},                            // backslashes too
      {"two\nlines", "two\\nlines"},
      {"cr\r tab\t", "cr\\r tab\\t"},
      {"a\nforkwatchd: <0>forged", "a\\nforkwatchd: <0>forged"},  // no second log line
      {"\x1b]0;pwned\x07", "\\x1b]0;pwned\\x07"},                // OSC 0: window title
      {"\x1b]52;c;aGk=\x07", "\\x1b]52;c;aGk=\\x07"},            // OSC 52: clipboard
      {std::string("nul\0in", 6), "nul\\x00in"},
      {"del\x7f", "del\\x7f"},
      {"c1 \xc2\x9b" "31m", "c1 \\u009b31m"},                    // CSI as a C1 character
      {"\xe2\x80\xae" "evil", "\\u202eevil"},                    // RIGHT-TO-LEFT OVERRIDE
      {"\xe2\x81\xa6x\xe2\x81\xa9", "\\u2066x\\u2069"},          // isolates
      {"ls\xe2\x80\xa8sep", "ls\\u2028sep"},                     // LINE SEPARATOR
      {"lrm\xe2\x80\x8f", "lrm\\u200f"},
      {"bad \xff\xfe", "bad \\xff\\xfe"},                        // invalid UTF-8, byte by byte
      {"overlong \xc0\xaf", "overlong \\xc0\\xaf"},
      {"surrogate \xed\xa0\x80", "surrogate \\xed\\xa0\\x80"},
      {"cut \xe6\x97", "cut \\xe6\\x97"},
  };
  for (const auto& [in, out] : table) {
    INFO(in);
    CHECK(escape_control(in) == out);
    CHECK(escape_control(in).find('\n') == std::string::npos);
  }
}

TEST_CASE("names refuse control and bidi characters and count characters, not bytes", "[unit]") {
  std::string sixty_four_kanji;
  for (int i = 0; i < 64; ++i) sixty_four_kanji += "日";  // 192 bytes, 64 characters
  const std::vector<std::pair<std::string, std::string>> table = {
      {"demo", ""},
      {"echo:0", ""},
      {"web front-end", ""},
      {sixty_four_kanji, ""},
      {std::string(64, 'a'), ""},
      {std::string(65, 'a'), "must be 1 to 64 characters (got 65)"},
      {sixty_four_kanji + "x", "must be 1 to 64 characters (got 65)"},
      {"", "must be 1 to 64 characters (got none)"},
      {"a\nb", "must not contain control or bidi characters (\\n at character 2)"},
      {std::string("a\0b", 3), "must not contain control or bidi characters (\\x00 at character 2)"},
      {"\x1b]0;x\x07", "must not contain control or bidi characters (\\x1b at character 1)"},
      {"x\x7f", "must not contain control or bidi characters (\\x7f at character 2)"},
      {"\xc2\x85", "must not contain control or bidi characters (\\u0085 at character 1)"},
      {"ab\xe2\x80\xae", "must not contain control or bidi characters (\\u202e at character 3)"},
      {"ab\xe2\x81\xa7", "must not contain control or bidi characters (\\u2067 at character 3)"},
      {"a\xff", "is not valid UTF-8 at character 2"},
  };
  for (const auto& [name, why] : table) {
    INFO(escape_control(name));
    CHECK(name_problem(name) == why);
  }
}

TEST_CASE("the env rule: what a request may set for a program, with and without --allow-commands",
          "[unit]") {
  ProgramSpec p;
  p.name = "web";
  p.command = {"echo-epoll"};
  p.env = {{"LANG", "C"}, {"PORT", "9000"}};
  p.api_env = {"GREETING"};
  struct Row {
    std::string name, value;
    bool allowed_plain;     // without --allow-commands
    bool allowed_commands;  // with --allow-commands
  };
  const std::vector<Row> table = {
      {"LC_ALL", "de_DE.UTF-8", true, true},
      {"LC_MESSAGES", "fr_FR.UTF-8@euro", true, true},
      {"LANGUAGE", "de:en_GB", true, true},
      {"TZ", "Europe/Berlin", true, true},
      {"TZ", ":Europe/Berlin", true, true},
      {"TZ", "CET-1CEST,M3.5.0,M10.5.0/3", true, true},
      {"GREETING", "hello", true, true},  // the program's api_env
      {"LC_ALL", "/tmp/evil-locale", false, true},  // a locale path is a file to parse
      {"TZ", "/tmp/evil-tzfile", false, true},
      {"TZ", ":../../tmp/evil", false, true},
      {"LANG", "de_DE.UTF-8", false, false},  // the config sets it: the config wins
      {"PORT", "1", false, false},
      {"FORKWATCH_WORKER_ID", "1", false, false},
      {"1ABC", "x", false, false},
      {"A-B", "x", false, false},
      {"LD_PRELOAD", "/tmp/e.so", false, true},
      {"LD_AUDIT", "/tmp/e.so", false, true},
      {"LD_LIBRARY_PATH", "/tmp", false, true},
      {"GCONV_PATH", "/tmp", false, true},
      {"GLIBC_TUNABLES", "glibc.malloc.check=3", false, true},
      {"MALLOC_CHECK_", "3", false, true},
      {"LOCPATH", "/tmp", false, true},
      {"PATH", "/tmp", false, true},
      {"BASH_ENV", "/tmp/x.sh", false, true},
      {"HOME", "/root", false, true},  // not on the allow list
      {"SOME_OPTION", "1", false, true},
  };
  for (const auto& r : table) {
    INFO(r.name << "=" << r.value);
    CHECK(env_refusal(r.name, r.value, p, false).empty() == r.allowed_plain);
    CHECK(env_refusal(r.name, r.value, p, true).empty() == r.allowed_commands);
  }
  CHECK_THAT(env_refusal("LD_PRELOAD", "/tmp/e.so", p, false), Catch::Contains("--allow-commands"));
  CHECK_THAT(env_refusal("HOME", "/", p, false), Catch::Contains("LANG, LANGUAGE, LC_*, TZ, GREETING"));
  CHECK(env_refusal("PORT", "1", p, true) == "is set by the program's config and cannot be overridden");
}

TEST_CASE("a config's api_env may not open the loader's variables to requests", "[unit]") {
  CHECK(api_env_problem("GREETING").empty());
  CHECK_THAT(api_env_problem("LD_PRELOAD"), Catch::Contains("dynamic loader"));
  CHECK_THAT(api_env_problem("GCONV_PATH"), Catch::Contains("dynamic loader"));
  CHECK_THAT(api_env_problem("FORKWATCH_WORKER_ID"), Catch::Contains("reserved"));
  CHECK_THAT(api_env_problem("A=B"), Catch::Contains("not a variable name"));
}
