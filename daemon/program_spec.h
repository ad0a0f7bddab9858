// ProgramSpec: what to run and how to keep it running, as written in the
// config file or in a POST /api/workers request. Plain data; validated by
// config.h. A Config is the whole --config file.
#pragma once

#include <csignal>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace forkwatch {

enum class RestartPolicy { kNo, kOnFailure, kAlways };
std::string_view restart_policy_name(RestartPolicy p);

struct ProgramSpec {
  std::string name;
  std::vector<std::string> command;  // argv; a bare command[0] is looked up at spawn time
  int instances = 1;
  bool autostart = true;
  RestartPolicy restart = RestartPolicy::kOnFailure;
  int64_t restart_delay_ms = 100;
  int max_restarts = 10;  // consecutive automatic restarts before `fatal`
  int stop_signal = SIGTERM;
  int64_t stop_timeout_ms = 5000;
  std::map<std::string, std::string> env;  // added to the daemon's environment
  std::string cwd;                         // empty: the daemon's cwd
  bool capture_output = true;              // "output": "capture" (pipes, logs) or "discard" (/dev/null)
  bool builtin = false;                    // one of the built-in worker programs

  bool operator==(const ProgramSpec&) const = default;
};

struct Config {
  std::vector<ProgramSpec> programs;
};

// Limits that keep a config or request from asking for absurd things.
inline constexpr int kMaxInstances = 1000;
inline constexpr int kMaxArgs = 256;
inline constexpr size_t kMaxArgBytes = 4096;
inline constexpr int64_t kMaxDelayMs = 24LL * 3600 * 1000;

}  // namespace forkwatch
