// The `forkwatch` client as users run it: the real binary, fork/exec'd against
// a real daemon, its stdout, stderr and exit status captured. Every command's
// happy path, and the exit codes scripts rely on (0, 1, 2, 3).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "daemon_harness.h"

extern char** environ;

using namespace fwtest;

namespace {

using Clock = std::chrono::steady_clock;

struct Run {
  int code = -1;  // exit status; 128+N when killed by signal N
  std::string out, err;
};

// The client's environment: ours without FORKWATCH_* (so the machine's
// settings cannot leak in), HOME and XDG_STATE_HOME pointing at an empty
// directory (no default token file), plus `extra`.
std::vector<std::string> client_env(const std::map<std::string, std::string>& extra) {
  static const std::string empty_home = make_temp_dir("fw-cli-home");
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string kv(*e);
    if (kv.rfind("FORKWATCH_", 0) == 0 || kv.rfind("HOME=", 0) == 0 || kv.rfind("XDG_STATE_HOME=", 0) == 0) continue;
    env.push_back(kv);
  }
  if (!extra.count("HOME")) env.push_back("HOME=" + empty_home);
  if (!extra.count("XDG_STATE_HOME")) env.push_back("XDG_STATE_HOME=" + empty_home + "/state");
  for (const auto& [k, v] : extra) env.push_back(k + "=" + v);
  return env;
}

// A running `forkwatch` whose output is collected by a reader thread.
class Client {
 public:
  Client(const std::vector<std::string>& args, const std::map<std::string, std::string>& env = {}) {
    int out[2], err[2];
    REQUIRE(pipe2(out, O_CLOEXEC) == 0);
    REQUIRE(pipe2(err, O_CLOEXEC) == 0);
    std::vector<std::string> argv_s = {bin("forkwatch")};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<std::string> env_s = client_env(env);
    std::vector<char*> argv, envp;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : env_s) envp.push_back(e.data());
    envp.push_back(nullptr);
    pid_ = fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      dup2(out[1], 1);
      dup2(err[1], 2);
      int devnull = open("/dev/null", O_RDONLY);
      dup2(devnull, 0);
      execve(argv[0], argv.data(), envp.data());
      _exit(127);
    }
    close(out[1]);
    close(err[1]);
    reader_ = std::thread([this, o = out[0], e = err[0]] { pump(o, e); });
  }
  ~Client() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (reader_.joinable()) reader_.join();
  }

  std::string out() const {
    std::lock_guard lock(mu_);
    return out_;
  }
  bool wait_out(const std::string& needle, std::chrono::milliseconds t = 10s) const {
    return wait_until([&] { return out().find(needle) != std::string::npos; }, t);
  }
  void signal(int sig) { ::kill(pid_, sig); }

  // Waits for the exit (killing it after `t`) and returns everything.
  Run finish(std::chrono::milliseconds t = 20s) {
    int status = 0;
    if (!wait_until([&] { return waitpid(pid_, &status, WNOHANG) == pid_; }, t)) {
      ::kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      FAIL("forkwatch did not exit in time; stdout: " << out());
    }
    pid_ = -1;
    reader_.join();
    Run r;
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    std::lock_guard lock(mu_);
    r.out = out_;
    r.err = err_;
    return r;
  }

 private:
  void pump(int o, int e) {
    pollfd fds[2] = {{o, POLLIN, 0}, {e, POLLIN, 0}};
    int open_fds = 2;
    while (open_fds > 0) {
      if (poll(fds, 2, 1000) <= 0) continue;
      for (int i = 0; i < 2; ++i) {
        if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        char buf[4096];
        ssize_t n = read(fds[i].fd, buf, sizeof buf);
        if (n <= 0) {
          close(fds[i].fd);
          fds[i].fd = -1;
          --open_fds;
          continue;
        }
        std::lock_guard lock(mu_);
        (i == 0 ? out_ : err_).append(buf, static_cast<size_t>(n));
      }
    }
  }

  pid_t pid_ = -1;
  std::thread reader_;
  mutable std::mutex mu_;
  std::string out_, err_;  // guarded by mu_
};

Run run(const std::vector<std::string>& args, const std::map<std::string, std::string>& env = {}) {
  Client c(args, env);
  return c.finish();
}

// `forkwatch --url URL --token T args...` against daemon `d`.
Run cli(const Daemon& d, std::vector<std::string> args) {
  args.insert(args.begin(), {"--url", d.url(), "--token", d.token()});
  return run(args);
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1)
    out.push_back(text.substr(start, nl - start));
  if (start < text.size()) out.push_back(text.substr(start));
  return out;
}

// The line of a table whose first column is `first`.
std::string row_of(const std::string& table, const std::string& first) {
  for (const auto& l : lines_of(table))
    if (l.rfind(first + " ", 0) == 0) return l;
  return "";
}

bool has(const std::string& text, const std::string& needle) { return text.find(needle) != std::string::npos; }

// A port on which nothing listens: bound (so nobody else takes it) but never listen()ed.
class DeadPort {
 public:
  DeadPort() : fd_(bind_loopback(port_)) {}
  ~DeadPort() { close(fd_); }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  int port_ = 0;
  int fd_ = -1;
};

}  // namespace

TEST_CASE("forkwatch --help lists every command and exits 0", "[integration]") {
  for (const char* flag : {"--help", "-h", "help"}) {
    auto r = run({flag});
    INFO(flag);
    CHECK(r.code == 0);
    for (const char* c : {"status", "start", "stop", "restart", "signal", "rm", "logs", "history", "events", "tree",
                          "--url", "--token", "--json", "FORKWATCH_URL", "FORKWATCH_TOKEN"})
      CHECK(has(r.out, c));
  }
  CHECK(run({"status", "--help"}).code == 0);
}

TEST_CASE("forkwatch status prints a table of workers, --json prints the daemon's JSON", "[integration]") {
  Daemon d;
  auto empty = cli(d, {"status"});
  CHECK(empty.code == 0);
  CHECK(has(empty.out, "no workers"));

  auto sleeper = d.start({{"program", "exit-with"}, {"args", {"--sleep"}}, {"name", "napper"}});
  auto coder = d.start({{"program", "exit-with"}, {"args", {"--code", "12"}}, {"name", "twelve"}});
  REQUIRE(d.wait_state(sleeper["id"], "running"));
  REQUIRE(d.wait_state(coder["id"], "exited"));
  const int pid = d.worker(sleeper["id"])["pid"];

  auto r = cli(d, {"status"});
  CHECK(r.code == 0);
  INFO(r.out);
  auto lines = lines_of(r.out);
  REQUIRE(lines.size() == 3);
  CHECK(lines[0].rfind("ID", 0) == 0);
  for (const char* col : {"NAME", "STATE", "PID", "RESTARTS", "UPTIME", "LAST EXIT"}) CHECK(has(lines[0], col));
  const std::string s = row_of(r.out, std::to_string(sleeper["id"].get<int>()));
  CHECK(has(s, "napper"));
  CHECK(has(s, "running"));
  CHECK(has(s, std::to_string(pid)));
  CHECK(has(s, "s"));  // uptime like "0s"
  const std::string c = row_of(r.out, std::to_string(coder["id"].get<int>()));
  CHECK(has(c, "twelve"));
  CHECK(has(c, "exited  "));
  CHECK(has(c, "exited 12"));

  // --json before or after the command: the daemon's own JSON.
  for (auto args : {std::vector<std::string>{"--json", "status"}, std::vector<std::string>{"status", "--json"}}) {
    auto j = cli(d, args);
    CHECK(j.code == 0);
    auto parsed = Json::parse(j.out);
    REQUIRE(parsed["workers"].size() == 2);
    CHECK(parsed["workers"][0]["pid"] == pid);
  }
  auto show = cli(d, {"show", std::to_string(coder["id"].get<int>())});
  CHECK(show.code == 0);
  CHECK(Json::parse(show.out)["recent_exits"][0]["wexitstatus"] == 12);
}

TEST_CASE("forkwatch start passes everything after PROGRAM to the program, even --options", "[integration]") {
  Daemon d;
  auto r = cli(d, {"start", "--name", "demo", "--restart", "always", "--env", "LC_ALL=C", "exit-with", "--stdout",
                   "--json", "--sleep"});
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);
  CHECK(has(r.out, "started worker 1 (demo)"));
  auto w = d.worker(1);
  CHECK(w["name"] == "demo");
  CHECK(w["restart"] == "always");
  CHECK(w["command"].back() == "--sleep");
  CHECK(w["command"][w["command"].size() - 2] == "--json");  // the program's, not ours
  REQUIRE(d.wait_state(1, "running"));
  REQUIRE(wait_until([&] { return d.get("/api/workers/1/logs").json()["lines"].size() == 1; }));
  CHECK(d.get("/api/workers/1/logs").json()["lines"][0]["text"] == "--json");

  auto j = cli(d, {"--json", "start", "exit-with", "--code", "3"});
  REQUIRE(j.code == 0);
  auto started = Json::parse(j.out);
  CHECK(started["id"] == 2);
  CHECK(started["program"] == "exit-with");
  REQUIRE(d.wait_state(2, "exited"));
  CHECK(d.worker(2)["last_exit"]["wexitstatus"] == 3);
}

TEST_CASE("forkwatch stop, restart, signal and rm act on a worker", "[integration]") {
  Daemon d;
  auto w = d.start({{"program", "exit-with"}, {"args", {"--sleep"}}, {"restart", "always"}});
  const std::string id = std::to_string(w["id"].get<int>());
  REQUIRE(d.wait_state(w["id"], "running"));
  const pid_t pid1 = d.worker(w["id"])["pid"];

  auto sig = cli(d, {"signal", id, "SIGSTOP"});
  CHECK(sig.code == 0);
  CHECK(has(sig.out, "SIGSTOP"));
  REQUIRE(wait_until([&] { return query_int(d.db_path(), "SELECT count(*) FROM wait_status WHERE wifstopped = 1") == 1; }));
  CHECK(cli(d, {"signal", id, "18"}).code == 0);  // SIGCONT by number
  REQUIRE(wait_until([&] { return query_int(d.db_path(), "SELECT count(*) FROM wait_status WHERE wifcontinued = 1") == 1; }));

  auto restart = cli(d, {"restart", id});
  CHECK(restart.code == 0);
  CHECK(has(restart.out, "worker " + id));
  pid_t pid2 = 0;
  REQUIRE(wait_until([&] {
    auto now = d.worker(w["id"]);
    pid2 = now["pid"].is_number() ? now["pid"].get<pid_t>() : 0;
    return now["state"] == "running" && pid2 > 0 && pid2 != pid1;
  }));

  auto stop = cli(d, {"stop", id});
  CHECK(stop.code == 0);
  REQUIRE(d.wait_state(w["id"], "stopped"));
  CHECK(::kill(pid2, 0) != 0);

  auto rm = cli(d, {"rm", id});
  CHECK(rm.code == 0);
  CHECK(has(rm.out, "removed worker " + id));
  CHECK(wait_until([&] { return d.get("/api/workers/" + id).status == 404; }));
}

TEST_CASE("forkwatch logs prints output by stream and tail, and -f follows until SIGINT", "[integration]") {
  Daemon d({.args = {"--allow-commands"}});
  auto w = d.start({{"program", "exit-with"},
                    {"args", {"--stdout", "one", "--stdout", "two", "--stderr", "oops", "--stdout", "three", "--sleep"}}});
  const std::string id = std::to_string(w["id"].get<int>());
  REQUIRE(wait_until([&] { return d.get("/api/workers/" + id + "/logs").json()["lines"].size() == 4; }));

  auto all = cli(d, {"logs", id});
  CHECK(all.code == 0);
  CHECK(all.out == "one\ntwo\nthree\n");
  CHECK(all.err == "oops\n");  // stderr lines go to stderr
  CHECK(cli(d, {"logs", id, "--stream", "stdout", "--tail", "2"}).out == "two\nthree\n");
  auto err_only = cli(d, {"logs", "--stream=stderr", id});
  CHECK(err_only.out.empty());
  CHECK(err_only.err == "oops\n");
  // Two pipes: which of "oops" and "three" the daemon read last is up to the
  // scheduler, so the last line is asked of one stream.
  auto j = cli(d, {"--json", "logs", id, "--stream", "stdout", "--tail", "1"});
  CHECK(Json::parse(j.out)["lines"][0]["text"] == "three");

  // Follow a worker that prints a line every 100 ms, for as long as it takes
  // the CLI to start (a worker that ticked once per restart ran out at the
  // start limit, five ticks in a second, before a slow CLI had seen four).
  auto ticker = d.start({{"command", {"/bin/sh", "-c", "while :; do echo tick; sleep 0.1; done"}}});
  const std::string tid = std::to_string(ticker["id"].get<int>());
  Client follow({"--url", d.url(), "--token", d.token(), "logs", "-f", tid, "--tail", "1"});
  // More ticks than the one --tail showed: they came while following.
  REQUIRE(wait_until([&] {
    auto lines = lines_of(follow.out());
    return lines.size() >= 4;
  }));
  follow.signal(SIGINT);
  auto r = follow.finish(5s);
  CHECK(r.code == 0);
  for (const auto& l : lines_of(r.out)) CHECK(l == "tick");
}

TEST_CASE("forkwatch history shows wait statuses in words and filters by worker", "[integration]") {
  Daemon d;
  auto a = d.start({{"program", "exit-with"}, {"args", {"--code", "12"}}});
  auto b = d.start({{"program", "exit-with"}, {"args", {"--signal", "SIGKILL"}}});
  auto c = d.start({{"program", "exit-with"}, {"args", {"--signal", "SIGSEGV"}}});
  REQUIRE(wait_until([&] { return query_int(d.db_path(), "SELECT count(*) FROM wait_status") == 3; }));
  auto r = cli(d, {"history"});
  CHECK(r.code == 0);
  INFO(r.out);
  auto lines = lines_of(r.out);
  REQUIRE(lines.size() == 4);
  for (const char* col : {"ROW", "TIME", "PID", "WORKER", "STATUS"}) CHECK(has(lines[0], col));
  CHECK(has(r.out, "exited 12"));
  CHECK(has(r.out, "killed by SIGKILL"));
  CHECK(has(r.out, "killed by SIGSEGV"));
  CHECK(has(r.out, std::to_string(a["pid"].get<int>())));

  auto one = cli(d, {"history", "--worker", std::to_string(b["id"].get<int>())});
  CHECK(one.code == 0);
  REQUIRE(lines_of(one.out).size() == 2);
  CHECK(has(one.out, "killed by SIGKILL"));
  auto limited = cli(d, {"history", "--limit", "1"});
  REQUIRE(lines_of(limited.out).size() == 2);
  // Newest first: the last row recorded, whichever of the three died last.
  const int64_t newest = query_int(d.db_path(), "SELECT pid FROM wait_status ORDER BY id DESC LIMIT 1");
  CHECK(has(limited.out, std::to_string(newest)));
  auto j = cli(d, {"--json", "history", "--limit=2"});
  CHECK(Json::parse(j.out)["rows"].size() == 2);
  (void)c;
}

TEST_CASE("forkwatch events prints one line per event as it happens and stops on SIGINT", "[integration]") {
  Daemon d;
  Client human({"--url", d.url(), "--token", d.token(), "events"});
  Client raw({"--url", d.url(), "--token", d.token(), "--json", "events"});
  // Started after both streams are up: wait until the daemon counts two clients.
  REQUIRE(wait_until([&] {
    auto m = d.request("GET", "/metrics", "", {}, false).body;
    return m.find("\nforkwatch_sse_clients 2") != std::string::npos;
  }));
  auto w = d.start({{"program", "exit-with"}, {"args", {"--code", "12"}}});
  const std::string id = std::to_string(w["id"].get<int>());
  REQUIRE(human.wait_out("exited 12"));
  REQUIRE(raw.wait_out("\"wexitstatus\":12"));
  human.signal(SIGINT);
  raw.signal(SIGINT);
  auto h = human.finish(5s);
  auto j = raw.finish(5s);
  CHECK(h.code == 0);
  CHECK(j.code == 0);
  bool spawn = false, exit = false;
  for (const auto& l : lines_of(h.out)) {
    if (has(l, "spawn") && has(l, "worker " + id)) spawn = true;
    if (has(l, "exit") && has(l, "worker " + id) && has(l, "exited 12")) exit = true;
  }
  CHECK(spawn);
  CHECK(exit);
  for (const auto& l : lines_of(j.out)) {
    auto e = Json::parse(l, nullptr, false);
    INFO(l);
    CHECK(e.is_object());
    CHECK(e.contains("type"));
  }
}

TEST_CASE("forkwatch tree shows workers under the daemon with their threads", "[integration]") {
  Daemon d;
  auto w = d.start({{"program", "thread-spawner"}, {"args", {"--threads", "2"}}, {"name", "spinner"}});
  REQUIRE(d.wait_state(w["id"], "running"));
  const std::string pid = std::to_string(d.worker(w["id"])["pid"].get<int>());
  Run r;
  REQUIRE(wait_until([&] {
    r = cli(d, {"tree"});
    return r.code == 0 && has(r.out, "thread-spawner(" + pid + ")") && lines_of(r.out).size() >= 4;
  }));
  INFO(r.out);
  auto lines = lines_of(r.out);
  CHECK(lines[0].rfind("forkwatchd(" + std::to_string(d.pid()) + ")", 0) == 0);
  CHECK(has(r.out, "└─ thread-spawner(" + pid + ")"));
  CHECK(has(r.out, "[worker " + std::to_string(w["id"].get<int>()) + " spinner]"));
  CHECK(has(r.out, "cpu "));
  CHECK(has(r.out, "rss "));
  CHECK(has(r.out, "{"));  // threads shown as {name}(tid)
  auto all = cli(d, {"tree", "--all"});
  CHECK(all.code == 0);
  CHECK(lines_of(all.out).size() > lines.size());
  auto j = cli(d, {"--json", "tree"});
  CHECK(Json::parse(j.out).is_array());
  auto programs = cli(d, {"programs"});
  CHECK(programs.code == 0);
  CHECK(has(programs.out, "exit-with"));
  CHECK(has(programs.out, "built-in"));
}

TEST_CASE("forkwatch escapes terminal controls from names, process names and output unless --raw",
          "[integration]") {
  // A program whose file name is an OSC 0 (set the window title) sequence:
  // it becomes the worker's name and the process's comm; its output writes
  // the clipboard (OSC 52) and reverses the line (U+202E).
  const std::string dir = make_temp_dir("fw-cli-osc");
  const std::string title = "\x1b]0;pwn\x07";
  const std::string link = dir + "/" + title;
  std::filesystem::create_symlink(bin("exit-with"), link);
  const std::string clip = "\x1b]52;c;cHduZWQ=\x07";
  const std::string rlo = "\xe2\x80\xae" "txt.exe";
  Daemon d({.args = {"--allow-commands"}});
  auto w = d.start({{"command", {link, "--stdout", clip, "--stdout", rlo, "--sleep"}}});
  const std::string id = std::to_string(w["id"].get<int>());
  REQUIRE(d.wait_state(w["id"], "running"));
  REQUIRE(wait_until([&] { return d.get("/api/workers/" + id + "/logs").json()["lines"].size() == 2; }));
  const std::string pid = std::to_string(d.worker(w["id"])["pid"].get<int>());

  auto status = cli(d, {"status"});
  INFO(status.out);
  CHECK(status.out.find('\x1b') == std::string::npos);
  CHECK(has(status.out, dir + "/\\x1b]0;pwn\\x07"));
  auto logs = cli(d, {"logs", id});
  CHECK(logs.out == "\\x1b]52;c;cHduZWQ=\\x07\n\\u202etxt.exe\n");
  Run tree;
  REQUIRE(wait_until([&] {
    tree = cli(d, {"tree"});
    return has(tree.out, "(" + pid + ")");
  }));
  INFO(tree.out);
  CHECK(tree.out.find('\x1b') == std::string::npos);
  CHECK(has(tree.out, "\\x1b]0;pwn\\x07(" + pid + ")"));
  auto as_json = cli(d, {"--json", "logs", id});
  CHECK(as_json.out.find('\x1b') == std::string::npos);
  CHECK(as_json.out.find("\xe2\x80\xae") == std::string::npos);  // \u202e, still the same JSON
  CHECK(Json::parse(as_json.out)["lines"][1]["text"] == rlo);
  // --raw: exactly what the worker wrote.
  CHECK(cli(d, {"--raw", "logs", id}).out == clip + "\n" + rlo + "\n");
  std::filesystem::remove_all(dir);
}

TEST_CASE("forkwatch exits 1 with the daemon's message when the daemon says no", "[integration]") {
  Daemon d;
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"stop", "999"}, "no worker with id 999"},
      {{"restart", "999"}, "999"},
      {{"rm", "999"}, "999"},
      {{"signal", "999", "SIGTERM"}, "999"},
      {{"logs", "999"}, "no worker with id 999"},
      {{"show", "999"}, "no worker with id 999"},
      {{"start", "no-such-program"}, "no-such-program"},
      {{"start", "--command", "/bin/true"}, "--allow-commands"}};
  for (const auto& [args, message] : cases) {
    auto r = cli(d, args);
    INFO(args[0] << " " << args[1] << ": " << r.err);
    CHECK(r.code == 1);
    CHECK(has(r.err, message));
    CHECK(r.out.empty());
  }
  auto w = d.start({{"program", "exit-with"}, {"args", {"--sleep"}}});
  auto bad_sig = cli(d, {"signal", std::to_string(w["id"].get<int>()), "SIGFOO"});
  CHECK(bad_sig.code == 1);
  CHECK(has(bad_sig.err, "invalid_signal"));
  auto wrong = run({"--url", d.url(), "--token", "wrong", "status"});
  CHECK(wrong.code == 1);
  CHECK(has(wrong.err, "401"));
  auto none = run({"--url", d.url(), "status"});
  CHECK(none.code == 1);
  CHECK(has(none.err, "FORKWATCH_TOKEN"));  // the hint about where tokens come from
  CHECK(d.worker(w["id"])["state"] == "running");
}

TEST_CASE("forkwatch exits 2 with one line and a hint on bad usage, before any request", "[integration]") {
  DeadPort dead;  // exit 2, not 3: nothing is sent
  const std::vector<std::vector<std::string>> cases = {
      {},
      {"frobnicate"},
      {"--bogus", "status"},
      {"status", "--bogus"},
      {"status", "extra"},
      {"stop"},
      {"stop", "abc"},
      {"stop", "0"},
      {"stop", "1", "2"},
      {"signal", "1"},
      {"start"},
      {"start", "--restart", "sometimes", "exit-with"},
      {"start", "--max-restarts", "many", "exit-with"},
      {"start", "--env", "NOEQUALS", "exit-with"},
      {"start", "--frob", "exit-with"},
      {"logs"},
      {"logs", "1", "--tail", "x"},
      {"logs", "1", "--stream", "both"},
      {"history", "--limit", "-1"},
      {"history", "--worker"},
      {"tree", "--some"},
      {"events", "--since", "x"},
      {"--url", "ftp://127.0.0.1:1", "status"},
      {"--token"}};
  for (const auto& args : cases) {
    std::vector<std::string> full = {"--url", dead.url()};
    full.insert(full.end(), args.begin(), args.end());
    auto r = run(full);
    std::string shown;
    for (auto& a : args) shown += a + " ";
    INFO("forkwatch " << shown << "-> " << r.err);
    CHECK(r.code == 2);
    auto lines = lines_of(r.err);
    REQUIRE(lines.size() == 2);
    CHECK(lines[0].rfind("forkwatch: ", 0) == 0);
    CHECK(has(lines[1], "--help"));
    CHECK(r.out.empty());
  }
}

TEST_CASE("forkwatch exits 3 when nothing listens at the URL", "[integration]") {
  DeadPort dead;
  for (auto args : {std::vector<std::string>{"status"}, std::vector<std::string>{"stop", "1"},
                    std::vector<std::string>{"start", "exit-with"}, std::vector<std::string>{"logs", "-f", "1"},
                    std::vector<std::string>{"events"}, std::vector<std::string>{"tree"}}) {
    args.insert(args.begin(), {"--url", dead.url(), "--token", "t"});
    auto r = run(args);
    INFO(args[4] << ": " << r.err);
    CHECK(r.code == 3);
    CHECK(has(r.err, "cannot reach"));
    CHECK(has(r.err, dead.url()));
  }
  // FORKWATCH_URL is the default URL.
  auto env = run({"status"}, {{"FORKWATCH_URL", dead.url()}, {"FORKWATCH_TOKEN", "t"}});
  CHECK(env.code == 3);
  CHECK(has(env.err, dead.url()));
}

TEST_CASE("forkwatch takes its URL and token from the environment and token files", "[integration]") {
  Daemon d;
  // FORKWATCH_URL and FORKWATCH_TOKEN.
  CHECK(run({"status"}, {{"FORKWATCH_URL", d.url()}, {"FORKWATCH_TOKEN", d.token()}}).code == 0);
  // --token beats a wrong FORKWATCH_TOKEN; --url beats a dead FORKWATCH_URL.
  DeadPort dead;
  CHECK(run({"--url", d.url(), "--token", d.token(), "status"}, {{"FORKWATCH_URL", dead.url()}, {"FORKWATCH_TOKEN", "x"}})
            .code == 0);
  // --token-file, and the daemon's default token file under XDG_STATE_HOME.
  const std::string dir = make_temp_dir("fw-cli-token");
  std::ofstream(dir + "/tok") << d.token() << "\n";
  CHECK(run({"--url", d.url(), "--token-file", dir + "/tok", "status"}).code == 0);
  std::filesystem::create_directories(dir + "/forkwatch");
  std::ofstream(dir + "/forkwatch/token") << d.token() << "\n";
  CHECK(run({"--url", d.url(), "status"}, {{"XDG_STATE_HOME", dir}}).code == 0);
  auto missing = run({"--url", d.url(), "--token-file", dir + "/none", "status"});
  CHECK(missing.code == 2);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}
