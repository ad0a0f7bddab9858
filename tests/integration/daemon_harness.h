// DaemonHarness: a real forkwatchd on 127.0.0.1:0 with its own state dir,
// driven over HTTP. Waits for events with deadlines, never fixed sleeps.
#pragma once

#include <sys/types.h>

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
// A unique scratch directory (removed by the caller or left for inspection).
std::string make_temp_dir(const std::string& prefix);

// A TCP connection to 127.0.0.1:port (REQUIREd to succeed); the caller closes it.
int connect_loopback(int port);
// The port an echo server worker printed ("listening on port N"), from its
// logs through the daemon's API; REQUIREd to come.
int echo_port(const Daemon& d, int64_t worker_id);

// Depth-first search of /api/tree's JSON (an array of nodes) for `pid`.
const Json* find_node(const Json& nodes, int64_t pid);
// Every node of the tree, threads not counted.
size_t count_nodes(const Json& nodes);

}  // namespace fwtest
