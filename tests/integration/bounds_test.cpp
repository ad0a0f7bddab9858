// Faults degrade, never kill (issue 20): the output ring and logs replies
// stay bounded in bytes; a database that cannot be written makes the daemon
// say "degraded", costs counted records instead of memory, and a run that
// lost records does not exit 0.
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <string>

#include "daemon_harness.h"

using namespace fwtest;

namespace {

// Writes to `path` until the file system is full.
void fill_up(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  REQUIRE(fd >= 0);
  static const std::string chunk(64 * 1024, 'f');
  while (::write(fd, chunk.data(), chunk.size()) > 0) {
  }
  // Whatever is left, byte by byte.
  while (::write(fd, "f", 1) == 1) {
  }
  ::close(fd);
}

// A tmpfs of a few MiB: a real full disk, unmounted when the test ends.
struct SmallDisk {
  std::string dir = make_temp_dir("fw-small-disk");
  bool mounted = ::mount("tmpfs", dir.c_str(), "tmpfs", 0, "size=4m,mode=0700") == 0;
  ~SmallDisk() {
    if (mounted) ::umount2(dir.c_str(), MNT_DETACH);
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

bool has_line(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos;
}

}  // namespace

TEST_CASE("a full disk under forkwatch.db: health says degraded with the queue depth, losses are counted, "
          "it catches up when space returns, and the exit code says records were lost",
          "[integration]") {
  SmallDisk disk;
  if (!disk.mounted) {
    WARN("mounting a tmpfs needs root (CAP_SYS_ADMIN); not tested here");
    return;
  }
  DaemonOptions o;
  o.state_dir = make_temp_dir("fw-bounds");
  // Only the database is on the small disk; SQLite follows the link and keeps its WAL beside the target.
  REQUIRE(::symlink((disk.dir + "/forkwatch.db").c_str(), (o.state_dir + "/forkwatch.db").c_str()) == 0);
  o.env["FORKWATCH_TEST_STORE_QUEUE_MAX"] = "40";
  Daemon d(o);
  REQUIRE(d.get("/api/health").json()["status"] == "ok");

  fill_up(disk.dir + "/filler");
  // Each short-lived worker is a spawn, an exit and a few state events.
  Json health;
  REQUIRE(wait_until(
      [&] {
        d.start({{"program", "exit-with"}, {"args", {"--code", "3"}}, {"restart", "no"}});
        health = d.get("/api/health").json();
        return health["status"] == "degraded" && health["store"]["dropped"].get<int64_t>() > 0;
      },
      10s));
  INFO(health.dump());
  CHECK(d.get("/api/health").status == 200);
  REQUIRE(health["reasons"].size() >= 1);
  CHECK(health["reasons"][0]["code"] == "store_unwritable");
  CHECK(health["reasons"][0]["queue_depth"].get<int64_t>() > 0);
  CHECK(health["reasons"][0]["queue_limit"] == 40);
  CHECK(health["store"]["queue_depth"].get<int64_t>() <= 40 + 100);  // + worker rows, which always go in
  const std::string metrics = d.get("/metrics").body;
  CHECK(has_line(metrics, "forkwatch_degraded 1"));
  CHECK(has_line(metrics, "forkwatch_degraded_reason{reason=\"store_unwritable\"} 1"));
  CHECK(has_line(metrics, "forkwatch_store_queue_limit 40"));
  CHECK(metrics.find("\nforkwatch_store_dropped_total 0\n") == std::string::npos);

  REQUIRE(::unlink((disk.dir + "/filler").c_str()) == 0);
  REQUIRE(wait_until([&] { return d.get("/api/health").json()["status"] == "ok"; }, 10s));
  Json ok = d.get("/api/health").json();
  CHECK_FALSE(ok.contains("reasons"));
  CHECK(ok["store"]["last_outage_ms"].get<int64_t>() > 0);
  CHECK(ok["store"]["queue_depth"].get<int64_t>() < 40);
  CHECK(has_line(d.get("/metrics").body, "forkwatch_degraded 0"));

  int status = d.terminate();
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 1);
  CHECK_THAT(d.stderr_text(), Catch::Contains("caught up after an outage") && Catch::Contains("lost ") &&
                                  Catch::Contains("exiting 1"));
}

TEST_CASE("a worker printing 16 KiB lines holds at most 1 MiB of ring, a logs reply is bounded and says so",
          "[integration]") {
  DaemonOptions o;
  o.args = {"--allow-commands"};
  Daemon d(o);
  // 200 lines of 16,383 bytes, then one of 100,000, then it waits to be stopped.
  const std::string script =
      "line=$(head -c 16383 /dev/zero | tr '\\0' x); i=0; while [ $i -lt 200 ]; do echo \"$line\"; "
      "i=$((i+1)); done; head -c 100000 /dev/zero | tr '\\0' y; echo; exec sleep 60";
  HttpReply r = d.post("/api/workers", Json{{"command", {"/bin/sh", "-c", script}}, {"restart", "no"}}.dump());
  REQUIRE(r.status == 201);
  const int64_t id = r.json()["id"];
  Json out;
  REQUIRE(wait_until([&] {
    out = d.worker(id)["output"];
    return out["lines"].get<int64_t>() >= 201;
  }));
  INFO(out.dump());
  CHECK(out["ring_bytes"].get<int64_t>() <= 1 << 20);
  CHECK(out["cut_lines"] == 1);
  CHECK(out["cut_bytes"] == 100000 - 16 * 1024);
  CHECK(out["evicted_lines"].get<int64_t>() >= 201 - 64);

  HttpReply logs = d.get("/api/workers/" + std::to_string(id) + "/logs?tail=2000");
  REQUIRE(logs.status == 200);
  CHECK(logs.body.size() < 600 * 1024);
  Json j = logs.json();
  CHECK(j["truncated"] == true);
  REQUIRE(!j["lines"].empty());
  CHECK(j["lines"].back()["cut"] == true);
  CHECK(j["lines"].back()["text"].get<std::string>().size() == 16 * 1024);
  HttpReply small = d.get("/api/workers/" + std::to_string(id) + "/logs?tail=2");
  CHECK(small.json()["truncated"] == false);
  CHECK(small.json()["lines"].size() == 2);
  CHECK(has_line(d.get("/metrics").body, "forkwatch_worker_output_discarded_bytes_total{program=\"\",worker=\"" +
                                             d.worker(id)["name"].get<std::string>() + "\",id=\"" +
                                             std::to_string(id) + "\",reason=\"cut\"} " +
                                             std::to_string(100000 - 16 * 1024)));
}

TEST_CASE("a bad retention flag is one line naming the flag, exit 2", "[integration]") {
  for (const char* bad : {"--history-max-mib=lots", "--history-max-age-days=-3"}) {
    const std::string dir = make_temp_dir("fw-flag");
    const std::string err = dir + "/stderr";
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      int fd = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      dup2(fd, 2);
      execl(bin("forkwatchd").c_str(), "forkwatchd", bad, "--state-dir", dir.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 2);
    std::string text;
    {
      std::ifstream in(err);
      std::getline(in, text);
    }
    std::string flag(bad);
    CHECK_THAT(text, Catch::Contains(flag.substr(0, flag.find('='))));
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
}
