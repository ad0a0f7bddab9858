// Faults degrade, never kill or duplicate (issue 20): a crash loop that cannot
// livelock the loop, spawns that tell the truth when fds run out, a second
// SIGTERM that hurries, one daemon per state dir, and a daemon that ends the
// workers a crashed run left behind. Real daemons, real processes.
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "daemon_harness.h"

using namespace fwtest;

namespace {

size_t fd_count(pid_t pid) {
  size_t n = 0;
  for ([[maybe_unused]] auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) ++n;
  return n;
}

// Alive and not a zombie (an orphan's zombie waits for whoever reaps it).
bool alive(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto close = text.rfind(')');
  return close != std::string::npos && close + 2 < text.size() && text[close + 2] != 'Z';
}

int64_t rows(const Daemon& d, const std::string& where) {
  return query_int(d.db_path(), "SELECT count(*) FROM wait_status WHERE " + where);
}

// Milliseconds a request took, with its reply.
std::pair<double, HttpReply> timed(const std::function<HttpReply()>& fn) {
  auto t0 = std::chrono::steady_clock::now();
  HttpReply r = fn();
  return {std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count(), r};
}

// Runs forkwatchd to its exit with these flags; returns (wait status, stderr).
std::pair<int, std::string> run_daemon(const std::vector<std::string>& flags, std::chrono::milliseconds timeout) {
  const std::string err_path = make_temp_dir("fw-second") + "/stderr";
  std::vector<std::string> args = {bin("forkwatchd")};
  args.insert(args.end(), flags.begin(), flags.end());
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int fd = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 2);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  int status = -1;
  bool done = wait_until([&] { return waitpid(pid, &status, WNOHANG) == pid; }, timeout);
  if (!done) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  }
  REQUIRE(done);
  std::ifstream in(err_path);
  return {status, std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>())};
}

}  // namespace

TEST_CASE("a zero-delay crash loop of 8 workers is paced: commands answer, fds stay flat, the start limit ends it, SIGTERM is prompt",
          "[integration]") {
  Daemon d({.config = R"({"programs":[{"name":"c","command":["exit-with","--code","1"],"instances":8,
      "restart":"always","restart_delay_ms":0,"max_restarts":1000000}]})"});
  const size_t fds_before = fd_count(d.pid());
  double worst_ms = 0;
  bool all_fatal = false;
  Json workers;
  // A command that goes through the loop, every 50 ms while the storm runs.
  const auto deadline = std::chrono::steady_clock::now() + 8s;
  while (!all_fatal && std::chrono::steady_clock::now() < deadline) {
    auto [ms, r] = timed([&] { return d.post("/api/workers/999999/stop"); });
    REQUIRE(r.status == 404);
    worst_ms = std::max(worst_ms, ms);
    workers = d.get("/api/workers").json()["workers"];
    all_fatal = workers.size() == 8;
    for (auto& w : workers) all_fatal = all_fatal && w["state"] == "fatal";
    usleep(50'000);  // the load's shape: one command every 50 ms, not a wait for an event
  }
  INFO("daemon stderr: " << d.stderr_text());
  CHECK(worst_ms < 1000);
  REQUIRE(all_fatal);
  for (auto& w : workers) {
    CHECK(w["fatal_reason"].get<std::string>().find("start limit") != std::string::npos);
    // The initial start and four restarts: StartLimitBurst=5 starts, each one's exit recorded.
    CHECK(w["restarts"] == 4);
  }
  REQUIRE(wait_until([&] { return rows(d, "wexitstatus = 1") == 40; }));
  // Every pipe of every crashed child was read to EOF and closed.
  REQUIRE(wait_until([&] { return fd_count(d.pid()) <= fds_before + 2; }, 3s));

  auto t0 = std::chrono::steady_clock::now();
  int status = d.terminate(2s);
  CHECK(std::chrono::steady_clock::now() - t0 < 2s);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("while fds run out and every spawn fails, commands answer within a second and SIGTERM ends the daemon within 2 s",
          "[integration]") {
  // 40 sleepers take the fd table (RLIMIT_NOFILE 64), so the zero-delay
  // crashers' spawns fail: once, each failure re-queued itself in the same
  // round and the loop never came back (100 % CPU, 503s, SIGTERM ignored).
  Daemon d({.config = R"({"programs":[{"name":"s","command":["exit-with","--sleep"],"instances":40},
      {"name":"c","command":["exit-with","--code","1"],"instances":8,"restart":"always","restart_delay_ms":0,
       "max_restarts":1000000}]})",
            .before_exec = [] {
              rlimit rl{64, 64};
              setrlimit(RLIMIT_NOFILE, &rl);
            }});
  // Until spawns have been failing for a while: some worker says why it cannot start.
  Json seen;
  INFO("workers: " << seen.dump());
  REQUIRE(wait_until([&] {
    auto [ms, r] = timed([&] { return d.post("/api/workers/999999/stop"); });
    REQUIRE(r.status == 404);
    CHECK(ms < 1000);
    seen = d.get("/api/workers").json()["workers"];
    for (auto& w : seen)
      if (w.contains("fatal_reason") && w["fatal_reason"].get<std::string>().find("output") != std::string::npos)
        return true;
    return false;
  }, 5s));
  for (int i = 0; i < 10; ++i) {
    auto [ms, r] = timed([&] { return d.post("/api/workers/999999/stop"); });
    CHECK(r.status == 404);
    CHECK(ms < 1000);
    usleep(50'000);  // commands spread over half a second of the storm, as an operator's would be
  }
  auto t0 = std::chrono::steady_clock::now();
  int status = d.terminate(2s);
  CHECK(std::chrono::steady_clock::now() - t0 < 2s);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("with RLIMIT_NOFILE 64, a 201 means the worker runs and every other start says why it failed",
          "[integration]") {
  Daemon d({.before_exec = [] {
    rlimit rl{64, 64};
    setrlimit(RLIMIT_NOFILE, &rl);
  }});
  std::set<int64_t> created;
  int refused = 0;
  for (int i = 0; i < 100; ++i) {
    auto r = d.post("/api/workers", R"({"program":"exit-with","args":["--sleep"]})");
    INFO("reply " << r.status << ": " << r.body);
    REQUIRE(r.status != 0);  // the API itself keeps its fds
    if (r.status == 201) {
      created.insert(r.json()["id"].get<int64_t>());
      CHECK(r.json()["pid"].get<int>() > 0);
      continue;
    }
    CHECK(r.status >= 500);
    auto msg = r.json()["error"]["message"].get<std::string>();
    CHECK(msg.find("could not start") != std::string::npos);
    CHECK((msg.find("Too many open files") != std::string::npos || msg.find("watch") != std::string::npos));
    ++refused;
  }
  CHECK(!created.empty());
  CHECK(refused > 0);
  // Exactly the 201s exist (a child killed for want of an output watch is
  // "stopping" until reaped, then gone), each of them runs, and none shows
  // an exit it never had.
  Json workers;
  CHECK(wait_until([&] {
    workers = d.get("/api/workers").json()["workers"];
    return workers.size() == created.size();
  }, 5s));
  for (auto& w : workers) {
    CHECK(created.contains(w["id"].get<int64_t>()));
    CHECK(w["state"] == "running");
    CHECK(w["last_exit"].is_null());
    CHECK(alive(w["pid"].get<int>()));
  }
  CHECK(rows(d, "wifexited = 1 AND wexitstatus = 0") == 0);
  int status = d.terminate();
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("a second SIGTERM during a slow shutdown kills what is left, records it, and exits 0 at once",
          "[integration]") {
  Daemon d({.config = R"({"programs":[{"name":"stubborn","command":["exit-with","--ignore-term","--stdout","ready","--sleep"],
      "stop_timeout_ms":60000}]})"});
  REQUIRE(d.wait_state(1, "running"));
  // "ready" comes after SIGTERM is ignored; only then does the first SIGTERM find it stubborn.
  REQUIRE(wait_until([&] { return d.get("/api/workers/1/logs").body.find("ready") != std::string::npos; }, 5s));
  REQUIRE(kill(d.pid(), SIGTERM) == 0);
  REQUIRE(wait_until([&] { return d.stderr_text().find("stopping 1 workers") != std::string::npos; }, 5s));
  auto t0 = std::chrono::steady_clock::now();
  int status = d.terminate(3s);  // the second one
  CHECK(std::chrono::steady_clock::now() - t0 < 2s);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(rows(d, "worker_id = 1 AND wifsignaled = 1 AND wtermsig = 9") == 1);
}

TEST_CASE("a second daemon on the same state dir exits 2 naming the dir and the pid that holds it",
          "[integration]") {
  Daemon d;
  auto [status, err] = run_daemon({"--listen", "127.0.0.1:0", "--state-dir", d.state_dir()}, 5s);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 2);
  CHECK(err.find(d.state_dir()) != std::string::npos);
  CHECK(err.find("pid " + std::to_string(d.pid())) != std::string::npos);
  CHECK(std::count(err.begin(), err.end(), '\n') == 1);
  // The first one never noticed.
  CHECK(d.get("/api/health").status == 200);
}

TEST_CASE("a daemon starting where a SIGKILLed one died ends its workers first, and runs each worker once",
          "[integration]") {
  const std::string config = R"({"programs":[{"name":"cfg","command":["exit-with","--sleep"]}]})";
  auto first = std::make_unique<Daemon>(DaemonOptions{.config = config});
  const std::string state_dir = first->state_dir();
  auto api = first->start({{"program", "exit-with"}, {"args", {"--sleep"}}, {"restart", "always"}});
  REQUIRE(first->wait_state(1, "running"));
  REQUIRE(first->wait_state(api["id"], "running"));
  const pid_t cfg_pid = first->worker(1)["pid"];
  const pid_t api_pid = api["pid"];
  // The record is written at the end of the round the spawn happened in.
  REQUIRE(wait_until([&] {
    std::ifstream in(state_dir + "/live-pids");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return text.find(" " + std::to_string(cfg_pid) + " ") != std::string::npos &&
           text.find(" " + std::to_string(api_pid) + " ") != std::string::npos;
  }, 5s));
  first->kill_hard();
  REQUIRE(alive(cfg_pid));
  REQUIRE(alive(api_pid));

  Daemon second({.config = config, .state_dir = state_dir});
  // Ended before the new daemon announced its port.
  CHECK_FALSE(alive(cfg_pid));
  CHECK_FALSE(alive(api_pid));
  const std::string err = second.stderr_text();
  CHECK(err.find("pid " + std::to_string(cfg_pid)) != std::string::npos);
  CHECK(err.find("pid " + std::to_string(api_pid)) != std::string::npos);
  CHECK(err.find("2 still running and ended") != std::string::npos);
  // One of each: the config's worker (a new id: ids go on from the store) and the restored one.
  Json workers;
  INFO("workers: " << workers.dump() << "\nstderr: " << second.stderr_text());
  REQUIRE(wait_until([&] {
    workers = second.get("/api/workers").json()["workers"];
    return workers.size() == 2 && workers[0]["state"] == "running" && workers[1]["state"] == "running";
  }, 5s));
  for (auto& w : workers) {
    CHECK(w["pid"] != cfg_pid);
    CHECK(w["pid"] != api_pid);
  }
  CHECK(workers[0]["id"] == api["id"]);
  CHECK(workers[1]["name"] == "cfg");
  second.terminate();
  // A clean stop leaves nothing for the next run to find.
  CHECK_FALSE(std::filesystem::exists(state_dir + "/live-pids"));
  first.reset();
}

TEST_CASE("a start is answered only once its worker row is committed, so a daemon SIGKILLed right after restores it",
          "[integration]") {
  auto first = std::make_unique<Daemon>();
  const std::string state_dir = first->state_dir();
  // Another connection holds the write lock: the store can queue, not commit.
  sqlite3* lock = nullptr;
  REQUIRE(sqlite3_open_v2(first->db_path().c_str(), &lock, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK);
  REQUIRE(sqlite3_exec(lock, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);
  std::atomic<bool> answered{false};
  HttpReply reply;
  std::thread client([&] {
    reply = first->post("/api/workers", R"({"program":"exit-with","args":["--sleep"],"restart":"always"})");
    answered = true;
  });
  // The loop has started it; the answer waits for the row.
  REQUIRE(wait_until([&] {
    auto w = first->get("/api/workers").json()["workers"];
    return w.size() == 1 && w[0]["state"] == "running";
  }, 5s));
  CHECK_FALSE(answered);
  REQUIRE(sqlite3_exec(lock, "ROLLBACK", nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(lock);
  client.join();
  REQUIRE(reply.status == 201);
  const int64_t id = reply.json()["id"];
  first->kill_hard();

  Daemon second({.state_dir = state_dir});
  REQUIRE(second.wait_state(id, "running"));
  CHECK(second.get("/api/workers").json()["workers"].size() == 1);
  second.terminate();
  first.reset();
}

TEST_CASE("a recorded pid whose start time differs is never signalled", "[integration]") {
  const std::string state_dir = make_temp_dir("fw-recycled");
  // A live process of ours under a recorded pid with another start time: a recycled pid.
  pid_t bystander = fork();
  REQUIRE(bystander >= 0);
  if (bystander == 0) {
    setpgid(0, 0);
    pause();
    _exit(0);
  }
  std::ofstream(state_dir + "/live-pids") << "7 " << bystander << " " << bystander << " 1\n";
  {
    Daemon d({.state_dir = state_dir});
    CHECK(d.stderr_text().find("is gone (or its pid names another process now): left alone") != std::string::npos);
    CHECK(waitpid(bystander, nullptr, WNOHANG) == 0);  // still running
    d.terminate();
  }
  kill(bystander, SIGKILL);
  waitpid(bystander, nullptr, 0);
  std::filesystem::remove_all(state_dir);
}
