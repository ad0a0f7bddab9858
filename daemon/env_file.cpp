#include "env_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "fd.h"
#include "untrusted_text.h"

namespace forkwatch {
namespace {

constexpr size_t kMaxEnvFileBytes = 1 << 20;

bool blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

bool valid_name(std::string_view s) {
  if (s.empty() || (s[0] >= '0' && s[0] <= '9')) return false;
  for (char c : s)
    if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
      return false;
  return true;
}

// Walks the text once; `line` counts newlines consumed so errors can say where.
class Scanner {
 public:
  explicit Scanner(std::string_view t) : t_(t) {}
  bool done() const { return i_ >= t_.size(); }
  char peek() const { return t_[i_]; }
  char take() {
    char c = t_[i_++];
    if (c == '\n') ++line_;
    return c;
  }
  void skip_blanks() {
    while (!done() && blank(peek())) take();
  }
  void skip_line() {
    while (!done() && take() != '\n') {}
  }
  bool starts_with(std::string_view s) const { return t_.substr(i_).starts_with(s); }
  void advance(size_t n) {
    for (size_t k = 0; k < n && !done(); ++k) take();
  }
  int line() const { return line_; }

 private:
  std::string_view t_;
  size_t i_ = 0;
  int line_ = 1;
};

std::string quoted_text(std::string_view s) { return "\"" + escape_control(s) + "\""; }

SysError at(int line, const std::string& why) { return plain_error("line " + std::to_string(line) + ": " + why); }

// The value after '='. Returns false with `why` set on a bad value.
bool scan_value(Scanner& s, std::string& out, std::string& why) {
  s.skip_blanks();
  while (!s.done() && s.peek() != '\n') {
    char c = s.take();
    if (c == '\'') {
      while (true) {
        if (s.done()) return why = "a single quote is not closed", false;
        char q = s.take();
        if (q == '\'') break;
        out += q;
      }
    } else if (c == '"') {
      while (true) {
        if (s.done()) return why = "a double quote is not closed", false;
        char q = s.take();
        if (q == '"') break;
        if (q == '\\' && !s.done()) {
          char n = s.take();
          if (n == '\n') continue;  // joins the lines
          if (n != '"' && n != '\\' && n != '$' && n != '`') out += '\\';
          out += n;
          continue;
        }
        out += q;
      }
    } else if (c == '\\') {
      if (s.done()) break;
      char n = s.take();
      if (n != '\n') out += n;  // a backslash-newline joins the next line
    } else if (blank(c)) {
      // Blanks inside a bare value stay; trailing ones go (checked below).
      std::string run(1, c);
      while (!s.done() && blank(s.peek())) run += s.take();
      if (!s.done() && s.peek() != '\n') out += run;
    } else {
      out += c;
    }
  }
  if (!s.done()) s.take();  // the newline
  return true;
}

}  // namespace

Result<std::map<std::string, std::string>> parse_env_file(std::string_view text) {
  std::map<std::string, std::string> vars;
  Scanner s(text);
  while (!s.done()) {
    s.skip_blanks();
    if (s.done()) break;
    const int line = s.line();
    char c = s.peek();
    if (c == '\n') {
      s.take();
      continue;
    }
    if (c == '#' || c == ';') {
      s.skip_line();
      continue;
    }
    if (s.starts_with("export ") || s.starts_with("export\t")) {
      s.advance(7);
      s.skip_blanks();
    }
    std::string name;
    while (!s.done() && s.peek() != '=' && s.peek() != '\n') name += s.take();
    while (!name.empty() && blank(name.back())) name.pop_back();
    if (s.done() || s.peek() != '=')
      return at(line, "expected KEY=VALUE, got " + quoted_text(name));
    s.take();  // '='
    if (!valid_name(name)) return at(line, quoted_text(name) + " is not a variable name");
    std::string value, why;
    if (!scan_value(s, value, why)) return at(line, why);
    if (value.find('\0') != std::string::npos) return at(line, name + " holds a NUL byte");
    vars[name] = std::move(value);
  }
  return vars;
}

Result<std::map<std::string, std::string>> read_env_file(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (!fd) return sys_error("open(" + path + ")");
  std::string text;
  char buf[8192];
  while (true) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return sys_error("read(" + path + ")");
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > kMaxEnvFileBytes) return plain_error(path + ": larger than 1 MiB");
  }
  auto vars = parse_env_file(text);
  if (!vars) return plain_error(path + ": " + vars.error().message());
  return vars;
}

}  // namespace forkwatch
