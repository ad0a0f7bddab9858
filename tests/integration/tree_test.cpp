// The live process tree as a user sees it through /api/tree: named threads,
// a forking server's children coming and going, CPU where it is burnt, and
// the whole machine from pid 1.
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <set>

#include "daemon_harness.h"

using namespace fwtest;

namespace {

Json tree_of(const Daemon& d, const std::string& scope = "supervised") {
  auto r = d.get("/api/tree?scope=" + scope);
  REQUIRE(r.status == 200);
  return r.json();
}

size_t children_in_tree(const Daemon& d, pid_t pid) {
  const Json tree = tree_of(d);
  const Json* node = find_node(tree, pid);
  return node ? (*node)["children"].size() : 0;
}

}  // namespace

TEST_CASE("a worker with 6 named threads shows the 6 names under its node", "[integration]") {
  Daemon d;
  auto w = d.start({{"program", "thread-spawner"}, {"args", {"--threads", "6"}}});
  REQUIRE(d.wait_state(w["id"], "running"));
  const pid_t pid = d.worker(w["id"])["pid"];
  std::set<std::string> names;
  REQUIRE(wait_until([&] {
    const Json tree = tree_of(d);
    const Json* node = find_node(tree, pid);
    names.clear();
    if (node)
      for (const auto& t : (*node)["threads"]) names.insert(t["name"].get<std::string>());
    return names.size() == 7;  // the main thread and spawn-1..spawn-6
  }));
  for (int i = 1; i <= 6; ++i) CHECK(names.count("spawn-" + std::to_string(i)) == 1);
  CHECK(names.count("thread-spawner") == 1);
}

TEST_CASE("a forking server's per-client children appear and disappear as clients come and go", "[integration]") {
  Daemon d({.args = {"--sample-ms", "100"}});
  auto w = d.start({{"program", "echo-fork"}, {"args", {"--port", "0"}}});
  const int64_t id = w["id"];
  REQUIRE(d.wait_state(id, "running"));
  const pid_t server = d.worker(id)["pid"];
  const int port = echo_port(d, id);
  REQUIRE(port > 0);
  CHECK(children_in_tree(d, server) == 0);

  std::vector<int> clients;
  for (int i = 0; i < 5; ++i) clients.push_back(connect_loopback(port));
  // Each child names itself so the tree tells it from its parent; a sample
  // can catch one between its fork and that rename, so wait for the names.
  Json kids;
  REQUIRE(wait_until([&] {
    const Json tree = tree_of(d);
    const Json* node = find_node(tree, server);
    if (!node) return false;
    kids = (*node)["children"];
    return kids.size() == 5 &&
           std::all_of(kids.begin(), kids.end(), [](const Json& c) { return c["comm"] == "echo-fork-child"; });
  }));
  // Each is the server's, in the worker's process group.
  for (const auto& c : kids) {
    CHECK(c["ppid"] == server);
    CHECK(c["pgid"] == server);
  }
  // Two leave, then the rest.
  close(clients[0]);
  close(clients[1]);
  REQUIRE(wait_until([&] { return children_in_tree(d, server) == 3; }));
  for (size_t i = 2; i < clients.size(); ++i) close(clients[i]);
  REQUIRE(wait_until([&] { return children_in_tree(d, server) == 0; }));
}

TEST_CASE("a busy thread shows CPU and an idle one stays near zero", "[integration]") {
  Daemon d({.args = {"--sample-ms", "250"}});
  auto w = d.start({{"program", "thread-spawner"}, {"args", {"--threads", "2", "--busy-threads", "1"}}});
  REQUIRE(d.wait_state(w["id"], "running"));
  const pid_t pid = d.worker(w["id"])["pid"];
  double busy = 0, idle = 100;
  // Several samples in a row must agree: one lucky sample proves nothing.
  int agreeing = 0;
  REQUIRE(wait_until(
      [&] {
        const Json tree = tree_of(d);
        const Json* node = find_node(tree, pid);
        if (!node) return false;
        for (const auto& t : (*node)["threads"]) {
          if (t["name"] == "spawn-1") busy = t["cpu_percent"];
          if (t["name"] == "spawn-2") idle = t["cpu_percent"];
        }
        agreeing = (busy > 20.0 && idle < 5.0) ? agreeing + 1 : 0;
        return agreeing >= 3;
      },
      30s));
  INFO("busy " << busy << "% idle " << idle << "%");
  CHECK(busy > 20.0);
  CHECK(idle < 5.0);
}

TEST_CASE("scope=all reaches pid 1 and contains the daemon and its workers", "[integration]") {
  Daemon d;
  auto w = d.start({{"program", "exit-with"}, {"args", {"--sleep"}}});
  REQUIRE(d.wait_state(w["id"], "running"));
  const pid_t pid = d.worker(w["id"])["pid"];
  Json all;
  REQUIRE(wait_until([&] {
    all = tree_of(d, "all");
    return find_node(all, pid) != nullptr;
  }));
  const Json* init = find_node(all, 1);
  REQUIRE(init != nullptr);
  CHECK((*init)["ppid"] == 0);
  // The daemon is below pid 1 (directly or through this test), its worker below it.
  const Json* daemon = find_node((*init)["children"], d.pid());
  REQUIRE(daemon != nullptr);
  const Json* worker = find_node((*daemon)["children"], pid);
  REQUIRE(worker != nullptr);
  CHECK((*worker)["worker_id"] == w["id"]);
  CHECK(count_nodes(all) > count_nodes(tree_of(d)));
}
