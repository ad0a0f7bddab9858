// forkwatchd's command line, parsed by a pure function so every bad flag is
// unit-tested. The caller prints the error as one line and exits 2.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "sys_error.h"

namespace forkwatch {

struct DaemonFlags {
  std::string listen_host = "127.0.0.1";
  int listen_port = 7420;
  std::string state_dir;      // resolved: flag, $STATE_DIRECTORY, $XDG_STATE_HOME/forkwatch, ~/.local/state/forkwatch
  std::string config;         // empty: no config
  std::string port_file;
  std::string token_file;     // resolved: flag or <state_dir>/token
  std::string read_token_file;  // empty: no read-only token
  bool no_auth = false;
  // The Unix socket: resolved to --socket, else $RUNTIME_DIRECTORY/forkwatch.sock,
  // else <state_dir>/forkwatch.sock; empty with --no-socket.
  std::string socket;
  bool socket_given = false;  // --socket itself: a path that cannot be used is an error
  std::string socket_group;   // empty: no read-only socket users
  // HTTPS on --listen (PEM files, re-read on SIGHUP); both or neither.
  std::string tls_cert, tls_key;
  bool allow_commands = false;
  bool realtime_loop = true;   // the loop thread at SCHED_FIFO 1 while process events are on (lifetime_source.h)
  bool process_events = true;  // subscribe to the kernel's proc connector (issue 15); off: sampling only
  // Containment (issue 13): "auto" (a cgroup per worker where cgroup v2 is
  // writable, else process groups), "cgroup" (or exit 2), "process-group".
  std::string containment = "auto";
  std::string cgroup_root;  // empty: below the daemon's own cgroup
  std::string workers_dir;    // empty: decided at start (own dir, then libexec)
  std::string web_dir;        // empty: decided at start
  int64_t sample_ms = 1000;
  size_t max_workers = 1000;
  size_t max_sse_clients = 128;
  // Retention of every history table (docs/config.md); 0: no limit of that kind.
  int64_t history_max_age_days = 30;
  int64_t history_max_mib = 256;
  bool help = false;
  bool version = false;
};

// `env` supplies STATE_DIRECTORY, XDG_STATE_HOME and HOME.
Result<DaemonFlags> parse_daemon_flags(const std::vector<std::string>& args,
                                       const std::map<std::string, std::string>& env);

// "127.0.0.1:7420", "[::1]:0", "localhost:80" -> host, port.
Result<std::pair<std::string, int>> parse_listen(const std::string& text);

extern const char* const kDaemonUsage;

}  // namespace forkwatch
