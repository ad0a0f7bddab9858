// Identity and limits per program against real processes: uid, gid,
// supplementary groups, umask, limits, nice, oom_score_adj and no_new_privs
// read back from /proc/PID of a real worker; a daemon run as nobody refusing
// another user; the effective user of a worker that drops privilege itself;
// and Debian's PostgreSQL run as "postgres" with no wrapper.
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "daemon_harness.h"

using namespace fwtest;

namespace {

// The value of "Key:" in /proc/PID/status, blanks squeezed to single spaces.
std::string status_line(pid_t pid, const std::string& key) {
  std::istringstream in(read_text("/proc/" + std::to_string(pid) + "/status"));
  for (std::string line; std::getline(in, line);)
    if (line.rfind(key + ":", 0) == 0) {
      std::istringstream words(line.substr(key.size() + 1));
      std::string out, w;
      while (words >> w) out += (out.empty() ? "" : " ") + w;
      return out;
    }
  return "";
}

// "Max open files  256  512  files" -> "256 512".
std::string limits_line(pid_t pid, const std::string& name) {
  std::istringstream in(read_text("/proc/" + std::to_string(pid) + "/limits"));
  for (std::string line; std::getline(in, line);)
    if (line.rfind(name, 0) == 0) {
      std::istringstream words(line.substr(name.size()));
      std::string soft, hard;
      words >> soft >> hard;
      return soft + " " + hard;
    }
  return "";
}

// Field 19 of /proc/PID/stat (proc(5)), after the comm's closing ')'.
int stat_nice(pid_t pid) {
  std::string s = read_text("/proc/" + std::to_string(pid) + "/stat");
  std::istringstream rest(s.substr(s.rfind(')') + 2));
  std::string f;
  for (int field = 3; field <= 19; ++field) rest >> f;
  return std::stoi(f);
}

Json worker_named(const Daemon& d, const std::string& name) {
  const Json all = d.get("/api/workers").json();  // kept: the loop reads into it
  for (const auto& w : all["workers"])
    if (w["name"] == name) return w;
  return nullptr;
}

Json running_worker(const Daemon& d, const std::string& name) {
  Json w;
  REQUIRE(wait_until([&] {
    w = worker_named(d, name);
    return w.is_object() && w["state"] == "running";
  }));
  return w;
}

// A user of the group database's member lists: someone with a supplementary
// group (on Debian's test machine, postgres in ssl-cert).
std::string user_with_supplementary_groups() {
  std::istringstream in(read_text("/etc/group"));
  for (std::string line; std::getline(in, line);) {
    auto members = line.substr(line.rfind(':') + 1);
    if (members.empty()) continue;
    std::string first = members.substr(0, members.find(','));
    if (getpwnam(first.c_str())) return first;
  }
  return "";
}

std::set<gid_t> groups_of(const std::string& user) {
  const passwd* pw = getpwnam(user.c_str());
  int n = 64;
  std::vector<gid_t> g(64);
  while (getgrouplist(user.c_str(), pw->pw_gid, g.data(), &n) < 0) g.resize(static_cast<size_t>(n));
  return {g.begin(), g.begin() + n};
}

}  // namespace

TEST_CASE("a worker runs with its program's user, groups, umask, limits, nice, oom_score_adj and no_new_privs",
          "[integration]") {
  REQUIRE(geteuid() == 0);
  const std::string user = user_with_supplementary_groups();
  if (user.empty()) FAIL("no user with a supplementary group here; scripts/install-deps.sh --test installs postgresql, whose postgres user is in ssl-cert");
  const passwd* pw = getpwnam(user.c_str());
  REQUIRE(pw);
  const uid_t uid = pw->pw_uid;
  const gid_t gid = pw->pw_gid;
  const std::string home = pw->pw_dir;
  Daemon d({.config = R"({"programs": [
      {"name": "ids", "command": ["exit-with", "--sleep"], "user": ")" + user + R"(", "umask": "0027",
       "limits": {"nofile": [256, 512], "core": 0, "stack": "unlimited", "nproc": [100, 200]},
       "nice": 7, "oom_score_adj": 333, "no_new_privs": true},
      {"name": "plain", "command": ["exit-with", "--sleep"]}]})"});
  const Json w = running_worker(d, "ids");
  const pid_t pid = w["pid"].get<pid_t>();
  const std::string u = std::to_string(uid), g = std::to_string(gid);
  CHECK(status_line(pid, "Uid") == u + " " + u + " " + u + " " + u);
  CHECK(status_line(pid, "Gid") == g + " " + g + " " + g + " " + g);
  std::set<gid_t> groups;
  std::istringstream gl(status_line(pid, "Groups"));
  for (gid_t x; gl >> x;) groups.insert(x);
  CHECK(groups == groups_of(user));
  CHECK(groups.size() >= 2);  // the primary group and at least one supplementary
  CHECK(status_line(pid, "Umask") == "0027");
  CHECK(status_line(pid, "NoNewPrivs") == "1");
  CHECK(limits_line(pid, "Max open files") == "256 512");
  CHECK(limits_line(pid, "Max core file size") == "0 0");
  CHECK(limits_line(pid, "Max stack size") == "unlimited unlimited");
  CHECK(limits_line(pid, "Max processes") == "100 200");
  CHECK(stat_nice(pid) == 7);
  CHECK(read_text("/proc/" + std::to_string(pid) + "/oom_score_adj") == "333\n");
  const auto environ = program_environ(pid);
  CHECK(has_entry(environ, "HOME=" + home));
  CHECK(has_entry(environ, "USER=" + user));
  // The API shows who it is.
  CHECK(w["uid"] == uid);
  CHECK(w["gid"] == gid);
  CHECK(w["user"] == user);

  // The child shared the daemon's memory until its exec (CLONE_VM): nothing
  // it set may have reached the daemon itself.
  CHECK(read_text("/proc/" + std::to_string(d.pid()) + "/oom_score_adj") ==
        read_text("/proc/" + std::to_string(getpid()) + "/oom_score_adj"));
  CHECK(stat_nice(d.pid()) == stat_nice(getpid()));
  CHECK(status_line(d.pid(), "Uid") == "0 0 0 0");
  CHECK(status_line(d.pid(), "Umask") == status_line(getpid(), "Umask"));
  CHECK(limits_line(d.pid(), "Max core file size") == limits_line(getpid(), "Max core file size"));
  // The program without identity fields keeps the daemon's.
  const pid_t plain = running_worker(d, "plain")["pid"].get<pid_t>();
  CHECK(status_line(plain, "Uid") == "0 0 0 0");
  CHECK(status_line(plain, "NoNewPrivs") == "0");
  CHECK(stat_nice(plain) == stat_nice(d.pid()));
}

TEST_CASE("an env_file adds its variables, env wins over it, and a missing one refuses the config at load", "[integration]") {
  const std::string dir = make_temp_dir("fw-envfile");
  std::ofstream(dir + "/w.env") << "# settings\nGREETING=\"hello world\"\nLANG=from-file\n";
  {
    Daemon d({.config = R"({"programs": [{"name": "e", "command": ["exit-with", "--sleep"],
        "env_file": ")" + dir + R"(/w.env", "env": {"LANG": "C"}}]})"});
    const pid_t pid = running_worker(d, "e")["pid"].get<pid_t>();
    const auto environ = program_environ(pid);
    CHECK(has_entry(environ, "GREETING=hello world"));
    CHECK(has_entry(environ, "LANG=C"));
    CHECK_FALSE(has_entry(environ, "LANG=from-file"));
  }
  std::ofstream(dir + "/programs.json") << R"({"programs": [{"name": "e", "command": ["exit-with"], "env_file": ")"
                                        << dir << R"(/missing.env"}]})";
  ProgramRun r = run_program({bin("forkwatchd"), "--listen", "127.0.0.1:0", "--state-dir", dir + "/state", "--config",
               dir + "/programs.json"});
  CHECK(WIFEXITED(r.status));
  CHECK(WEXITSTATUS(r.status) == 2);
  CHECK(r.output == "forkwatchd: config " + dir + "/programs.json: programs[0] (\"e\"): env_file: open(" + dir +
                        "/missing.env): No such file or directory\n");
  std::filesystem::remove_all(dir);
}

TEST_CASE("a daemon run as nobody refuses a program with user root at load, with exit 2", "[integration]") {
  REQUIRE(geteuid() == 0);
  const std::string dir = make_temp_dir("fw-nobody");
  chmod(dir.c_str(), 0755);
  std::ofstream(dir + "/programs.json") << R"({"programs": [{"name": "ok", "command": ["exit-with"]},
      {"name": "db", "command": ["exit-with"], "user": "root"}]})";
  REQUIRE(chown(dir.c_str(), 65534, 65534) == 0);
  ProgramRun r = run_program({"setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups", bin("forkwatchd"), "--listen",
               "127.0.0.1:0", "--state-dir", dir + "/state", "--config", dir + "/programs.json"});
  CHECK(WIFEXITED(r.status));
  CHECK(WEXITSTATUS(r.status) == 2);
  CHECK(r.output == "forkwatchd: config " + dir +
                        "/programs.json: programs[1] (\"db\"): user: the daemon runs as uid 65534, not root, so it "
                        "cannot run a worker as \"root\" (uid 0)\n");
  std::filesystem::remove_all(dir);
}

TEST_CASE("a child step that fails is reported like an exec failure, naming the step", "[integration]") {
  // A daemon that is not root may not lower oom_score_adj below its own:
  // the kernel refuses the write in the child, between clone and exec.
  const std::string dir = make_temp_dir("fw-nobody-run");
  chmod(dir.c_str(), 0755);
  Daemon d({.config = R"({"programs": [{"name": "low", "command": ["exit-with", "--sleep"], "oom_score_adj": -500,
                                         "restart": "no"},
                                        {"name": "other", "command": ["exit-with", "--sleep"]}]})",
            .state_dir = dir,
            .before_exec = [dir] {
              if (chown(dir.c_str(), 65534, 65534) != 0 || setgroups(0, nullptr) != 0 || setresgid(65534, 65534, 65534) != 0 ||
                  setresuid(65534, 65534, 65534) != 0)
                _exit(126);
            }});
  Json w;
  REQUIRE(wait_until([&] {
    w = worker_named(d, "low");
    return w.is_object() && w["state"] == "fatal";
  }));
  CHECK(w["fatal_reason"] == "write(/proc/self/oom_score_adj): Permission denied");
  const Json other = running_worker(d, "other");  // the others carry on
  CHECK(other["uid"] == 65534);
  CHECK(other["user"] == "nobody");
  d.terminate();
  std::filesystem::remove_all(dir);
}

TEST_CASE("over the API identity fields need --allow-commands, and bad ones are a 422 naming the field",
          "[integration]") {
  {
    Daemon d;
    auto r = d.post("/api/workers", R"({"program":"exit-with","user":"nobody"})");
    CHECK(r.status == 403);
    CHECK(r.json()["error"]["code"] == "commands_not_allowed");
    // umask needs no --allow-commands.
    r = d.post("/api/workers", R"({"program":"exit-with","args":["--sleep"],"umask":"0077","restart":"no"})");
    REQUIRE(r.status == 201);
    CHECK(status_line(r.json()["pid"].get<pid_t>(), "Umask") == "0077");
  }
  Daemon d({.args = {"--allow-commands"}});
  const Json keep = d.start({{"program", "exit-with"}, {"args", {"--sleep"}}, {"restart", "no"}});
  struct Case {
    std::string body, message;
  } cases[] = {
      {R"({"program":"exit-with","user":"no-such-user-fw"})", "request: user: no such user: \"no-such-user-fw\""},
      {R"({"program":"exit-with","group":"no-such-group-fw"})", "request: group: no such group: \"no-such-group-fw\""},
      {R"({"program":"exit-with","umask":"0999"})",
       "request: umask: must be an octal string from \"0000\" to \"0777\", e.g. \"0027\" (got \"0999\")"},
      {R"({"program":"exit-with","limits":{"nofile":-1}})", "request: limits.nofile: must not be negative (got -1)"},
      {R"({"program":"exit-with","limits":{"nofile":[10,5]}})", "request: limits.nofile: soft limit 10 is above its hard limit 5"},
      {R"({"program":"exit-with","limits":{"files":10}})",
       "request: limits.files: is not a known limit (known: nofile, nproc, core, memlock, stack, as, cpu, fsize)"},
      {R"({"program":"exit-with","env_file":"/nonexistent/x.env"})",
       "request: env_file: open(/nonexistent/x.env): No such file or directory"},
  };
  for (const Case& c : cases) {
    INFO(c.body);
    auto r = d.post("/api/workers", c.body);
    CHECK(r.status == 422);
    CHECK(r.json()["error"]["message"] == c.message);
  }
  CHECK(d.worker(keep["id"].get<int64_t>())["state"] == "running");
  CHECK(d.get("/api/workers").json()["workers"].size() == 1);  // nothing else started
  auto r = d.post("/api/workers", R"({"command":["exit-with","--sleep"],"user":"nobody","limits":{"core":0}})");
  REQUIRE(r.status == 201);
  CHECK(r.json()["uid"] == 65534);
  CHECK(status_line(r.json()["pid"].get<pid_t>(), "Uid") == "65534 65534 65534 65534");
}

TEST_CASE("the API shows the effective user of a worker that drops privilege itself", "[integration]") {
  Daemon d({.config = R"({"programs": [{"name": "drop", "command":
      ["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups", "sleep", "30"]}]})",
            .args = {"--sample-ms", "100"}});
  const int64_t id = running_worker(d, "drop")["id"].get<int64_t>();
  Json w;
  // Watching (the tree) keeps the sampler at its full rate.
  REQUIRE(wait_until([&] {
    Json tree = d.get("/api/tree").json();
    w = d.worker(id);
    // setpriv changes its uid and its gid in two calls: a sample may fall
    // between them, and then the next one (after its exec of sleep) is right.
    return w["uid"] == 65534 && w["gid"] == 65534 && w["pid"].is_number() &&
           read_text("/proc/" + std::to_string(w["pid"].get<int>()) + "/comm") == "sleep\n";
  }));
  CHECK(w["gid"] == 65534);
  CHECK(w["user"] == "nobody");
  CHECK(w["group"] == "nogroup");
  CHECK(status_line(w["pid"].get<pid_t>(), "Uid") == "65534 65534 65534 65534");
  // The tree node says the same.
  CHECK(d.get("/api/tree").body.find("\"pid\":" + std::to_string(w["pid"].get<int>()) + ",") != std::string::npos);
  auto p = d.get("/api/processes/" + std::to_string(w["pid"].get<int>())).json();
  CHECK(p["uid"] == 65534);
  CHECK(p["gid"] == 65534);
}

TEST_CASE("SIGHUP with an unknown user keeps the running config and its workers", "[integration]") {
  Daemon d({.config = R"({"programs": [{"name": "a", "command": ["exit-with", "--sleep"]}]})"});
  const Json before = running_worker(d, "a");
  std::ofstream(d.state_dir() + "/programs.json")
      << R"({"programs": [{"name": "a", "command": ["exit-with", "--sleep"], "user": "no-such-user-fw"}]})";
  REQUIRE(::kill(d.pid(), SIGHUP) == 0);
  REQUIRE(wait_until([&] { return d.stderr_text().find("user: no such user: \"no-such-user-fw\"") != std::string::npos; }));
  CHECK(d.stderr_text().find("reload refused, keeping the running config: ") != std::string::npos);
  const Json after = worker_named(d, "a");
  CHECK(after["pid"] == before["pid"]);
  CHECK(after["state"] == "running");
}

// The way a user would run it: initdb once, the postmaster after initdb
// completed, ready when it says so over NOTIFY_SOCKET (Debian's build sends
// READY=1 whenever the variable is set), and its client only after that.
TEST_CASE("Debian's PostgreSQL runs as user postgres with no wrapper, after initdb completed, ready through NOTIFY_SOCKET before its client starts",
          "[integration]") {
  std::string bindir;
  for (const auto& e : std::filesystem::directory_iterator("/usr/lib/postgresql", std::filesystem::directory_options::skip_permission_denied))
    if (std::filesystem::exists(e.path() / "bin/postgres")) bindir = (e.path() / "bin").string();
  if (bindir.empty() || !getpwnam("postgres"))
    FAIL("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/postgres or no user postgres): "
         "scripts/install-deps.sh --test installs the test dependencies, postgresql among them");
  const passwd* pg = getpwnam("postgres");
  const std::string dir = make_temp_dir("fw-pg");
  REQUIRE(chown(dir.c_str(), pg->pw_uid, pg->pw_gid) == 0);
  const std::string data = dir + "/data", sock = dir;
  const int port = free_port();
  Daemon d({.config = R"({"programs": [
      {"name": "initdb", "command": [")" + bindir + R"(/initdb", "-D", ")" + data + R"(", "-A", "trust", "-U", "postgres", "--no-sync"],
       "user": "postgres", "restart": "no"},
      {"name": "pg", "command": [")" + bindir + R"(/postgres", "-D", ")" + data + R"(", "-k", ")" + sock +
                R"(", "-p", ")" + std::to_string(port) + R"(", "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"],
       "user": "postgres", "restart": "no", "stop_signal": "SIGINT",
       "depends_on": [{"program": "initdb", "condition": "completed"}],
       "ready": {"notify": true}, "start_timeout_ms": 60000},
      {"name": "client", "command": ["exit-with", "--sleep"], "depends_on": ["pg"]}]})"});
  const int64_t id = worker_named(d, "pg")["id"].get<int64_t>();
  const int64_t client = worker_named(d, "client")["id"].get<int64_t>();
  REQUIRE(d.wait_state(client, "running", 60s));
  const Json init = worker_named(d, "initdb");
  CHECK(init["state"] == "exited");
  REQUIRE(init["last_exit"]["wexitstatus"] == 0);
  Json w = d.worker(id);
  CHECK(w["state"] == "running");
  CHECK(w["ready"] == true);
  CHECK(w["ready_at_ns"].get<int64_t>() <= worker_named(d, "client")["started_at_ns"].get<int64_t>());
  // Ready means it takes connections: the first query after it works.
  ProgramRun q = run_program({bindir + "/psql", "-h", sock, "-p", std::to_string(port), "-U", "postgres", "-tAc", "select 1"});
  CHECK(WIFEXITED(q.status));
  CHECK(WEXITSTATUS(q.status) == 0);
  CHECK(q.output == "1\n");
  CHECK(w["user"] == "postgres");
  CHECK(status_line(w["pid"].get<pid_t>(), "Uid").rfind(std::to_string(pg->pw_uid) + " ", 0) == 0);
  CHECK(d.post("/api/workers/" + std::to_string(id) + "/stop", "").status == 200);
  CHECK(d.wait_state(id, "stopped"));
  d.terminate();
  std::filesystem::remove_all(dir);
}
