// Access (issue 16): the Unix socket and its peer credentials, the read-only
// token, and the flags' bad values. Real daemons, real users (setpriv), real
// sockets.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>

#include "daemon_harness.h"
#include "workers_support.h"

using namespace fwtest;

namespace {

// A directory everyone may enter, for a socket that other users must reach
// (the harness's state dirs are 0700).
std::string open_dir() {
  std::string dir = make_temp_dir("fw-sock");
  REQUIRE(::chmod(dir.c_str(), 0755) == 0);
  return dir;
}

struct Curl {
  int status = 0;  // curl's exit status
  std::string out;
};

// curl over the Unix socket, as `user` (and `group`) when given.
Curl curl_socket(const std::string& socket, const std::string& method, const std::string& path,
                 const std::string& user = "", const std::string& group = "") {
  std::vector<std::string> argv;
  if (!user.empty())
    argv = {"/usr/bin/setpriv", "--reuid", user, "--regid", group.empty() ? user : group, "--clear-groups"};
  for (const char* a : {"/usr/bin/curl", "-s", "-w", "\n%{http_code}", "-X"}) argv.push_back(a);
  argv.insert(argv.end(), {method, "--unix-socket", socket, "http://forkwatch" + path});
  if (method == "POST") argv.insert(argv.end(), {"-d", ""});
  Curl c;
  c.status = workers_support::run_status(argv, &c.out);
  return c;
}

int http_code(const Curl& c) {
  size_t nl = c.out.rfind('\n');
  return nl == std::string::npos ? 0 : std::atoi(c.out.c_str() + nl + 1);
}

std::string body(const Curl& c) { return c.out.substr(0, c.out.rfind('\n')); }

// forkwatchd with `args` that must refuse to start: its exit status and stderr.
std::pair<int, std::string> refused_start(std::vector<std::string> args) {
  const std::string state = make_temp_dir("fw-refuse");
  std::vector<std::string> argv{bin("forkwatchd"), "--listen", "127.0.0.1:0", "--state-dir", state};
  argv.insert(argv.end(), args.begin(), args.end());
  std::string err;
  int status = workers_support::run_status(argv, nullptr, &err);
  std::filesystem::remove_all(state);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, err};
}

}  // namespace

TEST_CASE("over the Unix socket root is admin, the socket group reads, anyone else is refused",
          "[integration]") {
  const std::string dir = open_dir();
  const std::string sock = dir + "/forkwatch.sock";
  Daemon d({.config = R"({"programs":[{"name":"keep","command":["exit-with","--sleep"],"env":{"SECRET":"hunter2"}}]})",
            .args = {"--socket", sock, "--socket-group", "nogroup"}});
  struct stat st{};
  REQUIRE(::stat(sock.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0660);
  CHECK(st.st_gid == 65534);  // nogroup

  // root: admin, with no token at all.
  auto session = curl_socket(sock, "GET", "/api/session");
  CHECK(http_code(session) == 200);
  CHECK(Json::parse(body(session))["role"] == "admin");
  CHECK(Json::parse(body(curl_socket(sock, "GET", "/api/programs")))["programs"][0]["env"]["SECRET"] == "hunter2");

  // nobody in group nogroup: reads, secrets hidden, every change 403.
  auto read = curl_socket(sock, "GET", "/api/programs", "nobody", "nogroup");
  REQUIRE(http_code(read) == 200);
  CHECK(Json::parse(body(read))["programs"][0]["env"]["SECRET"] == "***");
  CHECK(body(read).find("hunter2") == std::string::npos);
  CHECK(Json::parse(body(curl_socket(sock, "GET", "/api/session", "nobody", "nogroup")))["role"] == "read");
  REQUIRE(d.wait_state(1, "running"));
  auto stop = curl_socket(sock, "POST", "/api/workers/1/stop", "nobody", "nogroup");
  CHECK(http_code(stop) == 403);
  CHECK(Json::parse(body(stop))["error"]["code"] == "forbidden");
  CHECK(d.worker(1)["state"] == "running");

  // daemon (not in nogroup): the socket's mode keeps it out entirely.
  auto other = curl_socket(sock, "GET", "/api/workers", "daemon", "daemon");
  CHECK(other.status != 0);
  CHECK(http_code(other) == 0);
  std::filesystem::remove_all(dir);
}

TEST_CASE("a peer the socket's mode let in but no role covers gets 403", "[integration]") {
  const std::string dir = open_dir();
  const std::string sock = dir + "/forkwatch.sock";
  Daemon d({.args = {"--socket", sock}});  // no --socket-group: only root and the daemon's user
  REQUIRE(::chmod(sock.c_str(), 0666) == 0);  // an operator's mistake
  auto r = curl_socket(sock, "GET", "/api/workers", "nobody", "nogroup");
  CHECK(http_code(r) == 403);
  CHECK(Json::parse(body(r))["error"]["code"] == "forbidden");
  CHECK(body(r).find("uid 65534") != std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST_CASE("the read-only token reads everything but secrets and changes nothing", "[integration]") {
  const std::string dir = make_temp_dir("fw-read");
  std::ofstream(dir + "/read") << "read-only-token-123\n";
  Daemon d({.config = R"({"programs":[{"name":"keep","command":["exit-with","--sleep"],"env":{"SECRET":"hunter2"}}]})",
            .args = {"--read-token-file", dir + "/read"}});
  REQUIRE(d.wait_state(1, "running"));
  const std::map<std::string, std::string> as_reader{{"Authorization", "Bearer read-only-token-123"}};
  for (const char* path : {"/api/programs", "/api/workers", "/api/workers/1", "/api/history", "/api/tree",
                           "/api/workers/1/logs", "/api/session", "/metrics"}) {
    auto r = d.request("GET", path, "", as_reader, false);
    INFO(path << " -> " << r.status << " " << r.body);
    CHECK(r.status == 200);
    CHECK(r.body.find("hunter2") == std::string::npos);
  }
  CHECK(d.request("GET", "/api/session", "", as_reader, false).json()["role"] == "read");
  struct Change {
    const char* method;
    const char* path;
    const char* body;
  };
  for (Change c : {Change{"POST", "/api/workers", R"({"program":"exit-with"})"},
                   Change{"POST", "/api/workers/1/stop", ""}, Change{"POST", "/api/workers/1/restart", ""},
                   Change{"POST", "/api/workers/1/signal", R"({"signal":"SIGSTOP"})"},
                   Change{"DELETE", "/api/workers/1", ""}}) {
    auto r = d.request(c.method, c.path, c.body, as_reader, false);
    INFO(c.method << " " << c.path << " -> " << r.body);
    CHECK(r.status == 403);
    CHECK(r.json()["error"]["code"] == "forbidden");
  }
  auto w = d.worker(1);
  CHECK(w["state"] == "running");
  CHECK(w["restarts"] == 0);
  CHECK(d.get("/api/workers").json()["workers"].size() == 1);
  // The admin token still sees the value.
  CHECK(d.get("/api/programs").body.find("hunter2") != std::string::npos);
  // The dashboard link opened with the read token is a read-only session.
  auto link = d.request("GET", "/?token=read-only-token-123", "", {}, false);
  CHECK(link.status == 303);
  CHECK(link.headers["Set-Cookie"].find("forkwatch_token=read-only-token-123") != std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST_CASE("forkwatch reaches the daemon over its socket with no token", "[integration]") {
  const std::string dir = open_dir();
  const std::string sock = dir + "/forkwatch.sock";
  Daemon d({.config = R"({"programs":[{"name":"keep","command":["exit-with","--sleep"]}]})",
            .args = {"--socket", sock}});
  REQUIRE(d.wait_state(1, "running"));
  std::string out, err;
  int status = workers_support::run_status({bin("forkwatch"), "--socket", sock, "status"}, &out, &err);
  INFO(out << err);
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(out.find("keep") != std::string::npos);
  CHECK(out.find("running") != std::string::npos);
  status = workers_support::run_status({"/usr/bin/env", "FORKWATCH_SOCKET=" + sock, bin("forkwatch"), "stop", "1"},
                                       &out, &err);
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(d.wait_state(1, "stopped"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("bad access flags: one clear line and exit 2", "[integration]") {
  const std::string dir = make_temp_dir("fw-badaccess");
  std::ofstream(dir + "/empty");
  std::ofstream(dir + "/notasocket") << "x";
  struct Case {
    std::vector<std::string> args;
    std::string line;
  };
  for (const Case& c : std::vector<Case>{
           {{"--socket-group", "no-such-group-here"}, "--socket-group no-such-group-here: no such group"},
           {{"--read-token-file", dir + "/empty"}, "token file " + dir + "/empty: is empty"},
           {{"--token-file", dir + "/empty"}, "token file " + dir + "/empty: is empty"},
           {{"--socket", dir + "/" + std::string(120, 's')}, "longer than 107 bytes"},
           {{"--socket", dir + "/missing/dir/forkwatch.sock"}, "bind(" + dir + "/missing/dir/forkwatch.sock)"},
           {{"--socket", dir + "/notasocket"}, "exists and is not a socket"},
       }) {
    auto [code, err] = refused_start(c.args);
    INFO(c.args[0] << " " << c.args[1] << " -> " << err);
    CHECK(code == 2);
    CHECK(err.find(c.line) != std::string::npos);
    CHECK(std::count(err.begin(), err.end(), '\n') == 1);
  }
  std::filesystem::remove_all(dir);
}
