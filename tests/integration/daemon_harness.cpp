#include "daemon_harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <dirent.h>
#include <filesystem>
#include <fstream>
#include <httplib.h>
#include <sstream>
#include <thread>

namespace fwtest {

// A test client writing to a connection the daemon closed (say, after a 413
// judged from the headers) must see EPIPE, not die of SIGPIPE.
[[maybe_unused]] const bool kSigpipeIgnored = [] {
  signal(SIGPIPE, SIG_IGN);
  return true;
}();

std::string bin(const std::string& name) { return std::string(FORKWATCH_BIN_DIR) + "/" + name; }

bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() > deadline) return pred();
    std::this_thread::sleep_for(5ms);  // polling interval of a bounded wait, not a guess at timing
  }
}

Json HttpReply::json() const {
  auto j = Json::parse(body, nullptr, false);
  INFO("body: " << body);
  REQUIRE_FALSE(j.is_discarded());
  return j;
}

std::string make_temp_dir(const std::string& prefix) {
  std::string tmpl = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
  REQUIRE(mkdtemp(tmpl.data()) != nullptr);
  return tmpl;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

ProgramRun run_program(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                       bool with_stderr, std::chrono::milliseconds timeout) {
  int p[2];
  REQUIRE(pipe2(p, O_CLOEXEC) == 0);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    dup2(p[1], 1);
    if (with_stderr) dup2(p[1], 2);
    for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  close(p[1]);
  ProgramRun r;
  char buf[8192];
  // Read to EOF first: a child blocked on a full pipe would never exit.
  for (ssize_t n; (n = read(p[0], buf, sizeof buf)) > 0;) r.output.append(buf, static_cast<size_t>(n));
  close(p[0]);
  if (!wait_until([&] { return waitpid(pid, &r.status, WNOHANG) == pid; }, timeout)) {
    kill(pid, SIGKILL);
    waitpid(pid, &r.status, 0);
  }
  r.code = WIFEXITED(r.status) ? WEXITSTATUS(r.status) : 128 + WTERMSIG(r.status);
  return r;
}

Daemon::Daemon(DaemonOptions options) : options_(std::move(options)) {
  state_dir_ = options_.state_dir;
  if (state_dir_.empty()) {
    state_dir_ = make_temp_dir("fw-daemon");
    own_state_dir_ = true;
  }
  const std::string port_file = state_dir_ + "/port";
  std::filesystem::remove(port_file);
  std::vector<std::string> args = {bin("forkwatchd"), "--listen", "127.0.0.1:0", "--state-dir", state_dir_,
                                   "--port-file", port_file, "--workers-dir", FORKWATCH_BIN_DIR};
  if (!options_.config.empty()) {
    std::ofstream(state_dir_ + "/programs.json") << options_.config;
    args.push_back("--config");
    args.push_back(state_dir_ + "/programs.json");
  }
  for (const auto& a : options_.args) args.push_back(a);
  const std::string err_path = state_dir_ + "/daemon.stderr";
  pid_ = fork();
  REQUIRE(pid_ >= 0);
  if (pid_ == 0) {
    // A test process killed by a timeout must not leave its daemon behind.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    FILE* err = freopen(err_path.c_str(), "a", stderr);
    (void)err;
    for (const auto& [k, v] : options_.env) setenv(k.c_str(), v.c_str(), 1);
    if (options_.before_exec) options_.before_exec();
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  // Generous: a loaded 2-core CI machine can take seconds to exec a daemon.
  const bool up = wait_until([&] { return std::filesystem::exists(port_file); }, 60s);
  if (!up) {
    ::kill(pid_, SIGKILL);  // never leave a daemon behind a failed test
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  INFO("daemon stderr: " << stderr_text());
  REQUIRE(up);
  port_ = std::stoi(read_text(port_file));
  auto env_token = options_.env.find("FORKWATCH_TOKEN");
  token_ = env_token != options_.env.end() ? env_token->second : read_text(state_dir_ + "/token");
  while (!token_.empty() && (token_.back() == '\n')) token_.pop_back();
}

Daemon::~Daemon() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    if (!wait_until([&] { return waitpid(pid_, nullptr, WNOHANG) == pid_; }, 20s)) {
      ::kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  if (own_state_dir_) {
    std::error_code ec;
    std::filesystem::remove_all(state_dir_, ec);
  }
}

std::string Daemon::stderr_text() const { return read_text(state_dir_ + "/daemon.stderr"); }

HttpReply Daemon::request(const std::string& method, const std::string& path, const std::string& body,
                          std::map<std::string, std::string> headers, bool auth) const {
  httplib::Client cli("127.0.0.1", port_);
  cli.set_connection_timeout(5);
  cli.set_read_timeout(15);
  httplib::Headers h;
  if (auth) h.emplace("Authorization", "Bearer " + token_);
  for (auto& [k, v] : headers) h.emplace(k, v);
  httplib::Result r = method == "GET"    ? cli.Get(path, h)
                      : method == "POST" ? cli.Post(path, h, body, "application/json")
                                         : cli.Delete(path, h);
  HttpReply out;
  if (!r) return out;
  out.status = r->status;
  out.body = r->body;
  for (auto& [k, v] : r->headers) out.headers[k] = v;
  return out;
}

Json Daemon::start(const Json& req) const {
  auto r = post("/api/workers", req.dump());
  INFO("start " << req.dump() << " -> " << r.status << " " << r.body);
  REQUIRE(r.status == 201);
  return r.json();
}

Json Daemon::worker(int64_t id) const {
  auto r = get("/api/workers/" + std::to_string(id));
  INFO("worker " << id << " -> " << r.status << " " << r.body);
  REQUIRE(r.status == 200);
  return r.json();
}

bool Daemon::wait_state(int64_t id, const std::string& state, std::chrono::milliseconds timeout) const {
  return wait_until([&] { return worker(id)["state"] == state; }, timeout);
}

int Daemon::terminate(std::chrono::milliseconds timeout) {
  REQUIRE(pid_ > 0);
  ::kill(pid_, SIGTERM);
  int status = -1;
  bool done = wait_until([&] { return waitpid(pid_, &status, WNOHANG) == pid_; }, timeout);
  INFO("daemon stderr: " << stderr_text());
  REQUIRE(done);
  pid_ = -1;
  return status;
}

void Daemon::kill_hard() {
  ::kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

int64_t query_int(const std::string& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  sqlite3_stmt* st = nullptr;
  int rc = sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr);
  INFO(sql << ": " << sqlite3_errmsg(db));
  REQUIRE(rc == SQLITE_OK);
  int64_t v = -1;
  if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return v;
}

std::vector<std::string> program_environ(pid_t pid) {
  std::vector<std::string> vars;
  wait_until([&] {
    std::ifstream in("/proc/" + std::to_string(pid) + "/environ", std::ios::binary);
    vars.clear();
    for (std::string kv; std::getline(in, kv, '\0');) vars.push_back(kv);
    return !vars.empty();
  });
  return vars;
}

bool ignores_term(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("SigIgn:", 0) == 0) return ((std::stoull(line.substr(7), nullptr, 16) >> (SIGTERM - 1)) & 1) != 0;
  return false;
}

std::vector<pid_t> children_of(pid_t parent, bool zombies_only) {
  std::vector<pid_t> out;
  DIR* d = opendir("/proc");
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    pid_t pid = static_cast<pid_t>(atoi(e->d_name));
    if (pid <= 0) continue;
    std::string stat = read_text("/proc/" + std::string(e->d_name) + "/stat");
    auto close = stat.rfind(')');
    if (close == std::string::npos || close + 4 >= stat.size()) continue;
    char state = stat[close + 2];
    pid_t ppid = static_cast<pid_t>(atoi(stat.c_str() + close + 4));
    if (ppid == parent && (!zombies_only || state == 'Z')) out.push_back(pid);
  }
  closedir(d);
  return out;
}

int connect_loopback(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  return fd;
}

int bind_loopback(int& port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  port = ntohs(addr.sin_port);
  return fd;
}

int free_port() {
  int port = 0;
  close(bind_loopback(port));
  return port;
}

int echo_port(const Daemon& d, int64_t worker_id) {
  int port = 0;
  REQUIRE(wait_until([&] {
    const Json logs = d.get("/api/workers/" + std::to_string(worker_id) + "/logs").json();
    for (const auto& l : logs["lines"])
      if (std::sscanf(l["text"].get<std::string>().c_str(), "listening on port %d", &port) == 1) return true;
    return false;
  }));
  return port;
}

const Json* find_node(const Json& nodes, int64_t pid) {
  for (const auto& n : nodes) {
    if (n["pid"] == pid) return &n;
    if (const Json* f = find_node(n["children"], pid)) return f;
  }
  return nullptr;
}

size_t count_nodes(const Json& nodes) {
  size_t n = 0;
  for (const auto& c : nodes) n += 1 + count_nodes(c["children"]);
  return n;
}

}  // namespace fwtest
