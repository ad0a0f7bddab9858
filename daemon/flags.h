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
  bool no_auth = false;
  bool allow_commands = false;
  std::string workers_dir;    // empty: decided at start (own dir, then libexec)
  std::string web_dir;        // empty: decided at start
  int64_t sample_ms = 1000;
  size_t max_workers = 1000;
  size_t max_sse_clients = 128;
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
