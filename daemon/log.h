// Daemon logging: one plain line per message on stderr. Under systemd
// (JOURNAL_STREAM set) each line starts with sd-daemon(3)'s "<N>" priority.
// Control characters in a message are escaped (untrusted_text.h), so one call
// is always one line. Safe from any thread (one write(2) per line); never
// from a forked child.
#pragma once

#include <string_view>

namespace forkwatch::log {

enum class Level { kError = 3, kWarning = 4, kNotice = 5, kInfo = 6, kDebug = 7 };

// Reads JOURNAL_STREAM once; call early in main (later calls are cheap).
void init();
void write(Level level, std::string_view message);

inline void error(std::string_view m) { write(Level::kError, m); }
inline void warning(std::string_view m) { write(Level::kWarning, m); }
inline void notice(std::string_view m) { write(Level::kNotice, m); }
inline void info(std::string_view m) { write(Level::kInfo, m); }

}  // namespace forkwatch::log
