// forkwatchd as a systemd service, without systemd: a fake NOTIFY_SOCKET (a
// datagram socket the test binds) receives READY, STATUS, WATCHDOG, RELOADING
// and STOPPING; SIGHUP reloads the config; a listening socket passed as fd 3
// is served; JOURNAL_STREAM turns on "<N>" priority prefixes.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "daemon_harness.h"

using namespace fwtest;

namespace {

using Clock = std::chrono::steady_clock;

struct Datagram {
  std::string text;
  Clock::time_point at;
};

// The systemd side of sd_notify(3): an AF_UNIX datagram socket bound at a
// path in a temp dir, or at an abstract name ("@..."), collecting messages.
class NotifySocket {
 public:
  explicit NotifySocket(bool abstract = false) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    socklen_t len = 0;
    if (abstract) {
      static int n = 0;
      std::string name = "fwtest-notify-" + std::to_string(getpid()) + "-" + std::to_string(++n);
      env_value_ = "@" + name;
      std::memcpy(sun.sun_path + 1, name.data(), name.size());  // sun_path[0] stays NUL
      len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
    } else {
      dir_ = make_temp_dir("fw-notify");
      env_value_ = dir_ + "/notify";
      std::memcpy(sun.sun_path, env_value_.data(), env_value_.size());
      len = static_cast<socklen_t>(sizeof sun);
    }
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&sun), len) == 0);
  }
  ~NotifySocket() {
    ::close(fd_);
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
  }
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;

  const std::string& env_value() const { return env_value_; }

  // Reads every datagram waiting now.
  void drain() {
    char buf[4096];
    for (;;) {
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n < 0) return;
      messages_.push_back({std::string(buf, static_cast<size_t>(n)), Clock::now()});
    }
  }
  // Index of the first message from `from` on that has a line equal to
  // `line` (or starting with it when it ends in '='), waiting up to `timeout`.
  std::optional<size_t> wait_for(const std::string& line, size_t from = 0,
                                 std::chrono::milliseconds timeout = 15s) {
    std::optional<size_t> found;
    wait_until([&] {
      drain();
      for (size_t i = from; i < messages_.size(); ++i) {
        if (has_line(messages_[i].text, line)) {
          found = i;
          return true;
        }
      }
      return false;
    }, timeout);
    return found;
  }
  size_t count(const std::string& line, size_t from = 0) {
    drain();
    size_t n = 0;
    for (size_t i = from; i < messages_.size(); ++i) n += has_line(messages_[i].text, line);
    return n;
  }
  const std::vector<Datagram>& messages() const { return messages_; }
  std::string all_text() const {
    std::string out;
    for (const auto& m : messages_) out += "[" + m.text + "] ";
    return out;
  }

  static bool has_line(const std::string& text, const std::string& line) {
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);) {
      if (l == line) return true;
      if (line.back() == '=' && l.rfind(line, 0) == 0) return true;
    }
    return false;
  }

 private:
  int fd_ = -1;
  std::string dir_;
  std::string env_value_;
  std::vector<Datagram> messages_;
};

// Sets WATCHDOG_PID to the daemon's own pid: known only in the child.
void set_watchdog_pid_to_self() { setenv("WATCHDOG_PID", std::to_string(getpid()).c_str(), 1); }

// Collects messages for `window`, measuring it, and returns how long it was.
std::chrono::milliseconds observe(NotifySocket& notify, std::chrono::milliseconds window) {
  const auto start = Clock::now();
  wait_until([&] {
    notify.drain();
    return Clock::now() - start >= window;
  }, window + 5s);
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
}

std::map<std::string, Json> workers_by_name(const Daemon& d) {
  std::map<std::string, Json> out;
  const Json all = d.get("/api/workers").json();  // kept alive: the loop walks into it
  for (const auto& w : all["workers"]) out[w["name"].get<std::string>()] = w;
  return out;
}

bool all_running(const Daemon& d, const std::vector<std::string>& names) {
  auto ws = workers_by_name(d);
  for (const auto& n : names)
    if (!ws.contains(n) || ws[n]["state"] != "running") return false;
  return true;
}

void write_config(const Daemon& d, const std::string& text) {
  // Atomic replace, as an editor or config manager would.
  const std::string path = d.state_dir() + "/programs.json";
  std::ofstream(path + ".new") << text;
  std::filesystem::rename(path + ".new", path);
}

uint64_t monotonic_usec_now() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000u + static_cast<uint64_t>(ts.tv_nsec) / 1000u;
}

bool accepts_connections(int port) {
  int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  const bool ok = ::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(s);
  return ok;
}

bool environ_has(pid_t pid, const std::string& name) {
  for (const auto& kv : program_environ(pid))
    if (kv.starts_with(name + "=")) return true;
  return false;
}

}  // namespace

TEST_CASE("NOTIFY_SOCKET gets READY once the API answers, STATUS with worker counts, STOPPING first on SIGTERM",
          "[integration]") {
  NotifySocket notify;
  // Workers that ignore SIGTERM: the daemon needs their stop timeout to end
  // them, and STOPPING=1 must reach systemd before that, not after.
  Daemon d({.config = R"({"programs": [
      {"name": "stubborn", "command": ["exit-with", "--ignore-term", "--sleep"], "instances": 2,
       "stop_timeout_ms": 3000}]})",
            .env = {{"NOTIFY_SOCKET", notify.env_value()}}});

  auto ready = notify.wait_for("READY=1");
  INFO("datagrams: " << notify.all_text());
  REQUIRE(ready);
  // READY=1 means the API answers now, without a retry.
  CHECK(d.request("GET", "/api/health", "", {}, false).status == 200);

  auto status = notify.wait_for("STATUS=2 running");
  REQUIRE(status);

  // Workers must not inherit the notify socket: they would talk to systemd as us.
  auto ws = workers_by_name(d);
  REQUIRE(ws.contains("stubborn:0"));
  const pid_t worker_pid = ws["stubborn:0"]["pid"].get<pid_t>();
  CHECK_FALSE(environ_has(worker_pid, "NOTIFY_SOCKET"));
  // Running means exec'd, not yet ignoring SIGTERM: a SIGTERM before that
  // ends them at once, and the daemon with them, before the checks below.
  REQUIRE(ws.contains("stubborn:1"));
  for (const char* name : {"stubborn:0", "stubborn:1"})
    REQUIRE(wait_until([&] { return ignores_term(ws[name]["pid"].get<pid_t>()); }));

  REQUIRE(::kill(d.pid(), SIGTERM) == 0);
  const auto term_sent = Clock::now();
  auto stopping = notify.wait_for("STOPPING=1", *status);
  REQUIRE(stopping);
  // The workers ignore SIGTERM for 3 s: the daemon is still alive when
  // STOPPING=1 arrives, and STATUS shows them stopping.
  CHECK(notify.messages()[*stopping].at - term_sent < 2500ms);
  CHECK(waitpid(d.pid(), nullptr, WNOHANG) == 0);
  CHECK(notify.wait_for("STATUS=2 stopping", *status));

  int st = d.terminate(30s);
  REQUIRE(WIFEXITED(st));
  CHECK(WEXITSTATUS(st) == 0);
  // STOPPING=1 came before the last status and exactly once.
  CHECK(notify.count("STOPPING=1") == 1);
  CHECK(notify.count("READY=1") == 1);
}

TEST_CASE("WATCHDOG=1 pings arrive at half of WATCHDOG_USEC when WATCHDOG_PID is the daemon, also on an abstract socket",
          "[integration]") {
  const bool abstract = GENERATE(false, true);
  NotifySocket notify(abstract);
  INFO("NOTIFY_SOCKET=" << notify.env_value());
  Daemon d({.env = {{"NOTIFY_SOCKET", notify.env_value()}, {"WATCHDOG_USEC", "400000"}},
            .before_exec = set_watchdog_pid_to_self});
  REQUIRE(notify.wait_for("READY=1"));
  REQUIRE(notify.wait_for("WATCHDOG=1"));

  const size_t before = notify.messages().size();
  const auto window = observe(notify, 2000ms);
  const size_t pings = notify.count("WATCHDOG=1", before);
  INFO("pings: " << pings << " in " << window.count() << " ms");
  // Every 200 ms: ten in two seconds. Generous below for a loaded machine;
  // above, the timer re-arms after each ping so it can never run fast.
  const auto expected = window / 200ms;
  CHECK(pings >= static_cast<size_t>(expected / 3));
  CHECK(pings <= static_cast<size_t>(expected + 2));
}

TEST_CASE("no WATCHDOG=1 pings when WATCHDOG_PID names another process", "[integration]") {
  NotifySocket notify;
  Daemon d({.env = {{"NOTIFY_SOCKET", notify.env_value()}, {"WATCHDOG_USEC", "200000"}, {"WATCHDOG_PID", "1"}}});
  REQUIRE(notify.wait_for("READY=1"));
  observe(notify, 1000ms);  // ten intervals
  CHECK(notify.count("WATCHDOG=1") == 0);
}

TEST_CASE("a loop thread held stuck stops the WATCHDOG=1 pings until it is released", "[integration]") {
  NotifySocket notify;
  const std::string dir = make_temp_dir("fw-hold");
  const std::string fifo = dir + "/hold";
  REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
  {
    Daemon d({.env = {{"NOTIFY_SOCKET", notify.env_value()},
                      {"WATCHDOG_USEC", "400000"},
                      {"FORKWATCH_TEST_HOLD_LOOP", fifo}},
              .before_exec = set_watchdog_pid_to_self});
    REQUIRE(notify.wait_for("READY=1"));
    REQUIRE(notify.wait_for("WATCHDOG=1"));
    // The daemon holds the FIFO open for reading and writing: this never blocks.
    const int w = ::open(fifo.c_str(), O_WRONLY | O_CLOEXEC);
    REQUIRE(w >= 0);

    REQUIRE(::write(w, "h", 1) == 1);
    REQUIRE(wait_until([&] { return d.stderr_text().find("test hook: loop thread held") != std::string::npos; }));
    notify.drain();  // a ping sent just before the hold does not count
    const size_t held_from = notify.messages().size();
    const auto window = observe(notify, 1200ms);  // six ping intervals
    INFO("held for " << window.count() << " ms; datagrams: " << notify.all_text());
    CHECK(notify.count("WATCHDOG=1", held_from) == 0);
    // Only the loop is stuck: the API thread still answers health checks.
    CHECK(d.request("GET", "/api/health", "", {}, false).status == 200);

    REQUIRE(::write(w, "r", 1) == 1);
    const size_t released_from = notify.messages().size();
    CHECK(wait_until([&] { return notify.count("WATCHDOG=1", released_from) >= 3; }, 10s));
    CHECK(d.stderr_text().find("test hook: loop thread released") != std::string::npos);
    ::close(w);
    CHECK(WIFEXITED(d.terminate()));
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

TEST_CASE("SIGHUP reloads the config: unchanged workers keep their pids, added start, removed stop, changed restart",
          "[integration]") {
  NotifySocket notify;
  // The changed program holds a fixed port, takes a second to stop (SIGWINCH
  // is ignored: SIGKILL after stop_timeout_ms, like a server draining its
  // clients) and is not restarted on failure: its new worker only comes up if
  // it starts after the old one let go of the port.
  const std::string port = std::to_string(free_port());
  const std::string v1 = R"({"programs": [
      {"name": "keep", "command": ["exit-with", "--sleep"]},
      {"name": "change", "command": ["echo-epoll", "--port", ")" + port + R"("], "restart": "no",
       "stop_signal": "SIGWINCH", "stop_timeout_ms": 1000},
      {"name": "remove", "command": ["exit-with", "--sleep"]}]})";
  const std::string v2 = R"({"programs": [
      {"name": "keep", "command": ["exit-with", "--sleep"]},
      {"name": "change", "command": ["echo-epoll", "--port", ")" + port + R"("], "restart": "no",
       "stop_signal": "SIGWINCH", "stop_timeout_ms": 1000,
       "env": {"CHANGED": "1"}},
      {"name": "added", "command": ["exit-with", "--sleep"]}]})";
  Daemon d({.config = v1, .env = {{"NOTIFY_SOCKET", notify.env_value()}}});
  REQUIRE(notify.wait_for("READY=1"));
  REQUIRE(wait_until([&] { return all_running(d, {"keep", "change", "remove"}); }));
  auto before = workers_by_name(d);
  const pid_t keep_pid = before["keep"]["pid"], change_pid = before["change"]["pid"],
              remove_pid = before["remove"]["pid"];

  write_config(d, v2);
  const size_t from = notify.messages().size();
  const uint64_t hup_usec = monotonic_usec_now();
  REQUIRE(::kill(d.pid(), SIGHUP) == 0);
  auto reloading = notify.wait_for("RELOADING=1", from);
  INFO("datagrams: " << notify.all_text());
  REQUIRE(reloading);
  // MONOTONIC_USEC in the same datagram, stamped after the signal was sent.
  const std::string& text = notify.messages()[*reloading].text;
  auto pos = text.find("\nMONOTONIC_USEC=");
  REQUIRE(pos != std::string::npos);
  const uint64_t stamped = std::stoull(text.substr(pos + 16));
  CHECK(stamped >= hup_usec);
  CHECK(stamped <= monotonic_usec_now());
  REQUIRE(notify.wait_for("READY=1", *reloading + 1));

  const bool settled = wait_until([&] {
    auto ws = workers_by_name(d);
    return ws.size() == 3 && all_running(d, {"keep", "change", "added"}) && !ws.contains("remove");
  });
  INFO("workers: " << d.get("/api/workers").body);
  REQUIRE(settled);
  auto after = workers_by_name(d);
  CHECK(after["keep"]["pid"] == keep_pid);
  CHECK(after["keep"]["id"] == before["keep"]["id"]);
  CHECK(after["change"]["pid"] != change_pid);
  CHECK(environ_has(after["change"]["pid"].get<pid_t>(), "CHANGED"));
  // The old processes of changed and removed programs are gone (reaped).
  CHECK(wait_until([&] { return ::kill(change_pid, 0) != 0 && ::kill(remove_pid, 0) != 0; }));
  // With the old one gone, the new echo server still runs and holds the port.
  CHECK(wait_until([&] { return accepts_connections(std::stoi(port)); }));
  CHECK(workers_by_name(d)["change"]["state"] == "running");
  CHECK(workers_by_name(d)["change"]["pid"] == after["change"]["pid"]);
  CHECK(d.stderr_text().find("reloaded config: 1 added, 1 changed, 1 removed") != std::string::npos);

  SECTION("a broken config on reload is refused and the old one stays in force") {
    for (const std::string& broken : {std::string(R"({"programs": [ {"name": )"),
                                     std::string(R"({"programs": [{"name": "no-command"}]})")}) {
      INFO("config: " << broken);
      write_config(d, broken);
      const size_t hup_from = notify.messages().size();
      const size_t refusals = [&] {
        std::string err = d.stderr_text();
        size_t n = 0;
        for (size_t p = err.find("reload refused"); p != std::string::npos; p = err.find("reload refused", p + 1)) ++n;
        return n;
      }();
      REQUIRE(::kill(d.pid(), SIGHUP) == 0);
      // systemd waits for READY=1 after RELOADING=1 either way.
      auto r = notify.wait_for("RELOADING=1", hup_from);
      REQUIRE(r);
      REQUIRE(notify.wait_for("READY=1", *r + 1));
      REQUIRE(wait_until([&] {
        std::string err = d.stderr_text();
        size_t n = 0;
        for (size_t p = err.find("reload refused"); p != std::string::npos; p = err.find("reload refused", p + 1)) ++n;
        return n > refusals;
      }));
      CHECK(d.stderr_text().find("reload refused, keeping the running config: ") != std::string::npos);
      // Workers untouched, daemon alive.
      auto now = workers_by_name(d);
      CHECK(now.size() == 3);
      for (const auto& name : {"keep", "change", "added"}) {
        CHECK(now[name]["pid"] == after[name]["pid"]);
        CHECK(now[name]["state"] == "running");
      }
      CHECK(d.request("GET", "/api/health", "", {}, false).status == 200);
    }
    // The config in force is still v2: reloading v2 again changes nothing.
    write_config(d, v2);
    REQUIRE(::kill(d.pid(), SIGHUP) == 0);
    REQUIRE(wait_until([&] {
      return d.stderr_text().find("reloaded config: 0 added, 0 changed, 0 removed") != std::string::npos;
    }));
    auto last = workers_by_name(d);
    for (const auto& name : {"keep", "change", "added"}) CHECK(last[name]["pid"] == after[name]["pid"]);
  }
}

TEST_CASE("socket activation: the daemon serves on a listening socket passed as fd 3 with LISTEN_FDS",
          "[integration]") {
  int sock = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(sock >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(sock, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(sock, 64) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(sock, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  const int port = ntohs(addr.sin_port);
  struct stat sock_stat{};
  REQUIRE(::fstat(sock, &sock_stat) == 0);

  // As systemd does: fd 3, without close-on-exec, LISTEN_PID the child's pid.
  Daemon d({.env = {{"LISTEN_FDS", "1"}},
            .before_exec = [sock] {
              if (sock == 3) {
                ::fcntl(3, F_SETFD, 0);
              } else {
                ::dup2(sock, 3);  // the copy is not close-on-exec
              }
              setenv("LISTEN_PID", std::to_string(getpid()).c_str(), 1);
            }});
  ::close(sock);  // the daemon holds its own copy
  CHECK(d.port() == port);  // --listen 127.0.0.1:0 was ignored for the passed socket
  auto health = d.request("GET", "/api/health", "", {}, false);
  REQUIRE(health.status == 200);
  CHECK(health.json()["pid"] == d.pid());

  // Workers inherit neither the variables nor the socket.
  auto w = d.start({{"program", "exit-with"}, {"args", {"--sleep"}}});
  REQUIRE(d.wait_state(w["id"], "running"));
  const pid_t wpid = d.worker(w["id"])["pid"];
  // environ_has waits for the exec's environment, which the kernel sets
  // after it closed the close-on-exec fds: the fd check below comes after.
  CHECK_FALSE(environ_has(wpid, "LISTEN_PID"));
  CHECK_FALSE(environ_has(wpid, "LISTEN_FDS"));
  const std::string socket_link = "socket:[" + std::to_string(sock_stat.st_ino) + "]";
  for (const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(wpid) + "/fd")) {
    std::error_code ec;
    CHECK(std::filesystem::read_symlink(e.path(), ec).string() != socket_link);
  }
}

TEST_CASE("with JOURNAL_STREAM naming stderr, every daemon line carries a <N> priority prefix", "[integration]") {
  const std::string dir = make_temp_dir("fw-journal");
  const std::string err_path = dir + "/daemon.stderr";
  std::ofstream(err_path).close();
  struct stat st{};
  REQUIRE(::stat(err_path.c_str(), &st) == 0);
  const std::string journal_stream = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
  {
    Daemon d({.config = R"({"programs": []})", .env = {{"JOURNAL_STREAM", journal_stream}}, .state_dir = dir});
    write_config(d, R"({"programs": )");
    REQUIRE(::kill(d.pid(), SIGHUP) == 0);
    REQUIRE(wait_until([&] { return d.stderr_text().find("reload refused") != std::string::npos; }));
    CHECK(WIFEXITED(d.terminate()));

    const std::string err = d.stderr_text();
    INFO("stderr:\n" << err);
    CHECK(err.find("<5>forkwatchd: listening on http://127.0.0.1:" + std::to_string(d.port())) != std::string::npos);
    CHECK(err.find("<3>forkwatchd: reload refused") != std::string::npos);
    // The journal is readable by more people than the token file.
    CHECK(err.find(d.token()) == std::string::npos);
    std::istringstream in(err);
    int lines = 0;
    for (std::string line; std::getline(in, line); ++lines) {
      INFO("line: " << line);
      REQUIRE(line.size() > 3);
      CHECK(line[0] == '<');
      CHECK(line[1] >= '0');
      CHECK(line[1] <= '7');
      CHECK(line[2] == '>');
    }
    CHECK(lines >= 3);
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

TEST_CASE("when JOURNAL_STREAM is not stderr the daemon's lines are plain", "[integration]") {
  Daemon d({.env = {{"JOURNAL_STREAM", "1:1"}}});  // names some other file: not our stderr
  // The daemon says "listening" just after it wrote the port file the harness waits for.
  REQUIRE(wait_until([&] { return d.stderr_text().find("listening on") != std::string::npos; }));
  const std::string err = d.stderr_text();
  INFO("stderr:\n" << err);
  CHECK(("\n" + err).find("\nforkwatchd: listening on http://127.0.0.1:") != std::string::npos);
  CHECK(err.rfind('<', 0) == std::string::npos);
  CHECK(err.find("\n<") == std::string::npos);
}
