#include "notify_message.h"

#include "parse_number.h"

#include <limits>

namespace forkwatch {
namespace {

// Cuts `s` to at most `max` bytes without splitting a UTF-8 sequence.
std::string cut_utf8(std::string_view s, size_t max) {
  if (s.size() <= max) return std::string(s);
  size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return std::string(s.substr(0, n));
}

}  // namespace

NotifyMessage parse_notify_message(std::string_view datagram) {
  NotifyMessage m;
  if (auto nul = datagram.find('\0'); nul != std::string_view::npos) datagram = datagram.substr(0, nul);
  while (!datagram.empty()) {
    const size_t nl = datagram.find('\n');
    std::string_view line = datagram.substr(0, nl);
    datagram = nl == std::string_view::npos ? std::string_view{} : datagram.substr(nl + 1);
    if (line.empty()) continue;
    const size_t eq = line.find('=');
    if (eq == std::string_view::npos || eq == 0) {
      ++m.bad_lines;
      continue;
    }
    const std::string_view key = line.substr(0, eq), value = line.substr(eq + 1);
    bool ok = true;
    // A flag is set by "1" only; a later bad line never clears it.
    auto flag = [&](bool& f) { ok = value == "1"; f = f || ok; };
    if (key == "READY") flag(m.ready);
    else if (key == "RELOADING") flag(m.reloading);
    else if (key == "STOPPING") flag(m.stopping);
    else if (key == "WATCHDOG") {
      if (value == "trigger") m.watchdog_trigger = true;
      else flag(m.watchdog_ping);
    } else if (key == "STATUS") {
      m.status = cut_utf8(value, kMaxStatusText);
    } else if (key == "MAINPID") {
      auto v = parse_decimal<uint32_t>(value);
      ok = v && *v > 0 && *v <= uint32_t(std::numeric_limits<pid_t>::max());
      if (ok) m.main_pid = static_cast<pid_t>(*v);
    } else if (key == "WATCHDOG_USEC" || key == "EXTEND_TIMEOUT_USEC") {
      auto v = parse_decimal<uint64_t>(value);
      ok = v && *v > 0;
      if (ok) (key == "WATCHDOG_USEC" ? m.watchdog_usec : m.extend_timeout_usec) = *v;
    } else if (key == "ERRNO") {
      auto v = parse_decimal<uint32_t>(value);
      ok = v && *v <= uint32_t(std::numeric_limits<int>::max());
      if (ok) m.errno_value = static_cast<int>(*v);
    }
    if (!ok) ++m.bad_lines;
  }
  return m;
}

}  // namespace forkwatch
