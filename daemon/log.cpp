#include "log.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "untrusted_text.h"

namespace forkwatch::log {
namespace {

std::atomic<int> g_journal{-1};  // -1 unknown, 0 plain, 1 stderr is the journal

// JOURNAL_STREAM is "DEV:INODE" of the journal socket; it only counts while
// stderr is still that socket (systemd.exec(5)).
bool stderr_is_journal() {
  const char* js = std::getenv("JOURNAL_STREAM");
  if (!js) return false;
  unsigned long long dev = 0, ino = 0;
  if (std::sscanf(js, "%llu:%llu", &dev, &ino) != 2) return false;
  struct stat st{};
  if (fstat(STDERR_FILENO, &st) != 0) return false;
  return st.st_dev == dev && st.st_ino == ino;
}

}  // namespace

void init() { g_journal.store(stderr_is_journal() ? 1 : 0); }

void write(Level level, std::string_view message) {
  if (g_journal.load() < 0) init();
  std::string line;
  line.reserve(message.size() + 16);
  if (g_journal.load() == 1) {
    line += '<';
    line += static_cast<char>('0' + static_cast<int>(level));
    line += '>';
  }
  line += "forkwatchd: ";
  // Messages carry names, paths and errors from outside: a newline there
  // would forge a line of its own ("<0>..." an emergency under journald).
  line += escape_control(message);
  line += '\n';
  // One write per line keeps lines from different threads whole.
  ssize_t n = ::write(STDERR_FILENO, line.data(), line.size());
  (void)n;
}

}  // namespace forkwatch::log
