// Socket activation without libsystemd: systemd (forkwatchd.socket) binds the
// listening socket and passes it as fd 3, 4, ... described by LISTEN_PID,
// LISTEN_FDS and LISTEN_FDNAMES, with sd_listen_fds(3)'s semantics. Adopted
// fds are owned by the returned ListenFd objects and marked close-on-exec so
// workers never inherit the API socket.
//
// Wiring in main, before any thread starts (it unsets environment variables):
//   auto passed = take_listen_fds();
//   if (!passed) { log::error(passed.error().message()); return 2; }
//   if (passed->empty())  bind --listen as usual
//   else                  serve on the first fd for which
//                         is_listening_stream_socket(fd) holds; --listen is ignored
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

#include "fd.h"
#include "sys_error.h"

namespace forkwatch {

// Variable name -> value; passed explicitly so tests never touch the real
// environment. (Same alias as in sd_notify.h.)
using Environment = std::map<std::string, std::string>;

inline constexpr int kListenFdsStart = 3;  // SD_LISTEN_FDS_START

struct ListenFdSpec {
  int fd = -1;       // kListenFdsStart + index
  std::string name;  // from LISTEN_FDNAMES (FileDescriptorName=), else "unknown"
};

struct ListenFd {
  Fd fd;  // owned; FD_CLOEXEC set
  std::string name;
};

// Pure: the fds `env` passes to process `self`. Empty when LISTEN_PID is unset
// or names another process (the variables were meant for a process that then
// exec'd us). An error when LISTEN_PID or LISTEN_FDS is malformed, or when
// LISTEN_FDNAMES does not hold exactly one name per fd.
Result<std::vector<ListenFdSpec>> parse_listen_fds(const Environment& env, pid_t self);

// parse_listen_fds, then takes ownership of each fd and sets FD_CLOEXEC on it.
// An error names the fd when one of them is not open.
Result<std::vector<ListenFd>> adopt_listen_fds(const Environment& env, pid_t self);

// LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES from the process environment.
Environment process_listen_environment();
// Unsets them, so neither workers nor a later call see them (not thread-safe).
void unset_listen_environment();

// What main calls: reads the process environment, adopts for getpid(), and
// always unsets the variables, also on error (like sd_listen_fds(3) with
// unset_environment set).
Result<std::vector<ListenFd>> take_listen_fds();

// True for a SOCK_STREAM socket in the listening state (what an HTTP server
// can accept() on), the check sd_is_socket(3) makes.
bool is_listening_stream_socket(int fd);

// The address a socket is bound to, as getsockname(2) says: "0.0.0.0",
// "127.0.0.1", "::1", or "unix" for an AF_UNIX socket. What --no-auth must
// judge when the socket came from systemd rather than from --listen.
Result<std::string> bound_host(int fd);

}  // namespace forkwatch
