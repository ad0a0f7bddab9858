#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "temp_dir.h"
#include "database.h"
#include "history.h"
#include "schema.h"
#include "store.h"

using namespace forkwatch;
using namespace forkwatch::db;
using fwtest::TempDir;

namespace {

Event wait_event(uint64_t id, pid_t pid, std::optional<int64_t> worker, int raw) {
  Event e;
  e.id = id;
  e.kind = EventKind::kExit;
  e.ts_ns = realtime_ns();
  e.worker_id = worker;
  e.pid = pid;
  WaitRecord w;
  w.ts_ns = e.ts_ns;
  w.pid = pid;
  w.worker_id = worker;
  w.status = decode_wait_status(raw);
  e.wait = w;
  return e;
}

// 60 rows: row i (1-based) has worker i % 3 (0 meaning none), pid 500 + i % 4,
// and is a stop when i % 5 == 0, else an exit with status i % 256.
struct Fixture {
  TempDir dir;
  std::string path = dir.file("forkwatch.db");
  std::unique_ptr<Store> store;
  std::unique_ptr<History> history;
  static constexpr int kRows = 60;

  Fixture() {
    Result<std::unique_ptr<Store>> s = Store::open(path);
    if (!s) FAIL(s.error().message());
    store = std::move(*s);
    for (int i = 1; i <= kRows; ++i) {
      std::optional<int64_t> worker;
      if (i % 3) worker = i % 3;
      int raw = i % 5 == 0 ? W_STOPCODE(SIGSTOP) : W_EXITCODE(i % 256, 0);
      store->publish(wait_event(static_cast<uint64_t>(i), 500 + i % 4, worker, raw));
    }
    store->flush();
    Result<std::unique_ptr<History>> h = History::open(path, 3);
    if (!h) FAIL(h.error().message());
    history = std::move(*h);
  }

  std::vector<WaitRecord> query(const HistoryFilter& f) {
    Result<std::vector<WaitRecord>> rows = history->wait_status(f);
    if (!rows) FAIL(rows.error().message());
    return std::move(*rows);
  }
};

// Designated initializers would trip GCC 12's -Wmissing-field-initializers.
HistoryFilter filter(int limit, std::optional<int64_t> worker = {}, std::optional<pid_t> pid = {},
                     std::optional<int64_t> before = {}) {
  HistoryFilter f;
  f.limit = limit;
  f.worker_id = worker;
  f.pid = pid;
  f.before_id = before;
  return f;
}

std::vector<int64_t> ids_of(const std::vector<WaitRecord>& rows) {
  std::vector<int64_t> ids;
  for (const WaitRecord& r : rows) ids.push_back(r.id);
  return ids;
}

// What the filter should return, computed from the fixture's rule.
std::vector<int64_t> expected(std::optional<int64_t> worker, std::optional<pid_t> pid,
                              std::optional<int64_t> before, int limit) {
  std::vector<int64_t> ids;
  for (int64_t i = Fixture::kRows; i >= 1 && static_cast<int>(ids.size()) < limit; --i) {
    if (worker && i % 3 != *worker) continue;
    if (pid && 500 + i % 4 != *pid) continue;
    if (before && i >= *before) continue;
    ids.push_back(i);
  }
  return ids;
}

}  // namespace

TEST_CASE("history filters by worker, pid and before id, newest first", "[unit]") {
  Fixture f;
  CHECK(ids_of(f.query(filter(1000))) == expected({}, {}, {}, 1000));
  CHECK(ids_of(f.query(filter(1000, 2))) == expected(2, {}, {}, 1000));
  CHECK(ids_of(f.query(filter(1000, {}, 501))) == expected({}, 501, {}, 1000));
  CHECK(ids_of(f.query(filter(1000, 1, 502))) == expected(1, 502, {}, 1000));
  CHECK(ids_of(f.query(filter(5, 1, {}, 30))) == expected(1, {}, 30, 5));
  CHECK(ids_of(f.query(filter(3, {}, 503, 40))) == expected({}, 503, 40, 3));
  CHECK(ids_of(f.query(filter(2, 2, 500, 50))) ==
        expected(2, 500, 50, 2));
  CHECK(f.query(filter(10, 99)).empty());
  CHECK(f.query(filter(10, {}, {}, 1)).empty());
  for (const WaitRecord& r : f.query(filter(1000, 1))) CHECK(r.worker_id == 1);
}

TEST_CASE("history pages with before id cover every row exactly once", "[unit]") {
  Fixture f;
  std::vector<int64_t> seen;
  std::optional<int64_t> before;
  for (int page = 0; page < 100; ++page) {
    std::vector<WaitRecord> rows = f.query(filter(7, {}, {}, before));
    if (rows.empty()) break;
    CHECK(rows.size() <= 7);
    for (const WaitRecord& r : rows) seen.push_back(r.id);
    before = rows.back().id;
  }
  CHECK(seen == expected({}, {}, {}, 1000));
}

TEST_CASE("history refuses a limit outside 1..1000", "[unit]") {
  Fixture f;
  for (int limit : {0, -1, 1001}) {
    Result<std::vector<WaitRecord>> rows = f.history->wait_status(filter(limit));
    REQUIRE_FALSE(rows.ok());
    CHECK_THAT(rows.error().message(), Catch::Contains("limit must be 1..1000"));
  }
  CHECK(f.query(filter(1)).size() == 1);
  CHECK(f.query(filter(1000)).size() == Fixture::kRows);
}

TEST_CASE("recent exits of a worker leave out stops, newest first", "[unit]") {
  Fixture f;
  Result<std::vector<WaitRecord>> exits = f.history->recent_exits(1, 4);
  REQUIRE(exits.ok());
  // Worker 1 rows: 58, 55, 52, 49, 46, 43, 40...; 55 and 40 are stops.
  CHECK(ids_of(*exits) == std::vector<int64_t>{58, 52, 49, 46});
  for (const WaitRecord& r : *exits) CHECK(r.status.exited);
  CHECK(f.history->recent_exits(1, 0)->empty());
  CHECK(f.history->recent_exits(42, 5)->empty());
}

TEST_CASE("history cannot open :memory:, a missing file or an unmigrated one", "[unit]") {
  TempDir dir;
  Result<std::unique_ptr<History>> mem = History::open(":memory:");
  REQUIRE_FALSE(mem.ok());
  CHECK_THAT(mem.error().message(), Catch::Contains("use a database file"));

  std::string missing = dir.file("missing.db");
  Result<std::unique_ptr<History>> none = History::open(missing);
  REQUIRE_FALSE(none.ok());
  CHECK_THAT(none.error().message(), Catch::StartsWith("sqlite3_open(" + missing + ")"));
  CHECK_FALSE(std::filesystem::exists(missing));  // a reader never creates the file

  std::string empty = dir.file("empty.db");
  { REQUIRE(Database::open(empty).ok()); }
  Result<std::unique_ptr<History>> bare = History::open(empty);
  REQUIRE_FALSE(bare.ok());
  CHECK_THAT(bare.error().message(), Catch::Contains("schema version 0, expected"));
}

TEST_CASE("history answers many threads at once while the store writes", "[unit]") {
  Fixture f;
  std::atomic<bool> failed{false};
  std::atomic<bool> writing{true};
  std::thread writer([&] {
    for (int i = Fixture::kRows + 1; i <= Fixture::kRows + 3000; ++i)
      f.store->publish(wait_event(static_cast<uint64_t>(i), 600, 1, 0));
    f.store->flush();
    writing = false;
  });
  std::vector<std::thread> readers;
  for (int t = 0; t < 6; ++t) {
    readers.emplace_back([&, t] {
      for (int q = 0; q < 150; ++q) {
        Result<std::vector<WaitRecord>> rows =
            f.history->wait_status(filter(50, 1 + t % 2));
        if (!rows || rows->empty() ||
            !std::is_sorted(rows->begin(), rows->end(),
                            [](const WaitRecord& a, const WaitRecord& b) { return a.id > b.id; }))
          failed = true;
        if (!f.history->events_after(static_cast<uint64_t>(q), 20)) failed = true;
      }
    });
  }
  for (std::thread& r : readers) r.join();
  writer.join();
  CHECK_FALSE(failed);
  CHECK_FALSE(writing);
  Result<std::vector<WaitRecord>> newest = f.history->wait_status(filter(1));
  REQUIRE(newest.ok());
  CHECK((*newest)[0].id == Fixture::kRows + 3000);
}
