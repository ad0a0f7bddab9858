#include "env_file.h"

#include <catch2/catch.hpp>
#include <fstream>

#include "temp_dir.h"

using forkwatch::parse_env_file;
using forkwatch::read_env_file;

namespace {
std::string error_of(std::string_view text) {
  auto r = parse_env_file(text);
  return r ? "" : r.error().message();
}
}  // namespace

TEST_CASE("env_file: KEY=VALUE lines, comments, blank lines and export", "[unit]") {
  auto r = parse_env_file(
      "# a comment\n"
      "\n"
      "   ; another comment\n"
      "PLAIN=value\n"
      "  SPACED  =  two words  \n"
      "export EXPORTED=yes\n"
      "EMPTY=\n"
      "WITH_EQ=a=b\n"
      "LAST=1\n"
      "LAST=2\n"
      "CRLF=dos\r\n"
      "NO_NEWLINE=end");
  REQUIRE(r);
  const auto& v = *r;
  CHECK(v.at("PLAIN") == "value");
  CHECK(v.at("SPACED") == "two words");
  CHECK(v.at("EXPORTED") == "yes");
  CHECK(v.at("EMPTY").empty());
  CHECK(v.at("WITH_EQ") == "a=b");
  CHECK(v.at("LAST") == "2");  // a later line wins
  CHECK(v.at("CRLF") == "dos");
  CHECK(v.at("NO_NEWLINE") == "end");
  CHECK(v.size() == 8);
}

TEST_CASE("env_file: quotes keep blanks and '#', escapes and line joins", "[unit]") {
  auto r = parse_env_file(
      "SINGLE='  a # b \\n $HOME  '\n"
      "DOUBLE=\"say \\\"hi\\\" \\\\ \\$x \\q\"\n"
      "MULTI=\"line one\n"
      "line two\"\n"
      "JOINED=\"a\\\n"
      "b\"\n"
      "BARE=one\\ two\\\n"
      "three\n"
      "MIXED=pre'fix'\"suf\"\n");
  REQUIRE(r);
  CHECK(r->at("SINGLE") == "  a # b \\n $HOME  ");
  CHECK(r->at("DOUBLE") == "say \"hi\" \\ $x \\q");  // an unknown escape stays as written
  CHECK(r->at("MULTI") == "line one\nline two");
  CHECK(r->at("JOINED") == "ab");
  CHECK(r->at("BARE") == "one twothree");
  CHECK(r->at("MIXED") == "prefixsuf");
}

TEST_CASE("env_file: a bad line names its number and what is wrong", "[unit]") {
  CHECK(error_of("A=1\njust words\n") == "line 2: expected KEY=VALUE, got \"just words\"");
  CHECK(error_of("1X=2\n") == "line 1: \"1X\" is not a variable name");
  CHECK(error_of("A-B=2\n") == "line 1: \"A-B\" is not a variable name");
  CHECK(error_of("=2\n") == "line 1: \"\" is not a variable name");
  CHECK(error_of("\n\nQ='open\n") == "line 3: a single quote is not closed");
  CHECK(error_of("Q=\"open\nstill\n") == "line 1: a double quote is not closed");
  CHECK(error_of(std::string_view("A=x\0y\n", 6)) == "line 1: A holds a NUL byte");
}

TEST_CASE("env_file: reading names the file when it is missing or bad", "[unit]") {
  fwtest::TempDir dir;
  auto missing = read_env_file(dir.file("none.env"));
  REQUIRE_FALSE(missing);
  CHECK(missing.error().message() == "open(" + dir.file("none.env") + "): No such file or directory");
  std::ofstream(dir.file("bad.env")) << "GOOD=1\nbad line\n";
  auto bad = read_env_file(dir.file("bad.env"));
  REQUIRE_FALSE(bad);
  CHECK(bad.error().message() == dir.file("bad.env") + ": line 2: expected KEY=VALUE, got \"bad line\"");
  std::ofstream(dir.file("ok.env")) << "GREETING=\"hello world\"\n";
  auto ok = read_env_file(dir.file("ok.env"));
  REQUIRE(ok);
  CHECK(ok->at("GREETING") == "hello world");
}
