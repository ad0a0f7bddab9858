#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <filesystem>
#include <string>

#include "temp_dir.h"
#include "database.h"
#include "store.h"

using namespace forkwatch;
using namespace forkwatch::db;
using fwtest::TempDir;

namespace {

// The child: publishes a storm in rounds of 500, and after each flush reports
// through the pipe how many events are committed. Never returns.
[[noreturn]] void storm_until_killed(const std::string& path, int report_fd) {
  Result<std::unique_ptr<Store>> store = Store::open(path);
  if (!store) _exit(2);
  uint64_t id = 0;
  for (int round = 0; round < 20'000; ++round) {  // bounded: ~10 M events, far past any kill
    for (int i = 0; i < 500; ++i) {
      ++id;
      Event e;
      e.id = id;
      e.kind = EventKind::kExit;
      e.ts_ns = realtime_ns();
      e.worker_id = 1;
      e.pid = static_cast<pid_t>(id);
      WaitRecord w;
      w.ts_ns = e.ts_ns;
      w.pid = e.pid;
      w.worker_id = 1;
      w.status = decode_wait_status(0);
      e.wait = w;
      (*store)->publish(e);
    }
    (*store)->flush();
    if (write(report_fd, &id, sizeof id) != sizeof id) _exit(3);
  }
  _exit(0);
}

// Reads one committed count; 0 on end of file or after the deadline.
uint64_t read_report(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  if (poll(&p, 1, timeout_ms) != 1) return 0;
  uint64_t n = 0;
  if (read(fd, &n, sizeof n) != sizeof n) return 0;
  return n;
}

int64_t int_of(Database& db, const char* sql) {
  Result<int64_t> n = db.query_int64(sql);
  if (!n) FAIL(n.error().message());
  return *n;
}

}  // namespace

TEST_CASE("a store SIGKILLed mid-storm leaves an intact file with every committed row", "[unit]") {
  for (int reports_before_kill : {1, 4, 9}) {
    TempDir dir;
    std::string path = dir.file("forkwatch.db");
    int fds[2];
    REQUIRE(pipe(fds) == 0);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      close(fds[0]);
      storm_until_killed(path, fds[1]);
    }
    close(fds[1]);
    uint64_t committed = 0;
    for (int i = 0; i < reports_before_kill; ++i) {
      uint64_t n = read_report(fds[0], 60'000);
      if (n == 0) break;
      committed = n;
    }
    REQUIRE(kill(pid, SIGKILL) == 0);
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    // Reports written just before the kill are commits too.
    for (uint64_t n; (n = read_report(fds[0], 0)) != 0;) committed = n;
    close(fds[0]);
    INFO("killed after " << reports_before_kill << " reports, " << committed << " committed");
    REQUIRE(WIFSIGNALED(status));
    REQUIRE(WTERMSIG(status) == SIGKILL);
    REQUIRE(committed >= 500);

    {
      Result<Database> db = Database::open(path, OpenOptions{OpenMode::kRead, 5000});
      REQUIRE(db.ok());
      CHECK(*db->query_text("PRAGMA integrity_check") == "ok");
      int64_t rows = int_of(*db, "SELECT count(*) FROM wait_status");
      CHECK(rows >= static_cast<int64_t>(committed));
      CHECK(int_of(*db, "SELECT min(id) FROM wait_status") == 1);
      CHECK(int_of(*db, "SELECT max(id) FROM wait_status") == rows);
      CHECK(int_of(*db, "SELECT count(*) FROM wait_status WHERE pid != id") == 0);
      // A batch commits its wait rows and its events together or not at all.
      CHECK(int_of(*db, "SELECT count(*) FROM events") == rows);
      CHECK(int_of(*db, "SELECT max(id) FROM events") == rows);
    }
    Result<std::unique_ptr<Store>> reopened = Store::open(path);
    REQUIRE(reopened.ok());
    CHECK((*reopened)->last_event_id() >= committed);
  }
}
