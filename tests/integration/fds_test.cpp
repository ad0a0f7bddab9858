// What each process holds, through GET /api/processes/{pid}/fds, on real
// workers: the fork-per-client server's split of listener and clients, a
// pipe paired between parent and child, an epoll server's one epoll fd, wait
// channels of sleeping threads, and a process that ends while being read.
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <set>
#include <thread>

#include "daemon_harness.h"

using namespace fwtest;

namespace {

Json fds_of(const Daemon& d, pid_t pid) {
  auto r = d.get("/api/processes/" + std::to_string(pid) + "/fds");
  REQUIRE(r.status == 200);
  Json j = r.json();
  REQUIRE(j["pid"] == pid);
  return j["fds"];
}

std::vector<Json> sockets_in(const Json& fds, const std::string& state) {
  std::vector<Json> out;
  for (const auto& f : fds)
    if (f["kind"] == "socket" && f["socket"].is_object() && f["socket"]["state"] == state) out.push_back(f);
  return out;
}

// The worker's children that the tree shows with `comm`, once there are `n`.
std::vector<pid_t> children_named(const Daemon& d, pid_t parent, const std::string& comm, size_t n) {
  std::vector<pid_t> kids;
  REQUIRE(wait_until([&] {
    auto r = d.get("/api/tree?scope=supervised");
    const Json tree = r.json();
    const Json* node = find_node(tree, parent);
    kids.clear();
    if (node)
      for (const auto& c : (*node)["children"])
        if (c["comm"] == comm) kids.push_back(c["pid"]);
    return kids.size() == n;
  }));
  return kids;
}

Json running_worker(const Daemon& d, const Json& request) {
  auto w = d.start(request);
  REQUIRE(d.wait_state(w["id"], "running"));
  return d.worker(w["id"]);
}

}  // namespace

TEST_CASE("echo-fork with three clients: the parent holds the listener only, each child one client and no listener",
          "[integration]") {
  Daemon d({.args = {"--sample-ms", "100"}});
  Json w = running_worker(d, {{"program", "echo-fork"}, {"args", {"--port", "0"}}});
  const pid_t server = w["pid"];
  const int port = echo_port(d, w["id"]);
  std::vector<int> clients;
  for (int i = 0; i < 3; ++i) clients.push_back(connect_loopback(port));
  std::vector<pid_t> kids = children_named(d, server, "echo-fork-child", 3);

  const Json parent = fds_of(d, server);
  auto listeners = sockets_in(parent, "listen");
  REQUIRE(listeners.size() == 1);
  CHECK(listeners[0]["socket"]["local"] == "127.0.0.1:" + std::to_string(port));
  CHECK(listeners[0]["socket"]["family"] == "inet");
  CHECK(listeners[0]["peers"].empty());  // no child kept the listening socket
  CHECK(sockets_in(parent, "established").empty());

  std::set<std::string> remotes;
  for (pid_t kid : kids) {
    const Json fds = fds_of(d, kid);
    CHECK(sockets_in(fds, "listen").empty());
    auto est = sockets_in(fds, "established");
    REQUIRE(est.size() == 1);
    CHECK(est[0]["socket"]["local"] == "127.0.0.1:" + std::to_string(port));
    remotes.insert(est[0]["socket"]["remote"].get<std::string>());
    CHECK(est[0]["peers"].empty());
  }
  CHECK(remotes.size() == 3);  // three different client ports
  for (int c : clients) close(c);
}

TEST_CASE("ipc-pipe: each pipe end names the process at the other end", "[integration]") {
  Daemon d({.args = {"--sample-ms", "100"}});
  Json w = running_worker(d, {{"program", "ipc-pipe"}, {"args", {"--count", "2000", "--delay-ms", "50"}}});
  const pid_t parent = w["pid"];
  std::vector<pid_t> kids;
  REQUIRE(wait_until([&] {
    const Json tree = d.get("/api/tree").json();
    const Json* node = find_node(tree, parent);
    kids.clear();
    if (node)
      for (const auto& c : (*node)["children"]) kids.push_back(c["pid"]);
    return kids.size() == 1;
  }));
  const pid_t child = kids[0];
  auto paired = [&](pid_t self, pid_t other) {
    std::set<std::string> out;
    for (const auto& f : fds_of(d, self))
      if (f["kind"] == "pipe" && f["peers"] == Json::array({other})) out.insert(f["target"].get<std::string>());
    return out;
  };
  // Two pipes, one end each on either side; stdout and stderr, shared with
  // the child too, are paired as well: so at least the two IPC pipes.
  std::set<std::string> a, b;
  REQUIRE(wait_until([&] {
    a = paired(parent, child);
    b = paired(child, parent);
    return a.size() >= 4 && a == b;
  }));
  CHECK(a == b);
}

TEST_CASE("echo-epoll: one epoll descriptor that watches the listener and each client", "[integration]") {
  Daemon d({.args = {"--sample-ms", "100"}});
  Json w = running_worker(d, {{"program", "echo-epoll"}, {"args", {"--port", "0"}}});
  const pid_t pid = w["pid"];
  const int port = echo_port(d, w["id"]);
  std::vector<int> clients;
  for (int i = 0; i < 2; ++i) clients.push_back(connect_loopback(port));
  // echo-epoll accepts, then adds the client to its epoll set: wait for both.
  Json fds;
  std::vector<Json> epolls;
  std::set<int> watched;
  REQUIRE(wait_until([&] {
    fds = fds_of(d, pid);
    epolls.clear();
    for (const auto& f : fds)
      if (f["kind"] == "epoll") epolls.push_back(f);
    if (epolls.size() != 1 || sockets_in(fds, "established").size() != 2) return false;
    watched = epolls[0]["watches"].get<std::set<int>>();
    for (const auto& c : sockets_in(fds, "established"))
      if (!watched.contains(c["fd"].get<int>())) return false;
    return true;
  }));
  CHECK(watched.count(sockets_in(fds, "listen").at(0)["fd"].get<int>()) == 1);
  for (const auto& c : sockets_in(fds, "established")) CHECK(watched.count(c["fd"].get<int>()) == 1);
  for (int c : clients) close(c);
}

TEST_CASE("thread-spawner's sleeping threads say which kernel function they wait in", "[integration]") {
  Daemon d({.args = {"--sample-ms", "100"}});
  Json w = running_worker(d, {{"program", "thread-spawner"}, {"args", {"--threads", "3"}}});
  const pid_t pid = w["pid"];
  REQUIRE(wait_until([&] {
    auto r = d.get("/api/processes/" + std::to_string(pid));
    if (r.status != 200) return false;
    const Json p = r.json();
    if (p["threads"].size() != 4) return false;
    return std::all_of(p["threads"].begin(), p["threads"].end(), [](const Json& t) {
      return t["state"] != "S" || (t["wchan"].is_string() && !t["wchan"].get<std::string>().empty());
    }) && std::any_of(p["threads"].begin(), p["threads"].end(), [](const Json& t) { return t["wchan"].is_string(); });
  }));
  const Json tree = d.get("/api/tree").json();
  const Json* node = find_node(tree, pid);
  REQUIRE(node);
  CHECK((*node)["threads"][0].contains("wchan"));
  CHECK((*node)["fds"].get<int64_t>() >= 3);  // counted by the sampler
}

TEST_CASE("a process that exits while its descriptors are read gets a clean reply every time", "[integration]") {
  Daemon d({.args = {"--sample-ms", "100"}});
  Json w = running_worker(d, {{"program", "echo-fork"}, {"args", {"--port", "0"}}});
  const pid_t server = w["pid"];
  const int port = echo_port(d, w["id"]);
  int statuses_200 = 0, statuses_404 = 0;
  for (int round = 0; round < 5; ++round) {
    int c = connect_loopback(port);
    std::vector<pid_t> kids = children_named(d, server, "echo-fork-child", 1);
    std::thread reader([&] {
      for (int i = 0; i < 20; ++i) {
        auto r = d.get("/api/processes/" + std::to_string(kids[0]) + "/fds");
        // Before the exit a listing, after it a 404 with a JSON error: nothing else.
        REQUIRE((r.status == 200 || r.status == 404));
        REQUIRE(r.json().is_object());
        (r.status == 200 ? statuses_200 : statuses_404)++;
      }
    });
    close(c);  // the child exits while the reader reads
    reader.join();
  }
  CHECK(statuses_200 + statuses_404 == 100);
}

TEST_CASE("bad pids: not a number, not supervised, gone, or a bad scope are 4xx with a JSON error", "[integration]") {
  Daemon d;
  auto code = [&](const std::string& path) {
    auto r = d.get(path);
    INFO(path << " -> " << r.status << " " << r.body);
    REQUIRE(r.json()["error"]["message"].is_string());
    return std::pair{r.status, r.json()["error"]["code"].get<std::string>()};
  };
  CHECK(code("/api/processes/abc/fds") == std::pair{400, std::string("invalid_pid")});
  CHECK(code("/api/processes/0/fds") == std::pair{400, std::string("invalid_pid")});
  CHECK(code("/api/processes/99999999999/fds") == std::pair{400, std::string("invalid_pid")});
  CHECK(code("/api/processes/1/fds") == std::pair{404, std::string("not_found")});  // not supervised
  CHECK(code("/api/processes/4194304/fds?scope=all") == std::pair{404, std::string("not_found")});  // no such pid
  CHECK(code("/api/processes/1/fds?scope=mine") == std::pair{422, std::string("invalid_value")});
  // scope=all reads any process we may read: the daemon's own fds.
  auto self = d.get("/api/processes/" + std::to_string(d.pid()) + "/fds?scope=all");
  CHECK(self.status == 200);
}

TEST_CASE("a worker near its RLIMIT_NOFILE is warned about in its samples", "[integration]") {
  // bash: 20 descriptors allowed, 0..18 held by the sleep it execs into.
  Daemon d({.config = R"({"programs":[{"name":"hog","command":["/bin/bash","-c",
            "ulimit -n 20; for i in $(seq 3 18); do eval \"exec $i</dev/null\"; done; exec sleep 600"]}]})",
            .args = {"--sample-ms", "100"}});
  REQUIRE(wait_until([&] {
    auto ws = d.get("/api/workers").json()["workers"];
    return !ws.empty() && ws[0]["state"] == "running";
  }));
  const int64_t id = d.get("/api/workers").json()["workers"][0]["id"];
  REQUIRE(wait_until([&] {
    auto s = d.get("/api/workers/" + std::to_string(id) + "/samples").json()["samples"];
    return !s.empty() && s.back()["fds"] == 19 && s.back()["fd_warning"] == "near_limit";
  }));
  auto r = d.get("/api/tree");
  const Json tree = r.json();
  const pid_t pid = d.worker(id)["pid"];
  REQUIRE(find_node(tree, pid));
  CHECK((*find_node(tree, pid))["fds"] == 19);
}

TEST_CASE("a worker well below its limit has its count and no warning", "[integration]") {
  Daemon d({.args = {"--sample-ms", "100"}});
  Json w = running_worker(d, {{"program", "thread-spawner"}, {"args", {"--threads", "1"}}});
  REQUIRE(wait_until([&] {
    auto s = d.get("/api/workers/" + std::to_string(w["id"].get<int64_t>()) + "/samples").json()["samples"];
    return !s.empty() && s.back()["fds"].get<int64_t>() >= 3;
  }));
  auto s = d.get("/api/workers/" + std::to_string(w["id"].get<int64_t>()) + "/samples").json()["samples"];
  CHECK(s.back()["fd_warning"].is_null());
}
