// Every process the kernel reports (issue 15), as a user sees it through the
// API: lifetimes of processes too short for any sample, grandchildren that
// the daemon never reaps, a forced loss that is counted and repaired, and the
// tree of an instant after its worker is gone. Needs root (the proc connector).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <signal.h>

#include "daemon_harness.h"

using namespace fwtest;

namespace {

int64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

Json lifetimes(const Daemon& d, const std::string& query) {
  auto r = d.get("/api/lifetimes?" + query);
  REQUIRE(r.status == 200);
  return r.json();
}

// Starts a raw command worker that is not restarted.
int64_t start_sh(const Daemon& d, const std::string& script) {
  auto r = d.post("/api/workers", Json{{"command", {"/bin/sh", "-c", script}}, {"restart", "no"}}.dump());
  REQUIRE(r.status == 201);
  return r.json()["id"];
}

// Every row of a worker's lifetimes (up to 1000).
Json rows_of(const Daemon& d, int64_t worker) {
  return lifetimes(d, "worker=" + std::to_string(worker) + "&limit=1000")["rows"];
}

size_t count_comm(const Json& rows, const std::string& comm, bool ended_only = true) {
  size_t n = 0;
  for (const auto& r : rows)
    if (r["comm"] == comm && (!ended_only || !r["exited_ns"].is_null())) ++n;
  return n;
}

const Json* node_with_comm(const Json& nodes, const std::string& comm) {
  for (const auto& n : nodes) {
    if (n["comm"] == comm) return &n;
    if (const Json* c = node_with_comm(n["children"], comm)) return c;
  }
  return nullptr;
}

}  // namespace

TEST_CASE("health says the proc connector is on, or why not with --no-process-events", "[integration]") {
  {
    Daemon d;
    const Json h = d.get("/api/health").json();
    CHECK(h["process_events"] == "proc_connector");
    // A count, not necessarily 0: the connector hears every fork on the
    // machine, and ctest under ASan beside other tests lost one at start.
    // The gap tests check that a loss is counted and marked.
    CHECK(h["process_events_lost"].is_number_unsigned());
  }
  Daemon off({.args = {"--no-process-events"}});
  const Json h = off.get("/api/health").json();
  CHECK(h["process_events"] == "sampling");
  CHECK(h["process_events_reason"] == "--no-process-events");
}

TEST_CASE("200 /bin/true runs under a worker are 200 lifetimes with argv and status 0", "[integration]") {
  Daemon d({.args = {"--allow-commands"}});
  // Shell builtins only, so that the worker's shell forks nothing but the 200.
  const int64_t id =
      start_sh(d, "i=0; while [ $i -lt 200 ]; do /bin/true; i=$((i+1)); done; exec sleep 30");
  const pid_t main_pid = d.worker(id)["pid"];
  auto runs = [&](const Json& rows) {
    size_t n = 0;
    for (const auto& r : rows)
      if (r["ppid"] == main_pid && !r["exited_ns"].is_null()) ++n;
    return n;
  };
  auto lost = [&] { return d.get("/api/health").json()["process_events_lost"].get<uint64_t>(); };
  auto shell_done = [&](const Json& rows) {
    for (const auto& r : rows)
      if (r["pid"] == main_pid && r["argv"] == Json::array({"sleep", "30"})) return true;
    return false;
  };
  Json rows;
  REQUIRE(wait_until([&] {
    rows = rows_of(d, id);
    if (runs(rows) >= 200) return true;
    // Every daemon's connector hears every fork on the machine; with other
    // tests forking by the thousand, events can be lost. Then some runs
    // cannot be known, and the loss is counted.
    return lost() > 0 && shell_done(rows);
  }));
  size_t with_argv = 0, argv_lost = 0, unknown = 0;
  for (const auto& r : rows) {
    if (r["ppid"] != main_pid || r["exited_ns"].is_null()) continue;
    CHECK(r["worker_id"] == id);
    CHECK_FALSE(r["reaped_by_daemon"].get<bool>());
    if (r["description"] == "unknown (events lost)") {
      ++unknown;
      continue;
    }
    CHECK(r["raw_status"] == 0);
    CHECK(r["description"] == "exited 0");
    if (r["argv"] == Json::array({"/bin/true"}) && r["comm"] == "true") ++with_argv;
    else if (r["argv_lost"] == true) ++argv_lost;
  }
  // The daemon reads each run's argv from /proc when its exec event comes,
  // at SCHED_FIFO, before the shell can reap it. On a loaded machine (other
  // daemons at SCHED_FIFO hearing every fork, a build, ASan's slower loop)
  // a /bin/true (0.9 ms) can be a zombie by then: its argv is marked lost
  // and counted; an event can be lost too: the run's end is "unknown" and
  // the loss counted. Nothing is silent: what is not known is counted.
  CHECK(with_argv + argv_lost + unknown == runs(rows));
  CHECK(d.get("/api/health").json()["process_events_stats"]["argv_lost"].get<uint64_t>() >= argv_lost);
  if (runs(rows) != 200 || unknown > 0) CHECK(lost() > 0);
#if defined(__SANITIZE_ADDRESS__)
  CHECK(with_argv > 0);
#else
  // Measured: 0 lost of 200 alone, 2-4 with a second run and a build beside
  // it. A reader that missed argv would lose all of them.
  CHECK(with_argv >= 150);
#endif
  // The worker's main process is alive, with the argv of its last exec.
  // (Alive rows are written within a tick or two of their last change.)
  Json alive;
  CHECK(wait_until([&] {
    alive = lifetimes(d, "worker=" + std::to_string(id) + "&alive=true")["rows"];
    return alive.size() == 1 && alive[0]["argv"] == Json::array({"sleep", "30"});
  }));
  REQUIRE(alive.size() == 1);
  CHECK(alive[0]["exited_ns"].is_null());
  CHECK(alive[0]["pid"] == d.worker(id)["pid"]);
}

TEST_CASE("a grandchild reaped by its own parent has its lifetime and its exit status", "[integration]") {
  Daemon d({.args = {"--allow-commands"}});
  // The worker's child forks a grandchild that exits 7; the child waits for it.
  const int64_t id = start_sh(d, "sh -c 'sh -c \"exit 7\"; exit 0'; sleep 30");
  const pid_t main_pid = d.worker(id)["pid"];
  Json rows;
  const Json* grandchild = nullptr;
  REQUIRE(wait_until([&] {
    rows = rows_of(d, id);
    grandchild = nullptr;
    for (const auto& r : rows)
      if (r["raw_status"] == 7 << 8) grandchild = &r;
    if (!grandchild) return false;
    // ... and its parent has ended too (its exit may come a moment later).
    for (const auto& r : rows)
      if (r["pid"] == (*grandchild)["ppid"] && !r["raw_status"].is_null()) return true;
    return false;
  }));
  INFO("rows: " << rows.dump());
  const Json health = d.get("/api/health").json();
  CHECK((*grandchild)["description"] == "exited 7");
  // Its argv is read from /proc when its exec event is handled; under load
  // (seen once: ASan, ctest -j2 and a CPU hog) that can be after it exited.
  // Then the row says argv_lost and the loss is counted: never a wrong argv
  // unmarked.
  if ((*grandchild)["argv_lost"] == true) CHECK(health["process_events_stats"]["argv_lost"].get<uint64_t>() > 0);
  else CHECK((*grandchild)["argv"] == Json::array({"sh", "-c", "exit 7"}));
  CHECK_FALSE((*grandchild)["reaped_by_daemon"].get<bool>());
  CHECK((*grandchild)["wait_id"].is_null());
  // Its parent is the worker's child, not the worker and not the daemon.
  const int64_t parent = (*grandchild)["ppid"];
  CHECK(parent != main_pid);
  bool parent_is_child_of_main = false;
  for (const auto& r : rows)
    if (r["pid"] == parent && r["ppid"] == main_pid) parent_is_child_of_main = r["raw_status"] == 0;
  // Unless events were lost (counted): then who forked whom may not be known.
  CHECK((parent_is_child_of_main || health["process_events_lost"].get<uint64_t>() > 0));
}

TEST_CASE("the worker's main process links to its wait_status row once reaped", "[integration]") {
  Daemon d({.args = {"--allow-commands"}});
  const int64_t id = start_sh(d, "exit 5");
  REQUIRE(d.wait_state(id, "exited"));
  Json row;
  REQUIRE(wait_until([&] {
    const Json rows = rows_of(d, id);
    if (rows.empty() || rows[0]["wait_id"].is_null()) return false;
    row = rows[0];
    return true;
  }));
  CHECK(row["reaped_by_daemon"] == true);
  CHECK(row["raw_status"] == 5 << 8);
  const Json hist = d.get("/api/history?worker=" + std::to_string(id)).json()["rows"];
  REQUIRE_FALSE(hist.empty());
  CHECK(row["wait_id"] == hist[0]["id"]);
  CHECK(row["raw_status"] == hist[0]["raw_status"]);
}

TEST_CASE("a forced overrun gives a gap with a count, and the tree is right afterwards", "[integration]") {
  const std::string dir = make_temp_dir("fw-overrun");
  const std::string fifo = dir + "/hold", go = dir + "/go", done = dir + "/done";
  REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
  // A receive buffer of a few events; the loop held while 300 processes come and go.
  Daemon d({.args = {"--allow-commands"},
            .env = {{"FORKWATCH_TEST_PROC_RCVBUF", "2048"}, {"FORKWATCH_TEST_HOLD_LOOP", fifo}}});
  const int64_t id = start_sh(d, "while [ ! -e " + go + " ]; do sleep 0.01; done; for i in $(seq 300); do /bin/true; done; "
                                 "sleep 30 & sleep 30 & sleep 30 & touch " + done + "; wait");
  const pid_t main_pid = d.worker(id)["pid"];
  const int w = ::open(fifo.c_str(), O_WRONLY | O_CLOEXEC);
  REQUIRE(w >= 0);
  REQUIRE(::write(w, "h", 1) == 1);
  REQUIRE(wait_until([&] { return d.stderr_text().find("test hook: loop thread held") != std::string::npos; }));
  std::ofstream(go) << "";
  REQUIRE(wait_until([&] { return std::filesystem::exists(done); }));
  REQUIRE(::write(w, "r", 1) == 1);
  ::close(w);

  REQUIRE(wait_until([&] { return d.get("/api/health").json()["process_events_lost"].get<int64_t>() > 0; }));
  // The gap row reaches the database through the store's writer, after the
  // count. The connector hears the whole machine: a drain that sees another
  // CPU's sequence jump before the kernel's ENOBUFS records a "sequence" gap
  // first, so the overrun is looked for among them.
  Json page;
  REQUIRE(wait_until([&] {
    page = lifetimes(d, "worker=" + std::to_string(id));
    for (const auto& g : page["gaps"])
      if (g["reason"] == "overrun") return true;
    return false;
  }));
  uint64_t counted = 0;
  for (const auto& g : page["gaps"]) {
    counted += g["lost"].get<uint64_t>();
    CHECK((g["reason"] == "overrun" || g["reason"] == "sequence"));
  }
  CHECK(counted > 0);
  // The three sleepers and their shell are alive, whether their forks came
  // through or were found by the re-read of /proc. Their rows are written
  // by the store in batches: the shell's can land in a later commit than
  // the sleepers' (two clean-clone runs saw 3 of 4 when the test checked
  // once the sleepers were there), so the wait is for all four.
  Json alive;
  const bool all_alive = wait_until([&] {
    alive = lifetimes(d, "worker=" + std::to_string(id) + "&alive=true")["rows"];
    return count_comm(alive, "sleep", false) == 3 && alive.size() == 4;
  });
  INFO("alive: " << alive.dump() << "\ngaps: " << page["gaps"].dump() << "\nall rows: " << rows_of(d, id).dump());
  REQUIRE(all_alive);
  Json tree;
  REQUIRE(wait_until([&] {
    tree = d.get("/api/tree?at=" + std::to_string(now_ns())).json();
    const Json* sh = find_node(tree, main_pid);
    return sh && (*sh)["children"].size() == 3;
  }));
  for (const auto& c : (*find_node(tree, main_pid))["children"]) CHECK(c["comm"] == "sleep");
  std::filesystem::remove_all(dir);
}

TEST_CASE("tree?at= of an instant when a since-stopped worker ran shows its processes", "[integration]") {
  Daemon d({.args = {"--allow-commands"}});
  const int64_t id = start_sh(d, "sleep 30 & sleep 31 & wait");
  REQUIRE(wait_until([&] { return count_comm(rows_of(d, id), "sleep", false) == 2; }));
  const int64_t then = now_ns();
  REQUIRE(d.post("/api/workers/" + std::to_string(id) + "/stop", "{}").status == 200);
  REQUIRE(d.wait_state(id, "stopped"));
  REQUIRE(wait_until([&] { return lifetimes(d, "worker=" + std::to_string(id) + "&alive=true")["rows"].empty(); }));

  const Json past = d.get("/api/tree?at=" + std::to_string(then)).json();
  const Json* sh = node_with_comm(past, "sh");
  REQUIRE(sh);
  CHECK((*sh)["worker_id"] == id);
  REQUIRE((*sh)["children"].size() == 2);
  std::set<std::string> argv;
  for (const auto& c : (*sh)["children"]) argv.insert(c["cmdline"].get<std::string>());
  CHECK(argv == std::set<std::string>{"sleep 30", "sleep 31"});
  const Json now = d.get("/api/tree?at=" + std::to_string(now_ns())).json();
  CHECK(node_with_comm(now, "sh") == nullptr);
}

TEST_CASE("lifetimes and tree?at= refuse bad instants, ranges and limits with a 422 that says why",
          "[integration]") {
  Daemon d({.args = {"--allow-commands"}});
  start_sh(d, "exec sleep 30");
  REQUIRE(wait_until([&] { return !lifetimes(d, "limit=1")["rows"].empty(); }));
  const std::string future = std::to_string(now_ns() + 3600'000'000'000);
  for (auto [path, code] : {std::pair{"/api/tree?at=yesterday", "invalid_value"},
                            {"/api/tree?at=2026-13-01T00:00:00Z", "invalid_value"},
                            {"/api/tree?at=1", "before_history"},
                            {"/api/tree?at=2001-01-01T00:00:00Z", "before_history"},
                            {"/api/lifetimes?since=20&until=10", "invalid_value"},
                            {"/api/lifetimes?limit=0", "invalid_value"},
                            {"/api/lifetimes?limit=100000", "invalid_value"},
                            {"/api/lifetimes?alive=maybe", "invalid_value"},
                            {"/api/lifetimes?since=soon", "invalid_value"}}) {
    INFO(path);
    auto r = d.get(path);
    CHECK(r.status == 422);
    CHECK(r.json()["error"]["code"] == code);
  }
  auto r = d.get("/api/tree?at=" + future);
  CHECK(r.status == 422);
  CHECK(r.json()["error"]["code"] == "in_future");
  CHECK(r.json()["error"]["message"].get<std::string>().find("future") != std::string::npos);
  CHECK(d.get("/api/tree?at=" + std::to_string(now_ns())).status == 200);
}

TEST_CASE("a thread-spawner worker's 8 threads are thread lifetimes with names and times after it exits",
          "[integration]") {
  Daemon d({.args = {"--allow-commands"}});
  const std::string spawner = std::string(FORKWATCH_BIN_DIR) + "/thread-spawner";
  auto started = d.post("/api/workers", Json{{"command", {spawner, "--threads", "8"}}, {"restart", "no"}}.dump());
  REQUIRE(started.status == 201);
  const int64_t id = started.json()["id"];
  // Its process row (and so its threads' page) is written once it has lived a tick.
  Json alive;
  REQUIRE(wait_until([&] {
    alive = lifetimes(d, "worker=" + std::to_string(id) + "&alive=true")["rows"];
    return alive.size() == 1 && alive[0]["comm"] == "thread-spawner";
  }));
  const int64_t life = alive[0]["id"];
  const std::string page = "/api/lifetimes/" + std::to_string(life) + "/threads";
  REQUIRE(wait_until([&] { return d.get(page).json()["rows"].size() >= 8; }));
  REQUIRE(d.post("/api/workers/" + std::to_string(id) + "/stop", "{}").status == 200);
  REQUIRE(d.wait_state(id, "stopped"));
  // The spawner's own lifetime, by its id: under a sanitizer build its exit
  // forks LeakSanitizer's tracer, a second process of the worker.
  Json process, threads;
  REQUIRE(wait_until([&] {
    process = Json();
    const Json all = lifetimes(d, "worker=" + std::to_string(id));
    for (const auto& row : all["rows"])
      if (row["id"] == life) process = row;
    threads = d.get(page).json()["rows"];
    if (process.is_null() || process["exited_ns"].is_null() || threads.size() < 8) return false;
    for (const auto& t : threads)
      if (t["exited_ns"].is_null()) return false;
    return true;
  }));
  std::set<std::string> names;
  for (const auto& t : threads) {
    INFO(t.dump());
    names.insert(t["name"].get<std::string>());
    CHECK(t["lifetime_id"] == life);
    CHECK(t["pid"] == process["pid"]);
    CHECK(t["tid"] != t["pid"]);
    CHECK(t["first_name"] == "thread-spawner");
    CHECK(t["created_ns"].get<int64_t>() >= process["forked_ns"].get<int64_t>());
    CHECK(t["exited_ns"].get<int64_t>() >= t["created_ns"].get<int64_t>());
    CHECK(t["exited_ns"].get<int64_t>() <= process["exited_ns"].get<int64_t>());
  }
  for (int i = 1; i <= 8; ++i) CHECK(names.count("spawn-" + std::to_string(i)) == 1);
  CHECK(threads[0]["id"].get<int64_t>() > threads[threads.size() - 1]["id"].get<int64_t>());  // newest first
  // Paged like the other lists.
  const Json first = d.get(page + "?limit=3").json();
  REQUIRE(first["rows"].size() == 3);
  const Json next = d.get(page + "?limit=100&before=" + std::to_string(first["next_before"].get<int64_t>())).json();
  CHECK(next["rows"].size() == threads.size() - 3);
  // Bad ids and limits say what was wrong.
  for (auto [path, status, code] : {std::tuple{"/api/lifetimes/abc/threads", 400, "invalid_id"},
                                    {"/api/lifetimes/999999999/threads", 404, "not_found"}}) {
    INFO(path);
    auto r = d.get(path);
    CHECK(r.status == status);
    CHECK(r.json()["error"]["code"] == code);
  }
  auto r = d.get(page + "?limit=0");
  CHECK(r.status == 422);
  CHECK(r.json()["error"]["message"].get<std::string>().find("limit") != std::string::npos);
}

namespace {

uint64_t samples_taken(const Daemon& d) {
  const std::string text = d.get("/metrics").body;
  const std::string key = "\nforkwatch_samples_total ";
  const size_t at = text.find(key);
  REQUIRE(at != std::string::npos);
  return std::stoull(text.substr(at + key.size()));
}

}  // namespace

TEST_CASE("the live tree shows a process forked a moment ago without waiting for the next sample",
          "[integration]") {
  // Samples 600 s apart: the one the daemon takes as it starts is the last
  // until the test is over, and stays fresh enough for a tree request.
  Daemon d({.args = {"--allow-commands", "--sample-ms", "600000"}});
  const std::string fifo = d.state_dir() + "/go";
  REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
  // The worker waits on the fifo, then forks a child that sleeps.
  const int64_t id = start_sh(d, "read line < " + fifo + "; sleep 60 & wait");
  const pid_t main_pid = d.worker(id)["pid"];
  REQUIRE(d.get("/api/tree").status == 200);
  const uint64_t samples = samples_taken(d);
  {
    int fd = open(fifo.c_str(), O_WRONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    REQUIRE(write(fd, "go\n", 3) == 3);
    close(fd);
  }
  const Json* child = nullptr;
  Json tree;
  const bool seen = wait_until([&] {
    tree = d.get("/api/tree").json();
    const Json* sh = nullptr;
    std::function<void(const Json&)> find = [&](const Json& nodes) {
      for (const auto& n : nodes) {
        if (n["pid"] == main_pid) sh = &n;
        find(n["children"]);
      }
    };
    find(tree);
    child = nullptr;
    if (sh)
      for (const auto& c : (*sh)["children"])
        if (c["cmdline"] == "sleep 60") child = &c;
    return child != nullptr;
  });
  INFO("tree: " << tree.dump());
  REQUIRE(seen);
  CHECK((*child)["comm"] == "sleep");
  CHECK((*child)["ppid"] == main_pid);
  CHECK(samples_taken(d) == samples);  // no /proc sample brought it
  // Its exit leaves the live tree the same way.
  const pid_t sleeper = (*child)["pid"];
  REQUIRE(kill(sleeper, SIGKILL) == 0);
  CHECK(wait_until([&] { return d.get("/api/tree").json().dump().find("\"pid\":" + std::to_string(sleeper) + ",") ==
                                std::string::npos; }));
  CHECK(samples_taken(d) == samples);
}
