// memory_restart against a real daemon and a real worker whose memory grows
// and shrinks on the test's word. The daemon samples every hour
// (--sample-ms), so the only samples are the ones the test takes through the
// loop's test hook (FORKWATCH_TEST_HOLD_LOOP, "s"): which samples see the
// worker over its limit is decided here, not by timing.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "daemon_harness.h"

using namespace fwtest;

namespace {

constexpr int64_t kLimit = 64LL << 20;
// Holds 96 MiB (written, so resident) while DIR/up exists, frees it when it
// is gone, and says which it holds in DIR/state as "big PID" or "small PID".
constexpr const char* kGrower = R"(
import os, sys, time
d = sys.argv[1]
held, said = None, None
while True:
    want = os.path.exists(d + '/up')
    if want and held is None:
        held = b'\x01' * (96 << 20)
    elif not want and held is not None:
        held = None
    now = 'big' if held is not None else 'small'
    if now != said:
        with open(d + '/state.tmp', 'w') as f:
            f.write(now + ' ' + str(os.getpid()))
        os.rename(d + '/state.tmp', d + '/state')
        said = now
    # Its own rhythm, not a test's wait: the program under test follows the
    # trigger file; the tests wait for its state file with deadlines.
    time.sleep(0.005)
)";

struct Grower {
  std::string dir = make_temp_dir("fw-memory");
  std::string fifo = dir + "/hold";
  int hook = -1;
  Daemon d;
  int64_t id = 0;

  Grower()
      : d({.args = {"--allow-commands", "--sample-ms", "3600000"},
           .env = {{"FORKWATCH_TEST_HOLD_LOOP", make_fifo()}}}) {
    hook = ::open(fifo.c_str(), O_WRONLY | O_CLOEXEC);
    REQUIRE(hook >= 0);
    // restart "no": a memory restart happens whatever the policy says.
    Json w = d.start({{"command", {"python3", "-c", kGrower, dir}}, {"memory_restart", kLimit}, {"restart", "no"}});
    id = w["id"];
    REQUIRE(d.wait_state(id, "running"));
  }
  ~Grower() {
    if (hook >= 0) ::close(hook);
  }
  const std::string& make_fifo() {
    REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
    return fifo;
  }
  pid_t pid() const { return d.worker(id)["pid"].get<pid_t>(); }
  // Grows (true) or shrinks the current process, and waits until it says so.
  void hold(bool big) {
    if (big) std::ofstream(dir + "/up") << "";
    else std::remove((dir + "/up").c_str());
    const std::string want = std::string(big ? "big " : "small ") + std::to_string(pid());
    REQUIRE(wait_until([&] { return read_text(dir + "/state") == want; }));
  }
  Json samples() const { return d.get("/api/workers/" + std::to_string(id) + "/samples").json()["samples"]; }
  // One sample through the hook; returns the tree RSS it recorded.
  int64_t sample() {
    const size_t before = samples().size();
    REQUIRE(::write(hook, "s", 1) == 1);
    Json s;
    REQUIRE(wait_until([&] {
      s = samples();
      return s.size() > before;
    }));
    return s.back()["rss_bytes"].get<int64_t>();
  }
  Json exits() const {
    Json rows = Json::array();
    const Json history = d.get("/api/history?worker=" + std::to_string(id)).json();
    for (const auto& r : history["rows"])
      if (!r["adopted"].get<bool>() && (r["wifexited"].get<bool>() || r["wifsignaled"].get<bool>())) rows.push_back(r);
    return rows;
  }
};

}  // namespace

TEST_CASE("memory_restart: a worker over its limit in two samples in a row is restarted gracefully", "[integration]") {
  Grower g;
  const pid_t first = g.pid();
  g.hold(true);
  CHECK(g.sample() > kLimit);
  CHECK(g.sample() > kLimit);
  // Its stop signal ended it; the row says why, and it runs again as a new process.
  Json rows;
  REQUIRE(wait_until([&] { return !(rows = g.exits()).empty(); }));
  CHECK(rows[0]["cause"] == "memory_restart");
  CHECK(rows[0]["pid"] == first);
  CHECK(rows[0]["wtermsig"] == SIGTERM);
  Json w;
  REQUIRE(wait_until([&] {
    w = g.d.worker(g.id);
    return w["state"] == "running" && w["pid"].is_number() && w["pid"] != first;
  }));
  CHECK(w["restarts"] == 1);
  // One line names the worker, its tree's RSS and the limit.
  const std::string log = g.d.stderr_text();
  CHECK(log.find("over its memory_restart of 64.0 MiB") != std::string::npos);
  CHECK(log.find("worker " + w["name"].get<std::string>() + ": its tree's resident memory") != std::string::npos);
}

TEST_CASE("memory_restart: a spike seen by one sample at a time is no restart", "[integration]") {
  Grower g;
  const pid_t first = g.pid();
  for (int spike = 0; spike < 2; ++spike) {
    g.hold(true);
    CHECK(g.sample() > kLimit);
    g.hold(false);
    CHECK(g.sample() < kLimit);
  }
  // A restart after any one sample would have signalled it by now: every
  // sample's check ran before the next sample was taken, on the same thread.
  CHECK(g.sample() < kLimit);
  CHECK(::kill(first, 0) == 0);
  const Json w = g.d.worker(g.id);
  CHECK(w["pid"] == first);
  CHECK(w["state"] == "running");
  CHECK(w["restarts"] == 0);
  CHECK(g.exits().empty());
}

TEST_CASE("memory_restart: zero at load is exit 2 naming the program and field, a negative one over the API a 422", "[integration]") {
  const std::string dir = make_temp_dir("fw-memory-bad");
  std::ofstream(dir + "/programs.json")
      << R"({"programs": [{"name": "e", "command": ["exit-with", "--sleep"], "memory_restart": 0}]})";
  ProgramRun r = run_program({bin("forkwatchd"), "--listen", "127.0.0.1:0", "--state-dir", dir + "/state", "--config",
                              dir + "/programs.json"});
  CHECK(WIFEXITED(r.status));
  CHECK(WEXITSTATUS(r.status) == 2);
  CHECK(r.output == "forkwatchd: config " + dir + "/programs.json: programs[0] (\"e\"): memory_restart: must be between " +
                        std::to_string(1 << 20) + " and " + std::to_string(1LL << 50) + " (got 0)\n");
  Daemon d;
  const HttpReply bad = d.post("/api/workers", R"({"program": "exit-with", "memory_restart": -1})");
  CHECK(bad.status == 422);
  CHECK(bad.body.find("memory_restart: must be between") != std::string::npos);
  CHECK(d.get("/api/workers").json()["workers"].empty());
  std::filesystem::remove_all(dir);
}
