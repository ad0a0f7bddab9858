#include "untrusted_text.h"

#include <cstdint>
#include <cstdio>

namespace forkwatch {
namespace {

// One UTF-8 sequence at `s[i]`: its code point and length, or length 0 when
// the bytes there are not valid UTF-8 (overlong, surrogate, past U+10FFFF,
// truncated), per RFC 3629.
struct Decoded {
  uint32_t cp = 0;
  size_t len = 0;
};

Decoded decode_utf8(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char c = b(0);
  if (c < 0x80) return {c, 1};
  size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
  if (len == 0 || c > 0xF4 || i + len > s.size()) return {};
  uint32_t cp = c & (0x7F >> len);
  for (size_t k = 1; k < len; ++k) {
    if ((b(k) & 0xC0) != 0x80) return {};
    cp = (cp << 6) | (b(k) & 0x3F);
  }
  static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return {};
  return {cp, len};
}

// Characters a terminal or log reader acts on instead of showing: C0, DEL,
// C1, and the bidi and line-separator controls of Unicode's UAX #9 that
// reorder or break what is shown (the "Trojan Source" characters).
bool is_control(uint32_t cp) {
  return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || cp == 0x061C || cp == 0x200E || cp == 0x200F ||
         (cp >= 0x2028 && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069);
}

std::string escape_one(uint32_t cp) {
  switch (cp) {
    case '\n': return "\\n";
    case '\r': return "\\r";
    case '\t': return "\\t";
  }
  char buf[12];
  if (cp < 0x80) std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned>(cp));
  else std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(cp));
  return buf;
}

}  // namespace

std::string escape_control(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const Decoded d = decode_utf8(text, i);
    if (d.len == 0) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(text[i]));
      out += buf;
      ++i;
      continue;
    }
    if (is_control(d.cp)) out += escape_one(d.cp);
    else out.append(text.substr(i, d.len));
    i += d.len;
  }
  return out;
}

std::string name_problem(std::string_view name) {
  if (name.empty()) return "must be 1 to " + std::to_string(kMaxNameChars) + " characters (got none)";
  size_t chars = 0;
  for (size_t i = 0; i < name.size(); ++chars) {
    const Decoded d = decode_utf8(name, i);
    const std::string where = " at character " + std::to_string(chars + 1);
    if (d.len == 0) return "is not valid UTF-8" + where;
    if (is_control(d.cp))
      return "must not contain control or bidi characters (" + escape_one(d.cp) + where + ")";
    i += d.len;
  }
  if (chars > kMaxNameChars)
    return "must be 1 to " + std::to_string(kMaxNameChars) + " characters (got " + std::to_string(chars) + ")";
  return "";
}

}  // namespace forkwatch
