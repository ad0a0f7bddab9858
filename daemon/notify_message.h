// NotifyMessage: one sd_notify(3) datagram a worker sent to its notify
// socket, parsed. Pure (text in, struct out); the notify socket
// (notify_socket.h) reads datagrams on the loop thread and hands them here.
// Understood: READY=1, RELOADING=1, STOPPING=1, WATCHDOG=1 (and WATCHDOG=trigger),
// STATUS=, MAINPID=, WATCHDOG_USEC=, EXTEND_TIMEOUT_USEC=, ERRNO=. Other
// assignments (FDSTORE=1, BUSERROR=, X_*…) are ignored as systemd ignores
// what it does not know; a line that is no assignment is counted as bad.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace forkwatch {

// systemd's NOTIFY_BUFFER_MAX (PIPE_BUF): a longer datagram is refused whole.
inline constexpr size_t kMaxNotifyDatagram = 4096;
// STATUS= text kept for the API, at most this many bytes (cut at a UTF-8 boundary).
inline constexpr size_t kMaxStatusText = 1024;

struct NotifyMessage {
  bool ready = false;           // READY=1
  bool reloading = false;       // RELOADING=1
  bool stopping = false;        // STOPPING=1
  bool watchdog_ping = false;   // WATCHDOG=1
  bool watchdog_trigger = false;  // WATCHDOG=trigger: "consider me hung now"
  std::optional<std::string> status;  // STATUS=, control bytes kept (escaped when shown)
  std::optional<pid_t> main_pid;       // MAINPID=, > 0
  std::optional<uint64_t> watchdog_usec;       // WATCHDOG_USEC=, > 0: a new watchdog interval
  std::optional<uint64_t> extend_timeout_usec;  // EXTEND_TIMEOUT_USEC=, > 0
  std::optional<int> errno_value;               // ERRNO=, >= 0
  size_t bad_lines = 0;  // lines without '=' or with a value that does not parse
};

// Parses one datagram (assignments separated by newlines; a NUL byte ends
// the text, as systemd reads it). Never fails; see bad_lines.
NotifyMessage parse_notify_message(std::string_view datagram);

}  // namespace forkwatch
