// Readiness and order with real processes: sd_notify sockets, start_timeout,
// the watchdog, depends_on (waiting, started when met, stopped in reverse),
// a cycle refused at load, and a real redis speaking sd_notify.
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "daemon_harness.h"
#include "workers_support.h"

using namespace fwtest;

namespace {

Json worker_named(const Daemon& d, const std::string& name) {
  const Json all = d.get("/api/workers").json();
  for (const auto& w : all["workers"])
    if (w["name"] == name) return w;
  FAIL("no worker named " << name << " in " << d.get("/api/workers").body);
  return {};
}
int64_t id_named(const Daemon& d, const std::string& name) { return worker_named(d, name)["id"].get<int64_t>(); }

// CLOCK_REALTIME of worker `id`'s first stored event of `kind` (with state
// `state`, when given); REQUIREd to come.
int64_t event_ts(const Daemon& d, int64_t id, const std::string& kind, const std::string& state = "") {
  int64_t ts = -1;
  wait_until([&] {
    ts = query_int(d.db_path(), "SELECT ts_ns FROM events WHERE worker_id = " + std::to_string(id) +
                                    " AND kind = '" + kind + "'" + (state.empty() ? "" : " AND state = '" + state + "'") +
                                    " ORDER BY id LIMIT 1");
    return ts > 0;
  });
  INFO("worker " << id << ": event " << kind << " " << state);
  REQUIRE(ts > 0);
  return ts;
}

// The cause of worker `id`'s newest main-process exit in the history.
std::string last_cause(const Daemon& d, int64_t id) {
  std::string cause;
  wait_until([&] {
    const Json history = d.get("/api/history?worker=" + std::to_string(id)).json();
    for (const auto& r : history["rows"])
      if (!r["adopted"].get<bool>() && (r["wifexited"].get<bool>() || r["wifsignaled"].get<bool>())) {
        cause = r["cause"];
        return true;
      }
    return false;
  });
  return cause;
}

// When worker `id`'s newest main-process exit was recorded (CLOCK_REALTIME).
int64_t exit_ts(const std::string& db_path, int64_t id) {
  return query_int(db_path, "SELECT ts_ns FROM wait_status WHERE worker_id = " + std::to_string(id) +
                                " AND adopted = 0 ORDER BY id DESC LIMIT 1");
}

// When process `pid`'s exit as a worker's main process was recorded,
// waiting for the store: it commits on its own thread, after the API has
// shown the worker's new state.
int64_t exit_ts_of_pid(const std::string& db_path, pid_t pid) {
  int64_t ts = 0;
  wait_until([&] {
    ts = query_int(db_path, "SELECT ts_ns FROM wait_status WHERE pid = " + std::to_string(pid) +
                                " AND adopted = 0 AND (wifexited = 1 OR wifsignaled = 1) ORDER BY id DESC LIMIT 1");
    return ts > 0;
  });
  INFO("pid " << pid);
  REQUIRE(ts > 0);
  return ts;
}

// Now on CLOCK_REALTIME, as stored events' ts_ns are.
int64_t realtime_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A shell command that waits until `path` exists: a test's trigger, so that
// what it checks "before" cannot run out while the test is slow.
std::string wait_file(const std::string& path) { return "while [ ! -e " + path + " ]; do sleep 0.01; done"; }

std::string config(const std::string& programs) { return R"({"programs": [)" + programs + "]}"; }

uint64_t metric(const Daemon& d, const std::string& name) {
  std::istringstream in(d.get("/metrics").body);
  for (std::string line; std::getline(in, line);)
    if (line.rfind(name + " ", 0) == 0) return std::stoull(line.substr(name.size() + 1));
  return 0;
}

// The fds a process holds now, from /proc/PID/fd.
std::set<int> open_fds(pid_t pid) {
  std::set<int> fds;
  for (const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd"))
    fds.insert(std::stoi(e.path().filename().string()));
  return fds;
}

// The start of a python3 notify worker: it forks a child that sleeps,
// writes "FIRST CHILD" (its own pid and the child's) to argv[1] at once,
// and leaves its NOTIFY_SOCKET address in `addr`.
const char* const kForkerStart = R"(import os, signal, socket, sys, time
child = os.fork()
if child == 0:
    os.execv("/bin/sleep", ["sleep", "100"])
with open(sys.argv[1] + ".new", "w") as f:
    f.write("%d %d" % (os.getpid(), child))
os.rename(sys.argv[1] + ".new", sys.argv[1])
addr = os.environ["NOTIFY_SOCKET"]
addr = "\0" + addr[1:] if addr.startswith("@") else addr
# The worker under test waits for the test's trigger file by polling: that is
# the program's own rhythm, not the test's wait (the test waits for events
# with deadlines). A blocking FIFO read instead would hang the test's writer
# whenever this program had already died.
def wait_for(path):
    while not os.path.exists(path):
        time.sleep(0.01)
)";

}  // namespace

TEST_CASE("readiness: a notify worker is starting until READY=1, and its dependent starts only after it", "[integration]") {
  const std::string go = make_temp_dir("fw-notify-go") + "/go";
  Daemon d({.config = config(R"(
      {"name": "db", "command": ["notify-ready", "--status", "warming up", "--after-file", ")" + go + R"("],
       "ready": {"notify": true}},
      {"name": "api", "command": ["exit-with", "--sleep"], "depends_on": ["db"]})")});
  const int64_t db = id_named(d, "db"), api = id_named(d, "api");
  // While db warms up: db starting (not ready), api waiting and saying why.
  REQUIRE(wait_until([&] { return d.worker(db)["status_text"] == "warming up"; }));
  Json dbw = d.worker(db), apiw = d.worker(api);
  CHECK(dbw["state"] == "starting");
  CHECK(dbw["ready"] == false);
  CHECK(apiw["state"] == "waiting");
  CHECK(apiw["waiting_for"] == "waiting for db to be ready");
  CHECK(apiw["pid"].is_null());
  const int64_t go_ns = realtime_ns();
  std::ofstream(go).close();  // db sends READY=1 now
  REQUIRE(d.wait_state(api, "running"));
  dbw = d.worker(db);
  CHECK(dbw["state"] == "running");
  CHECK(dbw["ready"] == true);
  CHECK(dbw["ready_at_ns"].get<int64_t>() > 0);
  CHECK(d.worker(api)["waiting_for"].is_null());
  // From the stored events: db became running (READY=1) before api was exec'd.
  const int64_t db_ready = event_ts(d, db, "state", "running");
  const int64_t api_spawn = event_ts(d, api, "spawn");
  const int64_t db_spawn = event_ts(d, db, "spawn");
  REQUIRE(db_ready > 0);
  REQUIRE(api_spawn > 0);
  CHECK(db_ready > db_spawn);
  CHECK(db_ready >= go_ns);  // not before it said so
  CHECK(api_spawn >= db_ready);
}

TEST_CASE("readiness: not ready within start_timeout_ms is a failed start with cause start_timeout", "[integration]") {
  Daemon d({.config = config(R"(
      {"name": "mute", "command": ["notify-ready", "--no-ready"], "ready": {"notify": true},
       "start_timeout_ms": 300, "restart": "no"})")});
  const int64_t id = id_named(d, "mute");
  REQUIRE(d.wait_state(id, "exited"));
  CHECK(last_cause(d, id) == "start_timeout");
  CHECK(d.worker(id)["ready"] == false);
}

TEST_CASE("readiness: a notify worker that stops its WATCHDOG=1 keep-alives is restarted with cause watchdog", "[integration]") {
  Daemon d({.config = config(R"(
      {"name": "dog", "command": ["notify-ready"], "ready": {"notify": true}, "watchdog_ms": 300,
       "restart": "on-failure", "restart_delay_ms": 0},
      {"name": "fed", "command": ["notify-ready", "--watchdog-ms", "50"], "ready": {"notify": true},
       "watchdog_ms": 300})")});
  const int64_t dog = id_named(d, "dog"), fed = id_named(d, "fed");
  REQUIRE(wait_until([&] { return d.worker(dog)["restarts"].get<int>() >= 1; }));
  CHECK(last_cause(d, dog) == "watchdog");
  // The one that keeps sending WATCHDOG=1 is left alone.
  CHECK(d.worker(fed)["restarts"] == 0);
  CHECK(d.worker(fed)["state"] == "running");
}

TEST_CASE("readiness: a datagram from outside the worker's tree is dropped and counted", "[integration]") {
  Daemon d({.config = config(R"(
      {"name": "quiet", "command": ["notify-ready", "--no-ready"], "ready": {"notify": true}, "start_timeout_ms": 0})")});
  const int64_t id = id_named(d, "quiet");
  REQUIRE(wait_until([&] { return d.worker(id)["pid"].is_number(); }));
  const pid_t pid = d.worker(id)["pid"];
  // Its NOTIFY_SOCKET, read from its environment; this test process is no part of its tree.
  std::string address;
  REQUIRE(wait_until([&] {
    std::ifstream in("/proc/" + std::to_string(pid) + "/environ");
    std::string env((std::istreambuf_iterator<char>(in)), {});
    const size_t at = env.find("NOTIFY_SOCKET=");
    if (at == std::string::npos) return false;
    address = env.substr(at + 14, env.find('\0', at) - at - 14);
    return true;
  }));
  REQUIRE(address[0] == '@');
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  memcpy(addr.sun_path, address.data(), address.size());
  addr.sun_path[0] = '\0';
  const socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address.size());
  REQUIRE(sendto(fd, "READY=1", 7, 0, reinterpret_cast<sockaddr*>(&addr), len) == 7);
  close(fd);
  REQUIRE(wait_until([&] { return metric(d, "forkwatch_notify_dropped_total") >= 1; }));
  CHECK(d.worker(id)["state"] == "starting");
  CHECK(d.worker(id)["ready"] == false);
}

TEST_CASE("order: completed waits for a one-shot to exit 0", "[integration]") {
  const std::string go = make_temp_dir("fw-migrate-go") + "/go";
  Daemon d({.config = config(R"(
      {"name": "migrate", "command": ["/bin/sh", "-c", ")" + wait_file(go) + R"("], "restart": "no"},
      {"name": "app", "command": ["exit-with", "--sleep"],
       "depends_on": [{"program": "migrate", "condition": "completed"}]})")});
  const int64_t migrate = id_named(d, "migrate"), app = id_named(d, "app");
  REQUIRE(wait_until([&] { return d.worker(app)["state"] == "waiting"; }));
  CHECK(d.worker(app)["waiting_for"] == "waiting for migrate to complete");
  std::ofstream(go).close();  // migrate exits 0 now
  REQUIRE(d.wait_state(app, "running"));
  CHECK(d.worker(migrate)["state"] == "exited");
  CHECK(event_ts(d, app, "spawn") >= event_ts(d, migrate, "exit"));
}

TEST_CASE("order: SIGTERM stops a dependent, and records its exit, before its dependency gets the stop signal", "[integration]") {
  // api ignores SIGTERM and dies by SIGKILL after 300 ms; db ends at once on
  // SIGTERM. Stopped together, db would end first.
  Daemon d({.config = config(R"(
      {"name": "db", "command": ["exit-with", "--sleep"]},
      {"name": "api", "command": ["exit-with", "--ignore-term", "--sleep"], "stop_timeout_ms": 300,
       "depends_on": [{"program": "db", "condition": "started"}]})")});
  const int64_t db = id_named(d, "db"), api = id_named(d, "api");
  REQUIRE(d.wait_state(api, "running"));
  REQUIRE(wait_until([&] { return ignores_term(d.worker(api)["pid"].get<int>()); }));
  const std::string db_path = d.db_path();
  d.terminate();
  const int64_t api_exit = exit_ts(db_path, api), db_exit = exit_ts(db_path, db);
  REQUIRE(api_exit > 0);
  REQUIRE(db_exit > 0);
  CHECK(db_exit > api_exit);
}

TEST_CASE("order: a restart, stop or removal of a dependency over the API stops its part_of dependent first, which comes back with it",
          "[integration]") {
  // api ignores SIGTERM and dies by SIGKILL after 300 ms; db ends at once on
  // SIGTERM. Stopped together, db would end first.
  Daemon d({.config = config(R"(
      {"name": "db", "command": ["exit-with", "--sleep"]},
      {"name": "api", "command": ["exit-with", "--ignore-term", "--sleep"], "stop_timeout_ms": 300,
       "depends_on": [{"program": "db", "condition": "started", "part_of": true}]})")});
  const int64_t db = id_named(d, "db"), api = id_named(d, "api");
  auto settled = [&](pid_t old_db, pid_t old_api) {
    Json a, b;
    const bool ok = wait_until([&] {
      a = d.worker(api);
      b = d.worker(db);
      return a["state"] == "running" && b["state"] == "running" && a["pid"] != old_api && b["pid"] != old_db &&
             ignores_term(a["pid"].get<int>());
    });
    INFO("api " << a.dump() << "\ndb " << b.dump());
    REQUIRE(ok);
    return std::pair<pid_t, pid_t>{b["pid"].get<pid_t>(), a["pid"].get<pid_t>()};
  };
  auto [db_pid, api_pid] = settled(0, 0);

  // restart: api goes first, then db; both come back, api after db.
  REQUIRE(d.post("/api/workers/" + std::to_string(db) + "/restart", "").status == 200);
  auto [db_new, api_new] = settled(db_pid, api_pid);
  const int64_t api_exit = exit_ts_of_pid(d.db_path(), api_pid), db_exit = exit_ts_of_pid(d.db_path(), db_pid);
  CHECK(db_exit > api_exit);
  CHECK(d.worker(api)["started_at_ns"].get<int64_t>() > d.worker(db)["started_at_ns"].get<int64_t>());
  db_pid = db_new;
  api_pid = api_new;

  // stop: api first again; it then waits for db, which is not coming back.
  REQUIRE(d.post("/api/workers/" + std::to_string(db) + "/stop", "").status == 200);
  REQUIRE(d.wait_state(db, "stopped"));
  REQUIRE(d.wait_state(api, "waiting"));
  CHECK(exit_ts_of_pid(d.db_path(), db_pid) > exit_ts_of_pid(d.db_path(), api_pid));
  CHECK(exit_ts_of_pid(d.db_path(), api_pid) > db_exit);
  CHECK(d.worker(api)["waiting_for"] == "waiting for db to be started");

  // Started again, then removed: api first once more.
  REQUIRE(d.post("/api/workers/" + std::to_string(db) + "/restart", "").status == 200);
  std::tie(db_pid, api_pid) = settled(db_pid, api_pid);
  REQUIRE(d.del("/api/workers/" + std::to_string(db)).status == 200);
  REQUIRE(wait_until([&] { return d.get("/api/workers").json()["workers"].size() == 1; }));
  REQUIRE(d.wait_state(api, "waiting"));
  CHECK(exit_ts_of_pid(d.db_path(), db_pid) > exit_ts_of_pid(d.db_path(), api_pid));
}

TEST_CASE("order: a dependency cycle refuses the config at load, naming its programs, exit 2", "[integration]") {
  const std::string dir = make_temp_dir("fw-cycle");
  const std::string path = dir + "/c.json";
  std::ofstream(path) << config(R"(
      {"name": "web", "command": ["true"], "depends_on": ["api"]},
      {"name": "api", "command": ["true"], "depends_on": ["db"]},
      {"name": "db", "command": ["true"], "depends_on": ["web"]})");
  std::string err;
  const int status = workers_support::run_status(
      {bin("forkwatchd"), "--listen", "127.0.0.1:0", "--state-dir", dir + "/state", "--config", path}, nullptr, &err);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 2);
  CHECK(err.find("a dependency cycle: web -> api -> db -> web") != std::string::npos);
}

TEST_CASE("readiness: real redis-server --supervised systemd becomes ready through NOTIFY_SOCKET", "[integration]") {
  INFO("redis-server comes with scripts/install-deps.sh --test");
  REQUIRE(access("/usr/bin/redis-server", X_OK) == 0);
  const int port = free_port();
  Daemon d({.config = config(R"(
      {"name": "redis", "command": ["/usr/bin/redis-server", "--supervised", "systemd", "--port", ")" +
                                   std::to_string(port) + R"(", "--save", "", "--appendonly", "no", "--dir", "/tmp"],
       "ready": {"notify": true}, "start_timeout_ms": 10000},
      {"name": "client", "command": ["exit-with", "--sleep"], "depends_on": ["redis"]})")});
  const int64_t redis = id_named(d, "redis"), client = id_named(d, "client");
  REQUIRE(d.wait_state(client, "running"));
  const Json r = d.worker(redis);
  CHECK(r["state"] == "running");
  CHECK(r["ready"] == true);
  CHECK(r["status_text"].is_string());
  CHECK(event_ts(d, client, "spawn") >= event_ts(d, redis, "state", "running"));
}

TEST_CASE("readiness: tcp readiness of a worker that binds a second late, its dependent waits for it", "[integration]") {
  const int port = free_port();
  const std::string go = make_temp_dir("fw-late-go") + "/go";
  Daemon d({.config = config(R"(
      {"name": "late", "command": ["/bin/sh", "-c", ")" + wait_file(go) + R"(; exec echo-epoll --port )" + std::to_string(port) + R"("],
       "env": {"PATH": ")" + std::string(FORKWATCH_BIN_DIR) + R"(:/usr/bin:/bin"}, "ready": {"tcp": )" + std::to_string(port) + R"(}},
      {"name": "user", "command": ["exit-with", "--sleep"], "depends_on": ["late"]})")});
  const int64_t late = id_named(d, "late"), user = id_named(d, "user");
  REQUIRE(wait_until([&] { return d.worker(late)["last_probe"].is_object(); }));
  CHECK(d.worker(late)["state"] == "starting");
  CHECK(d.worker(late)["last_probe"]["result"].get<std::string>().find("refused") != std::string::npos);
  CHECK(d.worker(user)["state"] == "waiting");
  const int64_t go_ns = realtime_ns();
  std::ofstream(go).close();  // late binds now
  REQUIRE(d.wait_state(user, "running"));
  const Json w = d.worker(late);
  CHECK(w["ready"] == true);
  CHECK(w["ready_at_ns"].get<int64_t>() >= go_ns);
  CHECK(event_ts(d, user, "spawn") >= event_ts(d, late, "state", "running"));
}

TEST_CASE("health: an http health check against a server that stops answering restarts it with cause health_check", "[integration]") {
  INFO("python3 comes with scripts/install-deps.sh --test");
  REQUIRE(access("/usr/bin/python3", X_OK) == 0);
  const int port = free_port();
  const std::string p = std::to_string(port);
  Daemon d({.config = config(R"(
      {"name": "web", "command": ["/usr/bin/python3", "-m", "http.server", ")" + p + R"(", "--bind", "127.0.0.1"],
       "cwd": "/tmp", "ready": {"tcp": )" + p + R"(}, "restart_delay_ms": 0,
       "health": {"http": "http://127.0.0.1:)" + p + R"(/", "interval_ms": 100, "timeout_ms": 200, "failures": 2}})")});
  const int64_t web = id_named(d, "web");
  REQUIRE(wait_until([&] { return d.worker(web)["health"] == "healthy"; }));
  CHECK(d.worker(web)["last_probe"]["result"] == "HTTP 200");
  // It stops answering: SIGSTOP leaves the port open (the kernel still
  // accepts), but no reply comes.
  REQUIRE(d.post("/api/workers/" + std::to_string(web) + "/signal", R"({"signal": "SIGSTOP"})").status == 200);
  REQUIRE(wait_until([&] { return d.worker(web)["restarts"].get<int>() >= 1; }));
  CHECK(last_cause(d, web) == "health_check");
  REQUIRE(wait_until([&] { return d.worker(web)["health"] == "healthy"; }));
}

TEST_CASE("order: on SIGHUP a config with a cycle is refused and the running one stays", "[integration]") {
  Daemon d({.config = config(R"({"name": "a", "command": ["exit-with", "--sleep"]})")});
  const int64_t a = id_named(d, "a");
  REQUIRE(d.wait_state(a, "running"));
  const pid_t pid = d.worker(a)["pid"];
  {
    // Atomic replace, as an editor would.
    const std::string path = d.state_dir() + "/programs.json";
    std::ofstream(path + ".new") << config(R"(
        {"name": "a", "command": ["exit-with", "--sleep"], "depends_on": ["b"]},
        {"name": "b", "command": ["exit-with", "--sleep"], "depends_on": ["a"]})");
    REQUIRE(rename((path + ".new").c_str(), path.c_str()) == 0);
  }
  REQUIRE(::kill(d.pid(), SIGHUP) == 0);
  REQUIRE(wait_until([&] { return d.stderr_text().find("reload refused") != std::string::npos; }));
  CHECK(d.stderr_text().find("a dependency cycle: a -> b -> a") != std::string::npos);
  const Json all = d.get("/api/workers").json();
  CHECK(all["workers"].size() == 1);
  CHECK(d.worker(a)["pid"] == pid);
}

TEST_CASE("readiness: a log line that matches, and an exec probe that exits 0, an exec health check that fails restarts", "[integration]") {
  const std::string dir = make_temp_dir("fw-exec-probe");
  const std::string flag = dir + "/up", healthy = dir + "/healthy", go = dir + "/go";
  Daemon d({.config = config(R"(
      {"name": "logger", "command": ["/bin/sh", "-c", "echo booting; )" + wait_file(go) + R"(; echo 'server ready on port 1'; exec sleep 100"],
       "ready": {"log": "ready on port [0-9]+$"}},
      {"name": "execer", "command": ["/bin/sh", "-c", ")" + wait_file(go) + R"(; touch )" + flag + R"(; exec sleep 100"],
       "ready": {"exec": ["/usr/bin/test", "-e", ")" + flag + R"("]}},
      {"name": "checked", "command": ["/bin/sh", "-c", "touch )" + healthy + R"(; exec sleep 100"],
       "restart_delay_ms": 0,
       "health": {"exec": ["/usr/bin/test", "-e", ")" + healthy + R"("], "interval_ms": 100, "failures": 2}})")});
  const int64_t logger = id_named(d, "logger"), execer = id_named(d, "execer"), checked = id_named(d, "checked");
  REQUIRE(wait_until([&] { return d.worker(logger)["pid"].is_number() && d.worker(execer)["pid"].is_number(); }));
  CHECK(d.worker(logger)["state"] == "starting");
  CHECK(d.worker(execer)["state"] == "starting");
  const int64_t go_ns = realtime_ns();
  std::ofstream(go).close();  // both get ready now
  REQUIRE(d.wait_state(logger, "running"));
  REQUIRE(d.wait_state(execer, "running"));
  for (int64_t id : {logger, execer}) {
    const Json w = d.worker(id);
    CHECK(w["ready"] == true);
    CHECK(w["ready_at_ns"].get<int64_t>() >= go_ns);
  }
  CHECK(d.worker(logger)["last_probe"]["result"] == "log line matched");
  CHECK(d.worker(execer)["last_probe"]["result"] == "exited 0");
  REQUIRE(wait_until([&] { return d.worker(checked)["health"] == "healthy"; }));
  REQUIRE(unlink(healthy.c_str()) == 0);  // the check fails from now on
  REQUIRE(wait_until([&] { return d.worker(checked)["restarts"].get<int>() >= 1; }));
  CHECK(last_cause(d, checked) == "health_check");
}

TEST_CASE("order: a reload that removes a dependent and its dependency stops the dependent first", "[integration]") {
  Daemon d({.config = config(R"(
      {"name": "db", "command": ["exit-with", "--sleep"]},
      {"name": "api", "command": ["exit-with", "--ignore-term", "--sleep"], "stop_timeout_ms": 300,
       "depends_on": [{"program": "db", "condition": "started"}]},
      {"name": "other", "command": ["exit-with", "--sleep"]})")});
  const int64_t db = id_named(d, "db"), api = id_named(d, "api");
  REQUIRE(d.wait_state(api, "running"));
  REQUIRE(wait_until([&] { return ignores_term(d.worker(api)["pid"].get<int>()); }));
  {
    const std::string path = d.state_dir() + "/programs.json";
    std::ofstream(path + ".new") << config(R"({"name": "other", "command": ["exit-with", "--sleep"]})");
    REQUIRE(rename((path + ".new").c_str(), path.c_str()) == 0);
  }
  REQUIRE(::kill(d.pid(), SIGHUP) == 0);
  REQUIRE(wait_until([&] { return d.get("/api/workers").json()["workers"].size() == 1; }));
  int64_t api_exit = -1, db_exit = -1;
  REQUIRE(wait_until([&] { return (api_exit = exit_ts(d.db_path(), api)) > 0 && (db_exit = exit_ts(d.db_path(), db)) > 0; }));
  CHECK(db_exit > api_exit);
}

TEST_CASE("readiness: an fd worker is starting until it writes a newline to fd N, and its dependent starts only after it", "[integration]") {
  const std::string dir = make_temp_dir("fw-ready-fd");
  const std::string trigger = dir + "/go";
  // It waits for the trigger file, writes the newline to fd 5 (after some
  // text that means nothing), and keeps running.
  Daemon d({.config = config(R"(
      {"name": "s6", "command": ["/bin/sh", "-c", ")" + wait_file(trigger) + R"(; printf 'up\n' >&5; exec sleep 100"],
       "ready": {"fd": 5}},
      {"name": "api", "command": ["exit-with", "--sleep"], "depends_on": ["s6"]})")});
  const int64_t s6 = id_named(d, "s6"), api = id_named(d, "api");
  REQUIRE(wait_until([&] { return d.worker(s6)["pid"].is_number(); }));
  const pid_t pid = d.worker(s6)["pid"];
  // fd 5 is the only one above 2 it holds: nothing else of the daemon's
  // leaked. Until its exec closes them it holds a copy of the daemon's table.
  std::set<int> fds;
  CHECK(wait_until([&] { return (fds = open_fds(pid)) == std::set<int>{0, 1, 2, 5}; }, 5s));
  INFO("fds: " << Json(fds).dump());
  CHECK(d.worker(s6)["state"] == "starting");
  CHECK(d.worker(s6)["ready"] == false);
  CHECK(d.worker(api)["state"] == "waiting");
  CHECK(d.worker(api)["waiting_for"] == "waiting for s6 to be ready");
  const int64_t triggered_ns = realtime_ns();
  std::ofstream(trigger) << "";
  REQUIRE(d.wait_state(api, "running"));
  const Json w = d.worker(s6);
  CHECK(w["state"] == "running");
  CHECK(w["ready"] == true);
  CHECK(w["ready_at_ns"].get<int64_t>() >= triggered_ns);
  CHECK(w["last_probe"]["result"] == "newline on fd 5");
  CHECK(event_ts(d, api, "spawn") >= event_ts(d, s6, "state", "running"));
}

TEST_CASE("readiness: an fd worker that closes fd N without a newline stays starting until start_timeout", "[integration]") {
  Daemon d({.config = config(R"(
      {"name": "shy", "command": ["/bin/sh", "-c", "printf 'almost' >&7; exec 7>&-; exec sleep 100"],
       "ready": {"fd": 7}, "start_timeout_ms": 2000, "restart": "no"})")});
  const int64_t id = id_named(d, "shy");
  // The daemon saw the close (EOF) and said so; the worker is still starting.
  REQUIRE(wait_until([&] { return d.worker(id)["last_probe"].is_object(); }));
  Json w = d.worker(id);
  CHECK(w["last_probe"]["result"] == "fd 7 closed without a newline");
  CHECK(w["state"] == "starting");
  CHECK(w["ready"] == false);
  CHECK(d.stderr_text().find("fd 7 closed without a newline (it wrote \"almost\")") != std::string::npos);
  REQUIRE(d.wait_state(id, "exited"));
  CHECK(last_cause(d, id) == "start_timeout");
  CHECK(d.worker(id)["ready"] == false);
}

TEST_CASE("readiness: each run of an fd worker gets a fresh pipe, so a restarted one can become ready", "[integration]") {
  const std::string dir = make_temp_dir("fw-ready-fd-restart");
  const std::string mark = dir + "/ran";
  // The first run exits 1 without a newline; the second writes it.
  Daemon d({.config = config(R"(
      {"name": "twice", "command": ["/bin/sh", "-c", "if [ -e )" + mark + R"( ]; then printf '\n' >&3; exec sleep 100; fi; touch )" + mark + R"(; exit 1"],
       "ready": {"fd": 3}, "restart": "on-failure", "restart_delay_ms": 0})")});
  const int64_t id = id_named(d, "twice");
  REQUIRE(wait_until([&] { return d.worker(id)["ready"] == true; }));
  const Json w = d.worker(id);
  CHECK(w["restarts"] == 1);
  CHECK(w["state"] == "running");
}

TEST_CASE("readiness: MAINPID= from a notify worker makes its forked child the main process, which it follows and stops", "[integration]") {
  INFO("python3 comes with scripts/install-deps.sh --test");
  REQUIRE(access("/usr/bin/python3", X_OK) == 0);
  const std::string dir = make_temp_dir("fw-mainpid");
  const std::string script = dir + "/forker.py", child_file = dir + "/pids", go = dir + "/go";
  // The first process forks a child, names it with MAINPID= (after a
  // MAINPID= of a stranger, pid 1, which must be refused), says READY=1, and
  // exits 0 once told to.
  std::ofstream(script) << kForkerStart << R"(
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.sendto(b"MAINPID=1", addr)
s.sendto(("MAINPID=%d\nERRNO=5\nREADY=1" % child).encode(), addr)
wait_for(sys.argv[2])
)";
  // Both ways of telling the worker's processes apart: its process tree, and
  // its cgroup where one can be had.
  const std::string containment = GENERATE("process-group", "auto");
  INFO("--containment " << containment);
  Daemon d({.config = config(R"(
      {"name": "forker", "command": ["/usr/bin/python3", ")" + script + R"(", ")" + child_file + R"(", ")" + go + R"("],
       "ready": {"notify": true}, "stop_timeout_ms": 5000})"),
            .args = {"--containment", containment}});
  const int64_t id = id_named(d, "forker");
  REQUIRE(wait_until([&] { return d.worker(id)["ready"] == true; }));
  pid_t first = 0, child = 0;
  std::istringstream(read_text(child_file)) >> first >> child;
  REQUIRE(first > 0);
  REQUIRE(child > 0);
  CHECK(d.worker(id)["pid"] == child);
  CHECK(d.worker(id)["state"] == "running");
  CHECK(metric(d, "forkwatch_notify_mainpid_refused_total") == 1);
  CHECK(d.stderr_text().find("MAINPID=1 refused") != std::string::npos);
  CHECK(d.stderr_text().find("ERRNO=5 (Input/output error)") != std::string::npos);
  // The first process exits 0: an exit of one of its processes, not the worker's.
  std::ofstream(go) << "";
  REQUIRE(wait_until([&] {
    return query_int(d.db_path(), "SELECT COUNT(*) FROM wait_status WHERE pid = " + std::to_string(first) +
                                      " AND adopted = 1 AND wifexited = 1 AND wexitstatus = 0") == 1;
  }));
  Json w = d.worker(id);
  CHECK(w["state"] == "running");
  CHECK(w["pid"] == child);
  CHECK(w["restarts"] == 0);
  // A stop ends the child, whose exit is now the worker's.
  REQUIRE(d.post("/api/workers/" + std::to_string(id) + "/stop").status == 200);
  REQUIRE(d.wait_state(id, "stopped"));
  CHECK(last_cause(d, id) == "stop_requested");
  CHECK(query_int(d.db_path(), "SELECT pid FROM wait_status WHERE worker_id = " + std::to_string(id) +
                                   " AND adopted = 0 ORDER BY id DESC LIMIT 1") == child);
  CHECK(::kill(child, 0) == -1);
}

TEST_CASE("readiness: a MAINPID= child reaped by the process that named it hands the worker back to that process", "[integration]") {
  INFO("python3 comes with scripts/install-deps.sh --test");
  REQUIRE(access("/usr/bin/python3", X_OK) == 0);
  const std::string dir = make_temp_dir("fw-mainpid-back");
  const std::string script = dir + "/forker.py", pids = dir + "/pids", end_child = dir + "/end-child", go = dir + "/go";
  // The first process names its child with MAINPID=, then (told to) ends
  // and reaps the child itself, and later exits 3: the child's status is
  // never the daemon's to see.
  std::ofstream(script) << kForkerStart << R"(
socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(("MAINPID=%d\nREADY=1" % child).encode(), addr)
wait_for(sys.argv[2])
os.kill(child, signal.SIGTERM)
os.waitpid(child, 0)
wait_for(sys.argv[3])
sys.exit(3)
)";
  const std::string containment = GENERATE("process-group", "auto");
  INFO("--containment " << containment);
  Daemon d({.config = config(R"(
      {"name": "forker", "command": ["/usr/bin/python3", ")" + script + R"(", ")" + pids + R"(", ")" + end_child +
                                 R"(", ")" + go + R"("], "ready": {"notify": true}, "restart": "no"})"),
            .args = {"--containment", containment}});
  const int64_t id = id_named(d, "forker");
  REQUIRE(wait_until([&] { return d.worker(id)["ready"] == true; }));
  pid_t first = 0, child = 0;
  std::istringstream(read_text(pids)) >> first >> child;
  REQUIRE(child > 0);
  REQUIRE(d.worker(id)["pid"] == child);
  std::ofstream(end_child) << "";
  // The child is gone, reaped by its parent: the worker follows that parent.
  REQUIRE(wait_until([&] { return d.worker(id)["pid"] == first; }));
  CHECK(d.worker(id)["state"] == "running");
  std::ofstream(go) << "";
  // Its exit 3 is the worker's exit, and the policy (no) leaves it exited.
  REQUIRE(d.wait_state(id, "exited"));
  REQUIRE(wait_until([&] {
    return query_int(d.db_path(), "SELECT COUNT(*) FROM wait_status WHERE worker_id = " + std::to_string(id) +
                                      " AND pid = " + std::to_string(first) + " AND adopted = 0 AND wexitstatus = 3") == 1;
  }));
}
