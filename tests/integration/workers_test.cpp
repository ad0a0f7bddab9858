// The worker programs, run directly from FORKWATCH_BIN_DIR without a daemon:
// exit statuses, orphans under a subreaper, the three echo servers under load
// and on SIGTERM, the split client, and the IPC demos' answers.

#include <mqueue.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cinttypes>
#include <cstdio>
#include <fstream>
#include <map>
#include <random>
#include <set>

#include "workers_support.h"

using namespace workers_support;
using std::chrono::milliseconds;

namespace {

constexpr milliseconds kQuick{5000};

// A fresh directory under /tmp, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    char pattern[] = "/tmp/forkwatch-workers-XXXXXX";
    char* made = mkdtemp(pattern);
    path_ = made ? made : "/tmp";
  }
  ~TempDir() {
    if (DIR* dir = opendir(path_.c_str())) {
      while (dirent* e = readdir(dir)) {
        std::string name = e->d_name;
        if (name != "." && name != "..") unlink((path_ + "/" + name).c_str());
      }
      closedir(dir);
    }
    rmdir(path_.c_str());
  }
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

long long realtime_ms() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

// ---- exit-with ----

TEST_CASE("exit-with exits 0 at once without flags and with --code N otherwise", "[integration]") {
  int status = run_status({bin("exit-with")});
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  std::string out, err;
  status = run_status(
      {bin("exit-with"), "--code", "12", "--stdout", "to out", "--stderr", "to err"}, &out, &err);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 12);
  CHECK(out == "to out\n");
  CHECK(err == "to err\n");
  status = run_status({bin("exit-with"), "--code", "255"});
  CHECK(WEXITSTATUS(status) == 255);
}

TEST_CASE("exit-with --signal ends it by that signal, even one its parent ignored",
          "[integration]") {
  for (auto [name, sig] :
       {std::pair{"SIGTERM", SIGTERM}, {"KILL", SIGKILL}, {"usr1", SIGUSR1}, {"13", SIGPIPE}}) {
    INFO(name);
    SpawnOptions options;
    options.ignored_signals = {SIGPIPE, SIGTERM,
                               SIGUSR1};  // as a careless supervisor would leak them
    int status =
        run_status({bin("exit-with"), "--signal", name, "--code", "3"}, nullptr, nullptr, options);
    REQUIRE(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == sig);
    CHECK_FALSE(WCOREDUMP(status));
  }
}

TEST_CASE("exit-with --signal SIGSEGV and SIGABRT dump core where RLIMIT_CORE allows",
          "[integration]") {
  TempDir dir;
  rlimit core{};
  getrlimit(RLIMIT_CORE, &core);
  std::string pattern = slurp("/proc/sys/kernel/core_pattern");
  // Only a plain relative file pattern tells for sure: a pipe hands the core
  // to a helper, an absolute path may not exist.
  bool file_pattern = !pattern.empty() && pattern[0] != '|' && pattern[0] != '/';
  for (auto [name, sig] : {std::pair{"SIGSEGV", SIGSEGV}, {"abrt", SIGABRT}}) {
    INFO(name);
    SpawnOptions options;
    options.cwd = dir.path();
    int status = run_status({bin("exit-with"), "--signal", name}, nullptr, nullptr, options);
    REQUIRE(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == sig);
    if (core.rlim_max == 0) {
      CHECK_FALSE(WCOREDUMP(status));
    } else if (file_pattern) {
      CHECK(WCOREDUMP(status));
    }
  }
}

TEST_CASE("exit-with --after-ms waits that long and --at-ms exits many instances at one instant",
          "[integration]") {
  auto start = Clock::now();
  int status = run_status({bin("exit-with"), "--after-ms", "200", "--code", "4"});
  CHECK(WEXITSTATUS(status) == 4);
  CHECK(Clock::now() - start >= milliseconds(200));

  long long at = realtime_ms() + 600;
  std::vector<std::unique_ptr<Spawned>> many;
  for (int i = 0; i < 4; ++i)
    many.push_back(spawn({bin("exit-with"), "--at-ms", std::to_string(at), "--code", "7"}));
  // None may end before the instant...
  CHECK_FALSE(many[0]->wait_for(milliseconds(std::max(0LL, at - realtime_ms() - 100))).has_value());
  for (auto& p : many) {
    auto s = p->wait_for(kQuick);  // ...and all end soon after it
    REQUIRE(s.has_value());
    CHECK(WEXITSTATUS(*s) == 7);
  }
  CHECK(realtime_ms() >= at);
}

TEST_CASE("exit-with --sleep dies of SIGTERM, and --ignore-term needs SIGKILL", "[integration]") {
  auto sleeper = spawn({bin("exit-with"), "--sleep", "--stdout", "ready"});
  REQUIRE(read_until(sleeper->out, "ready\n", kQuick) == "ready\n");
  sleeper->signal(SIGTERM);
  auto status = sleeper->wait_for(kQuick);
  REQUIRE(status);
  CHECK(WIFSIGNALED(*status));
  CHECK(WTERMSIG(*status) == SIGTERM);

  auto stubborn = spawn({bin("exit-with"), "--sleep", "--ignore-term", "--stdout", "ready"});
  REQUIRE(read_until(stubborn->out, "ready\n", kQuick) == "ready\n");
  stubborn->signal(SIGTERM);
  CHECK_FALSE(stubborn->wait_for(milliseconds(300)).has_value());
  stubborn->signal(SIGKILL);
  status = stubborn->wait_for(kQuick);
  REQUIRE(status);
  CHECK(WTERMSIG(*status) == SIGKILL);
}

// ---- every program ----

TEST_CASE("every worker prints --help and refuses a bad argument with exit 2 and one line",
          "[integration]") {
  for (const char* program :
       {"exit-with", "orphan-maker", "thread-spawner", "echo-fork", "echo-epoll", "echo-threads",
        "echo-client", "sem-accumulate", "ipc-pipe", "ipc-mqueue"}) {
    INFO(program);
    std::string out, err;
    int status = run_status({bin(program), "--help"}, &out, &err);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(out.rfind("usage: " + std::string(program), 0) == 0);
    status = run_status({bin(program), "--no-such-flag"}, &out, &err);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 2);
    CHECK(std::count(err.begin(), err.end(), '\n') == 1);
    CHECK(err.find(program) == 0);
    CHECK(err.find("--no-such-flag") != std::string::npos);
  }
  std::string err;
  CHECK(WEXITSTATUS(run_status({bin("exit-with"), "--code", "256"}, nullptr, &err)) == 2);
  CHECK(WEXITSTATUS(run_status({bin("exit-with"), "--signal", "SIGNOPE"}, nullptr, &err)) == 2);
  CHECK(WEXITSTATUS(run_status({bin("orphan-maker")}, nullptr, &err)) == 2);
  CHECK(WEXITSTATUS(run_status({bin("echo-epoll"), "--port", "70000"}, nullptr, &err)) == 2);
  CHECK(WEXITSTATUS(run_status({bin("ipc-mqueue"), "--name", "no-slash"}, nullptr, &err)) == 2);
}

// ---- orphan-maker ----

// What a child subreaper saw: runs argv under a forked helper that is a
// subreaper, and reports the maker's status, each orphan's /proc/PID/stat
// while it lingers, and every orphan the helper reaped.
struct SubreaperReport {
  pid_t helper = 0;
  int maker_status = -1;
  std::map<pid_t, ProcStat> orphans;
  std::map<pid_t, int> reaped;
};

SubreaperReport run_under_subreaper(const std::vector<std::string>& argv, const TempDir& dir) {
  int report[2];
  REQUIRE(pipe2(report, O_CLOEXEC) == 0);
  pid_t helper = fork();
  REQUIRE(helper >= 0);
  if (helper == 0) {
    // No Catch macros here: this is a forked copy of the test; it reports in text.
    close(report[0]);
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    std::string text;
    SpawnOptions options;
    options.stdout_file = dir.file("orphans.txt");
    {
      auto maker = spawn(argv, options);
      auto status = maker ? maker->wait_for(milliseconds(10000)) : std::nullopt;
      text += "maker " + std::to_string(status.value_or(-1)) + "\n";
    }
    std::istringstream lines(slurp(options.stdout_file));
    std::string kind;
    pid_t pid = 0;
    while (lines >> kind >> pid) {
      if (auto st = proc_stat(pid)) {
        text += "stat " + std::to_string(pid) + " " + st->state + " " + std::to_string(st->ppid) +
                " " + std::to_string(st->pgrp) + " " + std::to_string(st->session) + "\n";
      }
    }
    auto deadline = Clock::now() + milliseconds(10000);
    for (;;) {
      int status = 0;
      pid_t got = waitpid(-1, &status, WNOHANG);
      if (got > 0) {
        text += "reaped " + std::to_string(got) + " " + std::to_string(status) + "\n";
        continue;
      }
      if (got < 0 || Clock::now() > deadline) break;  // ECHILD: all reaped
      timespec pause = {0, 2 * 1000 * 1000};
      nanosleep(&pause, nullptr);
    }
    (void)!write(report[1], text.data(), text.size());
    _exit(0);
  }
  close(report[1]);
  std::string text = read_all(report[0], milliseconds(25000));
  close(report[0]);
  int helper_status = 0;
  REQUIRE(waitpid(helper, &helper_status, 0) == helper);

  SubreaperReport result;
  result.helper = helper;
  std::istringstream lines(text);
  std::string kind;
  while (lines >> kind) {
    if (kind == "maker") {
      lines >> result.maker_status;
    } else if (kind == "stat") {
      pid_t pid = 0;
      ProcStat st;
      lines >> pid >> st.state >> st.ppid >> st.pgrp >> st.session;
      result.orphans[pid] = st;
    } else if (kind == "reaped") {
      pid_t pid = 0;
      int status = 0;
      lines >> pid >> status;
      result.reaped[pid] = status;
    }
  }
  return result;
}

TEST_CASE("orphan-maker's 20 orphans are re-parented to the subreaper, which reaps them all",
          "[integration]") {
  TempDir dir;
  auto report =
      run_under_subreaper({bin("orphan-maker"), "--children", "20", "--linger-ms", "1500"}, dir);
  REQUIRE(WIFEXITED(report.maker_status));
  CHECK(WEXITSTATUS(report.maker_status) == 0);
  REQUIRE(report.orphans.size() == 20);
  for (const auto& [pid, st] : report.orphans) {
    INFO("orphan " << pid);
    CHECK(st.ppid == report.helper);
    CHECK(st.state != 'Z');  // still lingering when the maker had finished
    REQUIRE(report.reaped.count(pid) == 1);
    CHECK(WIFEXITED(report.reaped[pid]));
    CHECK(WEXITSTATUS(report.reaped[pid]) == 0);
  }
  CHECK(report.reaped.size() == 20);  // nothing else was left for the subreaper
}

TEST_CASE("orphan-maker --setsid puts each orphan in its own session, out of the group",
          "[integration]") {
  TempDir dir;
  auto report = run_under_subreaper(
      {bin("orphan-maker"), "--children", "5", "--linger-ms", "800", "--setsid"}, dir);
  CHECK(WEXITSTATUS(report.maker_status) == 0);
  REQUIRE(report.orphans.size() == 5);
  for (const auto& [pid, st] : report.orphans) {
    CHECK(st.session == pid);
    CHECK(st.pgrp == pid);
    CHECK(st.ppid == report.helper);
    CHECK(report.reaped.count(pid) == 1);
  }
}

TEST_CASE("orphan-maker --zombies leaves unreaped children until SIGTERM, then exits 0",
          "[integration]") {
  auto maker = spawn({bin("orphan-maker"), "--zombies", "5"});
  std::string text = read_until(maker->out, "\n", kQuick);
  REQUIRE(eventually(
      [&] {
        text += read_until(maker->out, "\n", milliseconds(50));
        return std::count(text.begin(), text.end(), '\n') == 5;
      },
      kQuick));
  std::istringstream lines(text);
  std::string kind;
  pid_t pid = 0;
  int zombies = 0;
  while (lines >> kind >> pid) {
    CHECK(kind == "zombie");
    CHECK(eventually(
        [&] {
          auto st = proc_stat(pid);
          return st && st->state == 'Z' && st->ppid == maker->pid();
        },
        kQuick));
    ++zombies;
  }
  CHECK(zombies == 5);
  maker->signal(SIGTERM);
  auto status = maker->wait_for(kQuick);
  REQUIRE(status);
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 0);
}

TEST_CASE("orphan-maker --stay stays alive after making orphans until SIGTERM", "[integration]") {
  auto maker = spawn({bin("orphan-maker"), "--children", "2", "--linger-ms", "50", "--stay"});
  std::string text = read_until(maker->out, "orphan", kQuick);
  CHECK(text.find("orphan") != std::string::npos);
  CHECK_FALSE(maker->wait_for(milliseconds(200)).has_value());
  maker->signal(SIGTERM);
  auto status = maker->wait_for(kQuick);
  REQUIRE(status);
  CHECK(WEXITSTATUS(*status) == 0);
}

// ---- thread-spawner ----

TEST_CASE("thread-spawner names its threads, burns CPU only in busy ones, prints the counter",
          "[integration]") {
  auto p = spawn({bin("thread-spawner"), "--threads", "5", "--busy-threads", "1"});
  REQUIRE(read_until(p->out, "\n", kQuick).find("started 5 threads (1 busy)") == 0);
  std::set<std::string> names;
  for (const auto& [tid, name] : threads_of(p->pid())) names.insert(name);
  for (int i = 1; i <= 5; ++i) CHECK(names.count("spawn-" + std::to_string(i)) == 1);

  auto ticks = [&](const std::string& want) -> unsigned long {
    for (const auto& [tid, name] : threads_of(p->pid())) {
      if (name == want) {
        auto st = proc_stat(p->pid(), tid);
        return st ? st->utime + st->stime : 0;
      }
    }
    return 0;
  };
  CHECK(eventually([&] { return ticks("spawn-1") >= 20; }, milliseconds(10000)));  // 0.2 s of CPU
  CHECK(ticks("spawn-2") < ticks("spawn-1") / 2);

  p->signal(SIGTERM);
  std::string out = read_all(p->out, kQuick);
  auto status = p->wait_for(kQuick);
  REQUIRE(status);
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 0);
  unsigned long long counter = 0;
  REQUIRE(std::sscanf(out.c_str(), "counter %llu", &counter) == 1);
  CHECK(counter > 0);
}

// ---- echo servers ----

// Byte i of message `msg` on connection `id`: differs per connection, message
// and offset, so lost, reordered or crossed bytes all show.
char pattern_byte(size_t id, size_t msg, size_t i) {
  return static_cast<char>((id * 7919 + msg * 131 + i * 13 + (i >> 8)) & 0xff);
}

struct EchoConnection {
  int fd = -1;
  size_t id = 0;
  std::vector<size_t> sizes;  // one per message
  size_t msg = 0;
  size_t sent = 0, received = 0;
};

void set_nonblocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

// Drives `clients` connections at once from one poll loop, so every client
// sends and receives at the same time; returns "" on success, else what broke.
std::string drive_echo_clients(int port, size_t clients, size_t messages, milliseconds timeout) {
  std::mt19937 rng(42);
  std::vector<EchoConnection> conns(clients);
  for (size_t c = 0; c < clients; ++c) {
    conns[c].id = c;
    conns[c].fd = connect_local(port);
    if (conns[c].fd < 0) return "connect #" + std::to_string(c) + ": " + std::strerror(errno);
    set_nonblocking(conns[c].fd);
    for (size_t m = 0; m < messages; ++m) {
      size_t size =
          m == c % messages ? 65536 : (size_t{1} << (rng() % 17)) + rng() % 4096;  // 1 B .. 64 KiB
      conns[c].sizes.push_back(std::min<size_t>(size, 65536));
    }
  }
  // Two clients that vanish mid-message: one closes, one resets (RST).
  int rude_close = connect_local(port);
  int rude_reset = connect_local(port);
  bool rude_done = false;
  size_t completed = 0;

  std::vector<char> buf(65536);
  auto deadline = Clock::now() + timeout;
  size_t open = clients;
  while (open > 0) {
    if (Clock::now() > deadline)
      return "timed out with " + std::to_string(open) + " clients unfinished";
    if (!rude_done && completed >= clients) {
      std::string half(30000, 'x');
      (void)!send(rude_close, half.data(), half.size(), MSG_NOSIGNAL);
      (void)!send(rude_reset, half.data(), 1000, MSG_NOSIGNAL);
      linger reset{1, 0};
      setsockopt(rude_reset, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
      close(rude_close);
      close(rude_reset);
      rude_done = true;
    }
    std::vector<pollfd> fds;
    std::vector<size_t> which;
    for (auto& c : conns) {
      if (c.fd < 0) continue;
      short events = POLLIN;
      if (c.sent < c.sizes[c.msg]) events |= POLLOUT;
      fds.push_back({c.fd, events, 0});
      which.push_back(c.id);
    }
    if (poll(fds.data(), fds.size(), 100) < 0 && errno != EINTR)
      return std::string("poll: ") + std::strerror(errno);
    for (size_t k = 0; k < fds.size(); ++k) {
      EchoConnection& c = conns[which[k]];
      size_t size = c.sizes[c.msg];
      if ((fds[k].revents & POLLOUT) && c.sent < size) {
        size_t len = std::min(size - c.sent, buf.size());
        for (size_t i = 0; i < len; ++i) buf[i] = pattern_byte(c.id, c.msg, c.sent + i);
        ssize_t n = send(c.fd, buf.data(), len, MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN) return "send: " + std::string(std::strerror(errno));
        if (n > 0) c.sent += static_cast<size_t>(n);
      }
      if (fds[k].revents & (POLLIN | POLLHUP | POLLERR)) {
        ssize_t n = recv(c.fd, buf.data(), buf.size(), 0);
        if (n < 0 && errno == EAGAIN) continue;
        if (n <= 0)
          return "client " + std::to_string(c.id) + " lost its connection at message " +
                 std::to_string(c.msg);
        if (c.received + static_cast<size_t>(n) > c.sent) return "more echoed than sent";
        for (ssize_t i = 0; i < n; ++i) {
          if (buf[static_cast<size_t>(i)] !=
              pattern_byte(c.id, c.msg, c.received + static_cast<size_t>(i))) {
            return "client " + std::to_string(c.id) + " got a wrong byte in message " +
                   std::to_string(c.msg);
          }
        }
        c.received += static_cast<size_t>(n);
        if (c.received == size) {
          ++completed;
          c.sent = c.received = 0;
          if (++c.msg == c.sizes.size()) {
            close(c.fd);
            c.fd = -1;
            --open;
          }
        }
      }
    }
  }
  if (!rude_done) {
    close(rude_close);
    close(rude_reset);
  }
  return "";
}

std::unique_ptr<Spawned> start_server(const std::string& program, int* port,
                                      std::vector<std::string> extra = {}) {
  std::vector<std::string> argv{bin(program), "--port", "0"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  auto server = spawn(argv);
  REQUIRE(server);
  *port = read_port(*server);
  REQUIRE(*port > 0);
  return server;
}

void check_serves_many_clients(const std::string& program) {
  int port = 0;
  auto server = start_server(program, &port);
  CHECK(drive_echo_clients(port, 64, 50, milliseconds(20000)) == "");
  // The server is still healthy after all that.
  CHECK(drive_echo_clients(port, 2, 3, kQuick) == "");
  server->signal(SIGTERM);
  auto status = server->wait_for(kQuick);
  REQUIRE(status);
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 0);
}

void check_sigterm_with_clients(const std::string& program) {
  int port = 0;
  auto server = start_server(program, &port);
  std::vector<int> clients;
  for (int i = 0; i < 8; ++i) {
    int fd = connect_local(port);
    REQUIRE(fd >= 0);
    REQUIRE(send(fd, "hello", 5, MSG_NOSIGNAL) == 5);
    CHECK(read_until(fd, "hello", kQuick) == "hello");  // it is being served
    clients.push_back(fd);
  }
  server->signal(SIGTERM);
  auto status = server->wait_for(kQuick);
  REQUIRE(status);
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 0);
  for (int fd : clients) {
    pollfd p{fd, POLLIN, 0};
    CHECK(poll(&p, 1, 5000) == 1);  // EOF or reset: nobody keeps serving it
    char c;
    CHECK(recv(fd, &c, 1, 0) <= 0);
    close(fd);
  }
}

void check_split_client(const std::string& program) {
  TempDir dir;
  std::string data(4 << 20, '\0');  // far more than both socket buffers hold
  std::mt19937 rng(7);
  for (auto& ch : data) ch = static_cast<char>(rng());
  std::ofstream(dir.file("in"), std::ios::binary) << data;

  int port = 0;
  auto server = start_server(program, &port);
  SpawnOptions options;
  options.stdin_file = dir.file("in");
  options.stdout_file = dir.file("out");
  auto client = spawn({bin("echo-client"), "--port", std::to_string(port)}, options);
  auto status = client->wait_for(milliseconds(20000));
  REQUIRE(status);
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 0);
  CHECK(slurp(dir.file("out")) == data);
  server->signal(SIGTERM);
  CHECK(server->wait_for(kQuick).has_value());
}

TEST_CASE("echo-fork echoes 64 clients x 50 messages in order, unhurt by clients that vanish",
          "[integration]") {
  check_serves_many_clients("echo-fork");
}
TEST_CASE("echo-epoll echoes 64 clients x 50 messages in order, unhurt by clients that vanish",
          "[integration]") {
  check_serves_many_clients("echo-epoll");
}
TEST_CASE("echo-threads echoes 64 clients x 50 messages in order, unhurt by clients that vanish",
          "[integration]") {
  check_serves_many_clients("echo-threads");
}

TEST_CASE("echo-fork exits 0 on SIGTERM with clients connected and ends them", "[integration]") {
  check_sigterm_with_clients("echo-fork");
}
TEST_CASE("echo-epoll exits 0 on SIGTERM with clients connected and ends them", "[integration]") {
  check_sigterm_with_clients("echo-epoll");
}
TEST_CASE("echo-threads exits 0 on SIGTERM with clients connected and ends them", "[integration]") {
  check_sigterm_with_clients("echo-threads");
}

TEST_CASE("echo-client's split I/O gets 4 MiB back intact from echo-fork", "[integration]") {
  check_split_client("echo-fork");
}
TEST_CASE("echo-client's split I/O gets 4 MiB back intact from echo-epoll", "[integration]") {
  check_split_client("echo-epoll");
}
TEST_CASE("echo-client's split I/O gets 4 MiB back intact from echo-threads", "[integration]") {
  check_split_client("echo-threads");
}

TEST_CASE("echo-fork leaves no zombie after 50 clients leave at once", "[integration]") {
  int port = 0;
  auto server = start_server("echo-fork", &port);
  std::vector<int> clients;
  for (int i = 0; i < 50; ++i) {
    int fd = connect_local(port);
    REQUIRE(fd >= 0);
    REQUIRE(send(fd, "x", 1, MSG_NOSIGNAL) == 1);
    REQUIRE(read_until(fd, "x", kQuick) == "x");
    clients.push_back(fd);
  }
  CHECK(children_of(server->pid()).size() == 50);  // one process per client
  for (int fd : clients) close(fd);                // 50 exits whose SIGCHLDs coalesce
  CHECK(eventually([&] { return children_of(server->pid()).empty(); }, kQuick));
  server->signal(SIGTERM);
  auto status = server->wait_for(kQuick);
  REQUIRE(status);
  CHECK(WEXITSTATUS(*status) == 0);
}

TEST_CASE("echo-threads closes clients beyond --max-clients and keeps serving the others",
          "[integration]") {
  int port = 0;
  auto server = start_server("echo-threads", &port, {"--max-clients", "2"});
  int a = connect_local(port), b = connect_local(port);
  REQUIRE(send(a, "a", 1, MSG_NOSIGNAL) == 1);
  REQUIRE(read_until(a, "a", kQuick) == "a");
  REQUIRE(send(b, "b", 1, MSG_NOSIGNAL) == 1);
  REQUIRE(read_until(b, "b", kQuick) == "b");
  int c = connect_local(port);
  REQUIRE(c >= 0);
  CHECK(read_all(c, kQuick) == "");  // closed at once
  REQUIRE(send(a, "again", 5, MSG_NOSIGNAL) == 5);
  CHECK(read_until(a, "again", kQuick) == "again");
  for (int fd : {a, b, c}) close(fd);
  CHECK(read_until(server->err, "refusing", kQuick).find("refusing") !=
        std::string::npos);  // it said why
}

// ---- IPC demos ----

TEST_CASE("sem-accumulate adds every number from stdin exactly once", "[integration]") {
  TempDir dir;
  long long expected = 0;
  {
    std::ofstream in(dir.file("numbers"));
    for (long long i = 1; i <= 20000; ++i) {
      long long v = i % 3 == 0 ? -i : i * 1000;
      expected += v;
      in << v << (i % 10 ? ' ' : '\n');
    }
  }
  SpawnOptions options;
  options.stdin_file = dir.file("numbers");
  std::string out;
  int status = run_status({bin("sem-accumulate")}, &out, nullptr, options);
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(out == "sum " + std::to_string(expected) + " count 20000\n");

  status = run_status({bin("sem-accumulate"), "--numbers", "200000"}, &out);
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(out == "sum 20000100000 count 200000\n");

  std::ofstream(dir.file("bad")) << "1 2 three 4";
  options.stdin_file = dir.file("bad");
  std::string err;
  status = run_status({bin("sem-accumulate")}, &out, &err, options);
  CHECK(WEXITSTATUS(status) == 1);
  CHECK(err.find("not an integer") != std::string::npos);
}

TEST_CASE("sem-accumulate prints the sum so far and exits 0 on SIGTERM", "[integration]") {
  auto p = spawn({bin("sem-accumulate"), "--numbers", "1000000000", "--delay-ms", "1"});
  REQUIRE(eventually([&] { return threads_of(p->pid()).size() == 3; },
                     kQuick));  // signals blocked by now
  p->signal(SIGTERM);
  std::string out = read_all(p->out, kQuick);
  auto status = p->wait_for(kQuick);
  REQUIRE(status);
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 0);
  CHECK(out.find("(stopped)") != std::string::npos);
}

TEST_CASE("ipc-pipe gets every square back and reports how its child ended", "[integration]") {
  std::string out;
  int status = run_status({bin("ipc-pipe"), "--count", "1000"}, &out);
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(out.find("sum of squares 333833500 (1000 numbers)\n") == 0);
  CHECK(out.find("exited with status 0") != std::string::npos);

  status = run_status({bin("ipc-pipe"), "--count", "3", "--child-exit", "7"}, &out);
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(out.find("sum of squares 14 (3 numbers)\n") == 0);
  CHECK(out.find("exited with status 7") != std::string::npos);
}

TEST_CASE("ipc-pipe stops on SIGTERM, reaps its child and exits 0", "[integration]") {
  auto p = spawn({bin("ipc-pipe"), "--count", "100000", "--delay-ms", "1"});
  REQUIRE(eventually([&] { return children_of(p->pid()).size() == 1; }, kQuick));
  p->signal(SIGTERM);
  std::string out = read_all(p->out, kQuick);
  auto status = p->wait_for(kQuick);
  REQUIRE(status);
  CHECK(WEXITSTATUS(*status) == 0);
  CHECK(out.find("(stopped)") != std::string::npos);
  CHECK(out.find("exited with status 0") != std::string::npos);
}

bool queue_exists(const std::string& name) {
  mqd_t q = mq_open(name.c_str(), O_RDONLY);
  if (q == static_cast<mqd_t>(-1)) return errno != ENOENT;
  mq_close(q);
  return true;
}

TEST_CASE("ipc-mqueue delivers every number once and leaves no queue behind", "[integration]") {
  std::string name = "/forkwatch-test-" + std::to_string(getpid()) + "-a";
  std::string out;
  int status = run_status({bin("ipc-mqueue"), "--count", "5000", "--name", name}, &out);
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(out.find("consumer received 5000 messages, sum 12502500\n") != std::string::npos);
  CHECK(out.find("exited with status 0") != std::string::npos);
  CHECK_FALSE(queue_exists(name));
  CHECK(access(("/dev/mqueue" + name).c_str(), F_OK) != 0);
}

TEST_CASE("ipc-mqueue unlinks its queue after SIGTERM too", "[integration]") {
  std::string name = "/forkwatch-test-" + std::to_string(getpid()) + "-b";
  auto p = spawn({bin("ipc-mqueue"), "--count", "100000", "--delay-ms", "1", "--name", name});
  REQUIRE(read_until(p->out, "\n", kQuick) == "queue " + name + "\n");
  CHECK(queue_exists(name));  // it really was there
  p->signal(SIGTERM);
  std::string out = read_all(p->out, kQuick);
  auto status = p->wait_for(kQuick);
  REQUIRE(status);
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 0);
  CHECK(out.find("(stopped)") != std::string::npos);
  CHECK_FALSE(queue_exists(name));
}

}  // namespace
