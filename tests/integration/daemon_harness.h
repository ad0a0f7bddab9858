// DaemonHarness: a real forkwatchd on 127.0.0.1:0 with its own state dir,
// driven over HTTP. Waits for events with deadlines, never fixed sleeps.
#pragma once

#include <sys/types.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace fwtest {

using Json = nlohmann::json;
using namespace std::chrono_literals;

std::string bin(const std::string& name);  // FORKWATCH_BIN_DIR/name

// Polls `pred` until it is true or `timeout` passes; returns the last result.
bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout = 10s);

struct HttpReply {
  int status = 0;  // 0: no answer
  std::string body;
  std::map<std::string, std::string> headers;
  Json json() const;
};

struct DaemonOptions {
  std::string config;                  // JSON text of --config; empty: none
  std::vector<std::string> args;       // extra flags
  std::map<std::string, std::string> env;
  std::string state_dir;               // reuse a state dir (restart tests); empty: a new one
  // Runs in the child after fork and after `env` is set, just before exec:
  // for what only the child knows (its own pid: WATCHDOG_PID, LISTEN_PID)
  // and fds to pass (socket activation). Keep it to setenv/dup2/fcntl.
  std::function<void()> before_exec;
};

class Daemon {
 public:
  explicit Daemon(DaemonOptions options = {});
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  pid_t pid() const { return pid_; }
  int port() const { return port_; }
  const std::string& token() const { return token_; }
  const std::string& state_dir() const { return state_dir_; }
  std::string db_path() const { return state_dir_ + "/forkwatch.db"; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string stderr_text() const;

  HttpReply request(const std::string& method, const std::string& path, const std::string& body = "",
                    std::map<std::string, std::string> headers = {}, bool auth = true) const;
  HttpReply get(const std::string& path) const { return request("GET", path); }
  HttpReply post(const std::string& path, const std::string& body = "{}") const {
    return request("POST", path, body);
  }
  HttpReply del(const std::string& path) const { return request("DELETE", path); }

  // Starts a catalogue worker; returns its JSON (REQUIREs a 201).
  Json start(const Json& request) const;
  Json worker(int64_t id) const;
  // Waits until worker `id` has state `state`.
  bool wait_state(int64_t id, const std::string& state, std::chrono::milliseconds timeout = 10s) const;

  // SIGTERM and wait for the exit; returns the wait status.
  int terminate(std::chrono::milliseconds timeout = 20s);
  // SIGKILL and reap (crash tests).
  void kill_hard();
  bool running() const { return pid_ > 0; }

 private:
  DaemonOptions options_;
  std::string state_dir_;
  bool own_state_dir_ = false;
  pid_t pid_ = -1;
  int port_ = 0;
  std::string token_;
};

// Rows of a query on the daemon's SQLite file (a separate read connection).
int64_t query_int(const std::string& db_path, const std::string& sql);
// Direct children of `parent` right now; only zombies when `zombies_only`.
std::vector<pid_t> children_of(pid_t parent, bool zombies_only = false);
inline std::vector<pid_t> zombie_children(pid_t parent) { return children_of(parent, true); }
// /proc/PID/environ as NAME=value strings, once the program's exec has set
// them: a worker is "running" as its exec begins (the close-on-exec pipe
// closes), and until the kernel has loaded the new image environ reads
// empty. Empty if it stays so for 10 s.
std::vector<std::string> program_environ(pid_t pid);
inline bool has_entry(const std::vector<std::string>& vars, const std::string& entry) {
  return std::find(vars.begin(), vars.end(), entry) != vars.end();
}
// True once `pid` ignores SIGTERM (proc(5) SigIgn). A worker started with
// --ignore-term runs a moment before it does: a SIGTERM sent in that moment
// ends it, so a test of stop timeouts waits for this first.
bool ignores_term(pid_t pid);
// A unique scratch directory (removed by the caller or left for inspection).
std::string make_temp_dir(const std::string& prefix);
// A whole file's text ("" when it cannot be read).
std::string read_text(const std::string& path);

// Runs argv (PATH searched) to its end with `env` added, capturing stdout
// (and stderr when `with_stderr`); SIGKILLed after `timeout`.
struct ProgramRun {
  int status = -1;  // as waitpid returns it
  int code = -1;    // the exit status, or 128 + the signal
  std::string output;
};
ProgramRun run_program(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env = {},
                       bool with_stderr = true, std::chrono::milliseconds timeout = 20s);

// A TCP connection to 127.0.0.1:port (REQUIREd to succeed); the caller closes it.
int connect_loopback(int port);
// A loopback socket bound to a port the kernel picked (never listen()ed); the
// caller closes it. free_port(): such a port, closed again, for a program
// that cannot bind port 0 itself (prometheus --web.listen-address).
int bind_loopback(int& port);
int free_port();
// The port an echo server worker printed ("listening on port N"), from its
// logs through the daemon's API; REQUIREd to come.
int echo_port(const Daemon& d, int64_t worker_id);

// Depth-first search of /api/tree's JSON (an array of nodes) for `pid`.
const Json* find_node(const Json& nodes, int64_t pid);
// Every node of the tree, threads not counted.
size_t count_nodes(const Json& nodes);

}  // namespace fwtest
