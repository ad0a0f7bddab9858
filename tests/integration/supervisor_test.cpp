// The supervisor core against real processes: restart policies, stop
// escalation, exec failures, exit storms and adopted orphans, each checked in
// the daemon's SQLite file and over its API.
#include <signal.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>

#include "daemon_harness.h"

using namespace fwtest;

namespace {

int64_t rows(const Daemon& d, const std::string& where) {
  return query_int(d.db_path(), "SELECT count(*) FROM wait_status WHERE " + where);
}

int64_t metric(const Daemon& d, const std::string& name) {
  auto r = d.request("GET", "/metrics", "", {}, false);
  REQUIRE(r.status == 200);
  auto pos = r.body.find("\n" + name + " ");
  REQUIRE(pos != std::string::npos);
  return std::stoll(r.body.substr(pos + name.size() + 2));
}

}  // namespace

TEST_CASE("a config with several programs starts every instance and stops them all on SIGTERM", "[integration]") {
  Daemon d({.config = R"({"programs": [
      {"name": "sleepers", "command": ["exit-with", "--sleep"], "instances": 3, "restart": "always"},
      {"name": "threads", "command": ["thread-spawner", "--threads", "4"]},
      {"name": "later", "command": ["exit-with"], "autostart": false}]})"});
  Json workers;
  REQUIRE(wait_until([&] {
    workers = d.get("/api/workers").json()["workers"];
    int running = 0;
    for (auto& w : workers) running += w["state"] == "running";
    return running == 4;
  }));
  REQUIRE(workers.size() == 5);
  CHECK(workers[0]["name"] == "sleepers:0");
  CHECK(workers[4]["name"] == "later");
  CHECK(workers[4]["state"] == "stopped");
  for (int i = 0; i < 4; ++i) CHECK(workers[i]["pid"].get<int>() > 0);
  // "running" means exec succeeded, not that the program has set up its
  // SIGTERM handling; the thread spawner says so once its threads exist.
  const int spawner_id = workers[3]["id"].get<int>();
  REQUIRE(wait_until([&] {
    return d.get("/api/workers/" + std::to_string(spawner_id) + "/logs").json()["lines"].dump().find("started") !=
           std::string::npos;
  }));

  int status = d.terminate();
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  // Every worker's exit was recorded before the daemon exited: 3 sleepers
  // killed by SIGTERM (default action), the thread spawner exiting cleanly.
  CHECK(rows(d, "wifsignaled = 1 AND wtermsig = 15") == 3);
  CHECK(rows(d, "worker_id = 4 AND wifexited = 1 AND wexitstatus = 0") == 1);
}

TEST_CASE("the restart policy stops at max_restarts and the worker becomes fatal", "[integration]") {
  Daemon d;
  auto w = d.start({{"program", "exit-with"}, {"args", {"--code", "3"}}, {"restart", "on-failure"},
                    {"restart_delay_ms", 1}, {"max_restarts", 3}});
  const int64_t id = w["id"];
  REQUIRE(d.wait_state(id, "fatal"));
  auto now = d.worker(id);
  CHECK(now["restarts"] == 3);
  CHECK(now["fatal_reason"].get<std::string>().find("max_restarts") != std::string::npos);
  REQUIRE(wait_until([&] { return rows(d, "worker_id = " + std::to_string(id)) == 4; }));
  CHECK(rows(d, "worker_id = " + std::to_string(id) + " AND wexitstatus = 3 AND adopted = 0") == 4);
  // on-failure does not restart a clean exit.
  auto ok = d.start({{"program", "exit-with"}, {"restart", "on-failure"}});
  CHECK(d.wait_state(ok["id"], "exited"));
  CHECK(d.worker(ok["id"])["restarts"] == 0);
}

TEST_CASE("a worker that ignores SIGTERM is killed after its stop timeout", "[integration]") {
  Daemon d;
  auto w = d.start({{"program", "exit-with"}, {"args", {"--ignore-term", "--stdout", "ready", "--sleep"}},
                    {"stop_timeout_ms", 300}});
  const int64_t id = w["id"];
  // exit-with prints after it has set SIGTERM to ignored: only then is the test fair.
  REQUIRE(wait_until([&] {
    return d.get("/api/workers/" + std::to_string(id) + "/logs").json()["lines"].dump().find("ready") !=
           std::string::npos;
  }));
  const auto t0 = std::chrono::steady_clock::now();
  auto r = d.post("/api/workers/" + std::to_string(id) + "/stop");
  REQUIRE(r.status == 200);
  REQUIRE(d.wait_state(id, "stopped"));
  const auto elapsed = std::chrono::steady_clock::now() - t0;
  CHECK(elapsed >= 300ms);
  auto last = d.worker(id)["last_exit"];
  CHECK(last["wifsignaled"] == true);
  CHECK(last["wtermsig"] == SIGKILL);
}

TEST_CASE("a missing binary is a fatal spawn error with the reason, never a crash loop", "[integration]") {
  // A script whose interpreter does not exist fails in execve itself, so the
  // reason travels through the close-on-exec status pipe.
  const std::string dir = make_temp_dir("fw-bad");
  const std::string script = dir + "/bad-interp";
  std::ofstream(script) << "#!/nonexistent/interpreter\n";
  chmod(script.c_str(), 0755);
  Daemon d({.config = R"({"programs": [
      {"name": "ghost", "command": ["no-such-program-anywhere"], "restart": "always"},
      {"name": "badexec", "command": [")" + script + R"("], "restart": "always", "restart_delay_ms": 1}]})"});
  REQUIRE(d.wait_state(1, "fatal"));
  REQUIRE(d.wait_state(2, "fatal"));
  CHECK(d.worker(1)["fatal_reason"] ==
        "command not found: no-such-program-anywhere (looked in " FORKWATCH_BIN_DIR " and PATH)");
  CHECK(d.worker(2)["fatal_reason"] == "execve(" + script + "): No such file or directory");
  CHECK(d.worker(2)["restarts"] == 0);
  // The failed child's own exit (127) is recorded, once.
  REQUIRE(wait_until([&] { return rows(d, "worker_id = 2") == 1; }));
  CHECK(rows(d, "worker_id = 2 AND wexitstatus = 127") == 1);
  std::filesystem::remove_all(dir);
}

TEST_CASE("an exit storm of 1000 children is recorded in full, with coalesced SIGCHLDs and no zombie", "[integration][slow]") {
  // 1000 instances that all exit at the same instant, 2 s from now.
  const auto at = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch()).count() + 2500;
  Daemon d({.config = R"({"programs": [{"name": "storm", "command": ["exit-with", "--at-ms", ")" +
                          std::to_string(at) + R"(", "--code", "7"], "instances": 1000, "restart": "no"}]})"});
  const int64_t wakeups_before = metric(d, "forkwatch_sigchld_wakeups_total");
  REQUIRE(wait_until([&] { return rows(d, "wexitstatus = 7") == 1000; }, 240s));
  CHECK(rows(d, "adopted = 0 AND wifexited = 1") == 1000);
  CHECK(query_int(d.db_path(), "SELECT count(DISTINCT worker_id) FROM wait_status") == 1000);
  const int64_t wakeups = metric(d, "forkwatch_sigchld_wakeups_total") - wakeups_before;
  INFO("SIGCHLD wake-ups for 1000 exits: " << wakeups);
  CHECK(wakeups < 1000);  // signals coalesced, and the reaper drained them all anyway
  CHECK(zombie_children(d.pid()).empty());
}

TEST_CASE("orphan-maker's 200 orphans are adopted, attributed to their worker, and reaped", "[integration]") {
  Daemon d;
  auto w = d.start({{"program", "orphan-maker"}, {"args", {"--children", "200", "--linger-ms", "300"}}});
  const int64_t id = w["id"];
  REQUIRE(wait_until([&] { return rows(d, "adopted = 1") == 200; }, 30s));
  CHECK(rows(d, "adopted = 1 AND worker_id = " + std::to_string(id) + " AND wifexited = 1") == 200);
  REQUIRE(d.wait_state(id, "exited"));
  CHECK(d.worker(id)["last_exit"]["wexitstatus"] == 0);
  CHECK(zombie_children(d.pid()).empty());
  CHECK(metric(d, "forkwatch_adopted_orphans_total") == 200);
}

TEST_CASE("stop reaches descendants that left the process group with setsid", "[integration]") {
  Daemon d;
  auto w = d.start({{"program", "orphan-maker"},
                    {"args", {"--children", "5", "--setsid", "--stay", "--linger-ms", "600000"}},
                    {"stop_timeout_ms", 500}});
  const int64_t id = w["id"];
  REQUIRE(d.wait_state(id, "running"));
  // The five setsid'd children were re-parented to the daemon once their middle
  // process exited: they are the session leaders among its children.
  const pid_t main_pid = d.worker(id)["pid"];
  std::vector<pid_t> orphans;
  REQUIRE(wait_until([&] {
    orphans.clear();
    for (pid_t c : children_of(d.pid()))
      if (c != main_pid && getsid(c) == c) orphans.push_back(c);
    return orphans.size() == 5;
  }));
  REQUIRE(d.post("/api/workers/" + std::to_string(id) + "/stop").status == 200);
  REQUIRE(d.wait_state(id, "stopped"));
  // Each orphan died by a signal and was reaped as adopted, attributed to the
  // worker, once. (Other adopted rows may appear: a sanitizer build's worker
  // runs LeakSanitizer at exit in a cloned helper process, which is orphaned
  // and killed when a slow exit ends in SIGKILL.)
  const std::string of_worker = " AND worker_id = " + std::to_string(id);
  for (pid_t orphan : orphans) {
    const std::string that = "pid = " + std::to_string(orphan);
    const bool reaped =
        wait_until([&] { return rows(d, that + " AND adopted = 1 AND wifsignaled = 1" + of_worker) == 1; }, 30s);
    INFO("orphan " << orphan << " rows: " << rows(d, that) << ", adopted: " << rows(d, that + " AND adopted = 1")
                   << ", of the worker: " << rows(d, that + of_worker));
    CHECK(reaped);
  }
  CHECK(rows(d, "adopted = 1 AND wifsignaled = 0") == 0);
  CHECK(query_int(d.db_path(), "SELECT count(*) FROM (SELECT pid FROM wait_status GROUP BY pid HAVING count(*) > 1)") == 0);
  CHECK(zombie_children(d.pid()).empty());
}

namespace {

// The "SigBlk:"-style hex mask line of /proc/PID/status.
std::string status_line(pid_t pid, const std::string& key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind(key + ":", 0) == 0) return line.substr(key.size() + 1);
  return "";
}

std::string trim(std::string s) {
  s.erase(0, s.find_first_not_of(" \t"));
  return s;
}

}  // namespace

TEST_CASE("a worker starts with only fds 0-2, an empty signal mask and default dispositions, leading its group",
          "[integration]") {
  // Twenty workers first, so the daemon holds sixty more fds that must not leak.
  // Started the way a shell starts a background job, with SIGQUIT and
  // SIGUSR2 ignored: ignored dispositions survive execve, so the daemon
  // inherits them, and its children must not.
  Daemon d({.config = R"({"programs": [{"name": "crowd", "command": ["exit-with", "--sleep"], "instances": 20},
                                       {"name": "quiet", "command": ["exit-with", "--sleep", "--stdout", "lost"],
                                        "output": "discard"},
                                       {"name": "probe", "command": ["exit-with", "--sleep"]}]})",
            .before_exec = [] {
              signal(SIGQUIT, SIG_IGN);
              signal(SIGUSR2, SIG_IGN);
            }});
  const uint64_t daemon_ignored = std::stoull(trim(status_line(d.pid(), "SigIgn")), nullptr, 16);
  CHECK((daemon_ignored & (1ull << (SIGQUIT - 1))) != 0);
  CHECK((daemon_ignored & (1ull << (SIGUSR2 - 1))) != 0);
  // The probe is spawned last, so a dup2 leaking into the shared table would
  // have left the daemon's fds 1 and 2 on the probe's pipes.
  REQUIRE(d.wait_state(22, "running"));
  const pid_t pid = d.worker(22)["pid"].get<pid_t>();
  const std::string fd_dir = "/proc/" + std::to_string(pid) + "/fd";
  std::map<int, std::string> fds;
  // The daemon hears "exec'd" at execve's point of no return; the kernel
  // closes the close-on-exec fds a moment later. Wait for that, not longer.
  const bool only_three = wait_until([&] {
    fds.clear();
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(fd_dir, ec))
      fds[std::stoi(e.path().filename().string())] = std::filesystem::read_symlink(e.path(), ec).string();
    return fds.size() == 3;
  }, 5s);
  INFO("fds: " << fds.size());
  CHECK(only_three);
  CHECK(fds[0] == "/dev/null");
  CHECK(fds[1].rfind("pipe:", 0) == 0);
  CHECK(fds[2].rfind("pipe:", 0) == 0);
  CHECK(fds[1] != fds[2]);  // stdout and stderr are captured apart
  CHECK(trim(status_line(pid, "SigBlk")) == "0000000000000000");
  CHECK(trim(status_line(pid, "SigIgn")) == "0000000000000000");
  CHECK(getpgid(pid) == pid);
  // The child shares the daemon's fd table until it unshares it: the dup2s
  // onto 1 and 2 must not have reached the daemon's own stdout and stderr.
  const std::string daemon_fd = "/proc/" + std::to_string(d.pid()) + "/fd/";
  CHECK(std::filesystem::read_symlink(daemon_fd + "1").string() != fds[1]);
  CHECK(std::filesystem::read_symlink(daemon_fd + "2").string() != fds[2]);

  // "output": "discard": all three on /dev/null, no pipes held by the daemon.
  REQUIRE(d.wait_state(21, "running"));
  const std::string quiet_fds = "/proc/" + std::to_string(d.worker(21)["pid"].get<pid_t>()) + "/fd/";
  for (const char* n : {"0", "1", "2"}) CHECK(std::filesystem::read_symlink(quiet_fds + n).string() == "/dev/null");
  CHECK(d.worker(21)["output"]["bytes"] == 0);
}

TEST_CASE("a cwd that does not exist is a fatal spawn error naming chdir", "[integration]") {
  Daemon d({.config = R"({"programs": [{"name": "lost", "command": ["exit-with"],
                                        "cwd": "/nonexistent/forkwatch-cwd", "restart": "always"}]})"});
  REQUIRE(d.wait_state(1, "fatal"));
  CHECK(d.worker(1)["fatal_reason"] == "chdir(/nonexistent/forkwatch-cwd): No such file or directory");
  CHECK(d.worker(1)["restarts"] == 0);
  REQUIRE(wait_until([&] { return rows(d, "worker_id = 1 AND wexitstatus = 127") == 1; }));
}

TEST_CASE("the daemon does not initialise OpenSSL: it never reads OPENSSL_CONF", "[integration]") {
  // Debian's cpp-httplib initialised OpenSSL as it was loaded, reading the
  // config file OPENSSL_CONF names (about 2 MiB of memory for TLS the daemon
  // did not serve). forkwatchd links neither now: OpenSSL is loaded
  // (forkwatch-tls.so) and initialised only when --tls-cert is given.
  const std::string dir = make_temp_dir("fw-openssl-");
  const std::string conf = dir + "/openssl.cnf";
  std::ofstream(conf) << "# watched: nobody should open this\n";
  const int watch = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  REQUIRE(watch >= 0);
  REQUIRE(inotify_add_watch(watch, conf.c_str(), IN_OPEN) >= 0);
  {
    // Up and serving: its libraries' initialisers ran before its main.
    Daemon d({.env = {{"OPENSSL_CONF", conf}}});
    CHECK(d.get("/api/health").status == 200);
  }
  alignas(inotify_event) char buf[4096];
  const ssize_t n = read(watch, buf, sizeof buf);
  const int read_errno = errno;
  CHECK(n < 0);  // no event: the file was never opened
  CHECK(read_errno == EAGAIN);
  // The watch works: opening the file is seen.
  std::ifstream(conf).get();
  CHECK(read(watch, buf, sizeof buf) > 0);
  close(watch);
  std::filesystem::remove_all(dir);
}
