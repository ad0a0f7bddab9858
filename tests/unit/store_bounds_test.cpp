#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <functional>
#include <string>
#include <thread>

#include "database.h"
#include "event_json.h"
#include "history.h"
#include "retention.h"
#include "schema.h"
#include "store.h"
#include "db_support.h"
#include "temp_dir.h"

using namespace forkwatch;
using namespace forkwatch::db;
using namespace fwtest;  // TempDir and the db_support.h helpers

namespace {



Event event(uint64_t id, EventKind kind, int64_t ts_ns, bool with_wait) {
  Event e;
  e.id = id;
  e.kind = kind;
  e.ts_ns = ts_ns;
  e.worker_id = 1 + static_cast<int64_t>(id % 100);
  e.pid = static_cast<pid_t>(10'000 + id);
  if (kind == EventKind::kState) e.state = "backoff";
  if (kind == EventKind::kRestart) e.detail = "restarting in 1000 ms";
  if (with_wait) {
    WaitRecord w;
    w.ts_ns = ts_ns;
    w.pid = e.pid;
    w.worker_id = e.worker_id;
    w.status = decode_wait_status(W_EXITCODE(1, 0));
    w.rusage.utime_us = 1234;
    w.rusage.maxrss_kb = 3456;
    w.rusage.minflt = 120;
    e.wait = w;
  }
  return e;
}

// What the supervisor emits for one crash of a restarting worker: the exit
// with its wait status, its state, the restart, the new spawn, running.
void publish_crash(Store& store, uint64_t& id, int64_t ts_ns) {
  store.publish(event(++id, EventKind::kExit, ts_ns, true));
  store.publish(event(++id, EventKind::kState, ts_ns, false));
  store.publish(event(++id, EventKind::kRestart, ts_ns, false));
  store.publish(event(++id, EventKind::kSpawn, ts_ns, false));
  store.publish(event(++id, EventKind::kState, ts_ns, false));
}


}  // namespace

TEST_CASE("a store that cannot write holds at most max_queue_items, counts what it drops, and is degraded "
          "until it has caught up",
          "[unit]") {
  TempDir dir;
  const std::string path = dir.file("forkwatch.db");
  StoreOptions options;
  options.busy_timeout_ms = 20;
  options.max_queue_items = 100;
  {
    std::unique_ptr<Store> store = open_store(path, options);
    Database holder = open_db(path);
    REQUIRE(holder.exec("BEGIN IMMEDIATE").ok());
    for (uint64_t id = 1; id <= 300; ++id) store->publish(event(id, EventKind::kExit, realtime_ns(), true));
    Event sample;
    sample.id = 301;
    sample.kind = EventKind::kSample;
    store->publish(sample);  // folded into the id mark, not a loss
    WorkerRow row;
    row.id = 7;
    row.name = "w";
    row.program = "exit-with";
    row.spec = "{}";
    row.created_ns = row.updated_ns = 1;
    store->save_worker(row);  // worker rows always go in
    REQUIRE(wait_for([&] { return store->stats().write_errors >= 1; }));
    StoreStats s = store->stats();
    CHECK(s.queue_depth == 101);
    CHECK(s.items_dropped == 200);
    CHECK(s.wait_rows_dropped == 200);
    CHECK(s.max_queue_items == 100);
    CHECK(s.degraded);
    CHECK(s.degraded_for_ns > 0);
    CHECK_THAT(s.last_error, Catch::Contains("locked"));

    REQUIRE(holder.exec("ROLLBACK").ok());
    REQUIRE(store->flush_for(std::chrono::seconds(10)));
    s = store->stats();
    CHECK_FALSE(s.degraded);
    CHECK(s.wait_rows == 100);
    CHECK(s.worker_rows == 1);
    CHECK(s.last_outage_ns > 0);
    CHECK(s.last_catch_up_ns <= s.last_outage_ns);
    CHECK(int_of(holder, "SELECT max(id) FROM events") == 100);
  }
  // The dropped events' ids, and the folded sample's, are never handed out again.
  std::unique_ptr<Store> reopened = open_store(path);
  CHECK(reopened->last_event_id() == 301);
}

TEST_CASE("retention by age deletes every history row older than the limit, in steps", "[unit]") {
  TempDir dir;
  const std::string path = dir.file("forkwatch.db");
  StoreOptions options;
  options.retention.max_age_ns = 86'400'000'000'000;  // a day
  options.retention.batch_rows = 100;
  std::unique_ptr<Store> store = open_store(path, options);
  const int64_t now = realtime_ns();
  uint64_t id = 0;
  for (int i = 0; i < 400; ++i) publish_crash(*store, id, now - 2 * 86'400'000'000'000);
  for (int i = 0; i < 10; ++i) publish_crash(*store, id, now);
  store->flush();
  REQUIRE(wait_for([&] { return store->stats().retention_event_rows == 2000; }));
  CHECK(store->stats().retention_wait_rows == 400);
  Database db = open_db(path);
  CHECK(int_of(db, "SELECT count(*) FROM wait_status") == 10);
  CHECK(int_of(db, "SELECT count(*) FROM events") == 50);
  CHECK(int_of(db, "SELECT min(id) FROM events") == 2001);
}

TEST_CASE("retention by size keeps forkwatch.db within its bound, newest rows kept", "[unit]") {
  TempDir dir;
  const std::string path = dir.file("forkwatch.db");
  StoreOptions options;
  options.retention.max_bytes = 1 << 20;
  std::unique_ptr<Store> store = open_store(path, options);
  uint64_t id = 0;
  const int64_t now = realtime_ns();
  for (int i = 0; i < 12'000; ++i) publish_crash(*store, id, now + i);
  store->flush();
  Database db = open_db(path);
  auto file_bytes = [&] { return int_of(db, "PRAGMA page_count") * int_of(db, "PRAGMA page_size"); };
  REQUIRE(wait_for([&] { return file_bytes() <= options.retention.max_bytes; }));
  CHECK(int_of(db, "PRAGMA auto_vacuum") == 2);
  CHECK(int_of(db, "SELECT max(id) FROM events") == static_cast<int64_t>(id));
  CHECK(int_of(db, "SELECT count(*) FROM wait_status") < 12'000);
  CHECK(int_of(db, "SELECT count(*) FROM wait_status") > 1'000);
  CHECK(store->stats().retention_wait_rows > 0);
  REQUIRE(db.exec("PRAGMA wal_checkpoint(TRUNCATE)").ok());
  struct stat st{};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK(st.st_size <= options.retention.max_bytes);
}

TEST_CASE("an exit costs under 400 bytes of history, replayed as the same JSON", "[unit]") {
  TempDir dir;
  const std::string path = dir.file("forkwatch.db");
  std::unique_ptr<Store> store = open_store(path);
  Database db = open_db(path);
  auto used = [&] {
    return (int_of(db, "PRAGMA page_count") - int_of(db, "PRAGMA freelist_count")) * int_of(db, "PRAGMA page_size");
  };
  store->flush();
  const int64_t before = used();
  uint64_t id = 0;
  constexpr int kExits = 4000;
  for (int i = 0; i < kExits; ++i) publish_crash(*store, id, realtime_ns());
  store->flush();
  const int64_t per_exit = (used() - before) / kExits;
  INFO("bytes per exit: " << per_exit);
  CHECK(per_exit < 400);
  CHECK(int_of(db, "SELECT count(*) FROM events WHERE data != ''") == 0);

  // Replay gives what the old data column held: event_json with the row id.
  Result<std::unique_ptr<History>> history = History::open(path);
  REQUIRE(history.ok());
  Result<std::vector<EventRow>> rows = (*history)->events_after(0, 5);
  REQUIRE(rows.ok());
  REQUIRE(rows->size() == 5);
  Event exit = event(1, EventKind::kExit, 0, true);
  exit.ts_ns = exit.wait->ts_ns = int_of(db, "SELECT ts_ns FROM events WHERE id = 1");
  exit.wait->id = 1;
  CHECK((*rows)[0].data == event_json(exit));
  Event restart = event(3, EventKind::kRestart, int_of(db, "SELECT ts_ns FROM events WHERE id = 3"), false);
  CHECK((*rows)[2].data == event_json(restart));
}

TEST_CASE("one size step after a large batch deletes only what is over the bound, never everything", "[unit]") {
  // A loaded writer commits thousands of rows at once; the step that follows
  // once took "batch + rows just added" oldest rows: all of them.
  TempDir dir;
  Database db = open_db(dir.file("forkwatch.db"));
  REQUIRE(db.exec("PRAGMA auto_vacuum = INCREMENTAL").ok());
  REQUIRE(migrate(db).ok());
  const int kRows = 12'000;
  {
    Result<Transaction> txn = Transaction::begin(db);
    REQUIRE(txn);
    for (int i = 1; i <= kRows; ++i) {
      const std::string ts = std::to_string(1'000'000 + i);
      REQUIRE(db.exec("INSERT INTO wait_status (id, ts_ns, pid, adopted, raw_status, wifexited, wexitstatus, "
                      "wifsignaled, wtermsig, wcoredump, wifstopped, wstopsig, wifcontinued, ru_utime_us, "
                      "ru_stime_us, ru_maxrss_kb, ru_minflt, ru_majflt, ru_nvcsw, ru_nivcsw) VALUES (" +
                      std::to_string(i) + ", " + ts + ", 100, 0, 256, 1, 1, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7)")
                  .ok());
    }
    REQUIRE(txn->commit().ok());
  }
  const int64_t used = (int_of(db, "PRAGMA page_count") - int_of(db, "PRAGMA freelist_count")) *
                       int_of(db, "PRAGMA page_size");
  RetentionLimits limits;
  limits.max_bytes = used * 100 / 95;  // over the 90 % mark: a step deletes down to 80 %
  Result<Retention> r = Retention::prepare(db, limits);
  REQUIRE(r);
  Result<RetentionStep> step = r->step(2'000'000, kRows, 0);
  REQUIRE(step);
  const int64_t left = int_of(db, "SELECT count(*) FROM wait_status");
  INFO("deleted " << step->wait_rows << ", left " << left);
  CHECK(step->wait_rows > 0);
  CHECK(left > kRows / 2);                                       // old: 0
  CHECK(int_of(db, "SELECT max(id) FROM wait_status") == kRows);  // the newest stay
}
