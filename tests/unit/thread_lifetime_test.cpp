// Thread lifetimes (issue 15): a supervised process's threads kept from
// creation to exit, with their names, in order and out of order; stored in
// thread_lifetimes (schema v6), paged by the API's parser, and gone with
// their process's row.
#include <catch2/catch.hpp>
#include <map>
#include <nlohmann/json.hpp>

#include "db_support.h"
#include "history.h"
#include "lifetime.h"
#include "lifetime_api.h"
#include "schema.h"
#include "temp_dir.h"

using namespace forkwatch;
using fwtest::TempDir;

namespace {

constexpr pid_t kDaemon = 1000;
constexpr int64_t kToReal = 1'000'000'000'000;

struct Recorder : LifetimeSink {
  std::map<int64_t, Lifetime> rows;
  std::map<int64_t, ThreadLifetime> threads;  // by id, the latest upsert
  void record_lifetime(const Lifetime& l) override { rows[l.id] = l; }
  void record_gap(const ProcessGap&) override {}
  void record_thread(const ThreadLifetime& t) override { threads[t.id] = t; }
  const ThreadLifetime* by_tid(pid_t tid) {
    for (auto& [id, t] : threads)
      if (t.tid == tid) return &t;
    return nullptr;
  }
};

struct Fixture {
  Recorder sink;
  ProcessEventStats stats;
  LifetimeTracker tracker{sink, stats, [](Event) {}, kDaemon, "/nonexistent-proc"};

  static ProcEvent ev(ProcOp op, pid_t pid, int64_t t, pid_t parent = 0) {
    ProcEvent e;
    e.op = op;
    e.pid = e.tgid = pid;
    e.parent_pid = e.parent_tgid = parent;
    e.mono_ns = t;
    return e;
  }
  // A thread `tid` of process `tgid`: its creation, rename or exit.
  static ProcEvent thread(ProcOp op, pid_t tid, pid_t tgid, int64_t t, std::string comm = "") {
    ProcEvent e = ev(op, tid, t, kDaemon);
    e.tgid = tgid;
    e.comm = std::move(comm);
    return e;
  }
  void apply(std::vector<ProcEvent> batch) { tracker.apply(batch, kToReal); }
  // A worker's main process 2000 named "spawner" (its comm event: no /proc here).
  void start_worker() {
    tracker.note_spawn(7, 2000);
    apply({ev(ProcOp::kFork, 2000, 100, kDaemon), thread(ProcOp::kComm, 2000, 2000, 101, "spawner")});
  }
};

}  // namespace

TEST_CASE("a supervised process's thread forks and exits become thread lifetimes with their names", "[unit]") {
  Fixture f;
  f.start_worker();
  f.apply({Fixture::thread(ProcOp::kFork, 2001, 2000, 200), Fixture::thread(ProcOp::kFork, 2002, 2000, 210),
           Fixture::thread(ProcOp::kComm, 2001, 2000, 220, "spawn-1"),
           Fixture::thread(ProcOp::kExit, 2001, 2000, 300)});
  const ThreadLifetime* t1 = f.sink.by_tid(2001);
  REQUIRE(t1);
  CHECK(t1->pid == 2000);
  CHECK(t1->lifetime_id == f.tracker.live().at(2000).id);
  CHECK(t1->first_name == "spawner");  // as its creator was named
  CHECK(t1->name == "spawn-1");
  CHECK(t1->created_ns == kToReal + 200);
  CHECK(t1->exited_ns == kToReal + 300);
  CHECK(f.sink.by_tid(2002) == nullptr);  // alive and young: not written yet
  REQUIRE(f.tracker.live_threads(2000));
  CHECK(f.tracker.live_threads(2000)->size() == 1);
  CHECK(f.tracker.live().at(2000).threads == 2);
  CHECK(f.tracker.live().at(2000).live_threads == 2);
  // Old enough: the live thread is written before its exit, still alive.
  f.tracker.tick(210 + LifetimeTracker::kAliveWriteNs, 0);
  REQUIRE(f.sink.by_tid(2002));
  CHECK(f.sink.by_tid(2002)->exited_ns == 0);
  CHECK(t1->id < f.sink.by_tid(2002)->id);  // ids in creation order
  // The process ends: a thread still alive ends with it.
  ProcEvent exit = Fixture::ev(ProcOp::kExit, 2000, 500, kDaemon);
  f.apply({exit});
  CHECK(f.sink.by_tid(2002)->exited_ns == kToReal + 500);
  CHECK(f.tracker.live_threads(2000) == nullptr);
  CHECK(f.stats.thread_lifetimes == 2);
}

TEST_CASE("a thread's exit and rename that arrive before its creation complete it when it comes", "[unit]") {
  Fixture f;
  f.start_worker();
  // Another CPU's events: the rename and exit first, in an earlier batch.
  f.apply({Fixture::thread(ProcOp::kComm, 2003, 2000, 230, "late-name"),
           Fixture::thread(ProcOp::kExit, 2003, 2000, 240)});
  CHECK(f.sink.by_tid(2003) == nullptr);
  CHECK(f.tracker.pending() == 2);
  f.apply({Fixture::thread(ProcOp::kFork, 2003, 2000, 220)});
  CHECK(f.tracker.pending() == 0);
  const ThreadLifetime* t = f.sink.by_tid(2003);
  REQUIRE(t);
  CHECK(t->name == "late-name");
  CHECK(t->created_ns == kToReal + 220);
  CHECK(t->exited_ns == kToReal + 240);
  CHECK(f.tracker.live().at(2000).live_threads == 1);
}

TEST_CASE("a thread of a process nobody supervises is not kept", "[unit]") {
  Fixture f;
  f.start_worker();
  f.apply({Fixture::ev(ProcOp::kFork, 3000, 150, 999), Fixture::thread(ProcOp::kFork, 3001, 3000, 200),
           Fixture::thread(ProcOp::kExit, 3001, 3000, 300)});
  f.tracker.tick(LifetimeTracker::kPendingNs + 1000, 0);  // held events for it expire
  CHECK(f.sink.threads.empty());
  CHECK(f.tracker.live_threads(3000) == nullptr);
  CHECK(f.tracker.pending() == 0);
}

TEST_CASE("thread lifetimes are stored, paged newest first, and go with their process's row", "[unit]") {
  TempDir dir;
  const std::string path = dir.file("forkwatch.db");
  auto store = fwtest::open_store(path);
  Lifetime l;
  l.id = 5;
  l.pid = 2000;
  l.worker_id = 1;
  l.comm = "spawner";
  l.forked_ns = 100;
  l.exited_ns = 900;
  l.raw_status = 0;
  store->record_lifetime(l);
  for (int64_t i = 1; i <= 5; ++i) {
    ThreadLifetime t;
    t.id = 10 + i;
    t.lifetime_id = 5;
    t.pid = 2000;
    t.tid = static_cast<pid_t>(2000 + i);
    t.first_name = "spawner";
    t.name = "spawn-" + std::to_string(i);
    t.created_ns = 100 + i;
    t.exited_ns = i == 5 ? 0 : 800;
    store->record_thread(t);
  }
  ThreadLifetime renamed;  // a later upsert of thread 11: its exit
  renamed.id = 11;
  renamed.lifetime_id = 5;
  renamed.pid = 2000;
  renamed.tid = 2001;
  renamed.first_name = "spawner";
  renamed.name = "renamed";
  renamed.created_ns = 101;
  renamed.exited_ns = 850;
  store->record_thread(renamed);
  store->flush();
  CHECK(store->stats().thread_rows == 6);
  store->close();
  // The next daemon continues the numbering.
  auto reopened = fwtest::open_store(path);
  CHECK(reopened->last_thread_id() == 15);
  reopened->close();

  auto history = db::History::open(path);
  REQUIRE(history);
  auto parsed = parse_thread_query(5, {{"limit", "3"}});
  REQUIRE(std::holds_alternative<db::ThreadFilter>(parsed));
  auto page = (*history)->threads(std::get<db::ThreadFilter>(parsed));
  REQUIRE(page);
  REQUIRE(*page);
  auto j = nlohmann::json::parse(threads_page_json(5, **page, 3));
  REQUIRE(j["rows"].size() == 3);
  CHECK(j["rows"][0]["id"] == 15);
  CHECK(j["rows"][0]["exited_ns"].is_null());
  CHECK(j["next_before"] == 13);
  auto rest = (*history)->threads({5, 100, 13});
  REQUIRE(rest);
  REQUIRE((*rest)->size() == 2);
  CHECK((**rest)[1].name == "renamed");
  CHECK((**rest)[1].first_name == "spawner");
  CHECK((**rest)[1].exited_ns == 850);
  auto missing = (*history)->threads({6, 100, std::nullopt});
  REQUIRE(missing);
  CHECK_FALSE(*missing);
  auto bad = parse_thread_query(5, {{"limit", "0"}});
  REQUIRE(std::holds_alternative<ApiError>(bad));
  CHECK(std::get<ApiError>(bad).status == 422);

  db::Database db = fwtest::open_db(path);
  REQUIRE(db.exec("DELETE FROM lifetimes WHERE id = 5").ok());
  CHECK(fwtest::int_of(db, "SELECT count(*) FROM thread_lifetimes") == 0);
}

TEST_CASE("a version 5 file gains thread_lifetimes and keeps its lifetimes", "[unit]") {
  TempDir dir;
  const std::string path = dir.file("forkwatch.db");
  {
    db::Database db = fwtest::open_db(path);
    REQUIRE(db::migrate(db, db::migrations().first(5)).ok());
    REQUIRE(db.exec("INSERT INTO lifetimes (id, pid, ppid, worker_id, comm, argv, argv_lost, forked_ns, execs, "
                    "reaped_by_daemon, core_dumped, from_scan, threads, span_class) "
                    "VALUES (42, 2000, 1, 3, 'old', 'old' || char(0), 0, 100, 0, 0, 0, 0, 8, -1)").ok());
    CHECK(fwtest::int_of(db, "SELECT count(*) FROM sqlite_schema WHERE name = 'thread_lifetimes'") == 0);
  }
  auto store = fwtest::open_store(path);
  CHECK(store->last_lifetime_id() == 42);
  CHECK(store->last_thread_id() == 0);
  store->close();
  db::Database db = fwtest::open_db(path);
  CHECK(fwtest::int_of(db, "PRAGMA user_version") == 6);
  CHECK(fwtest::int_of(db, "SELECT threads FROM lifetimes WHERE id = 42") == 8);
  CHECK(fwtest::int_of(db, "SELECT count(*) FROM thread_lifetimes") == 0);
  auto history = db::History::open(path);
  REQUIRE(history);
  auto rows = (*history)->lifetimes({});
  REQUIRE(rows);
  REQUIRE(rows->size() == 1);
  CHECK((*rows)[0].life.comm == "old");
  auto threads = (*history)->threads({42, 100, std::nullopt});
  REQUIRE(threads);
  REQUIRE(*threads);
  CHECK((*threads)->empty());
}

TEST_CASE("thread rows beyond a full queue are dropped and counted, their ids never handed out again", "[unit]") {
  TempDir dir;
  const std::string path = dir.file("forkwatch.db");
  db::StoreOptions options;
  options.busy_timeout_ms = 20;
  options.max_queue_items = 50;
  {
    auto store = fwtest::open_store(path, options);
    db::Database holder = fwtest::open_db(path);
    REQUIRE(holder.exec("BEGIN IMMEDIATE").ok());  // the disk "cannot be written"
    for (int64_t id = 1; id <= 200; ++id) {
      ThreadLifetime t;
      t.id = id;
      t.lifetime_id = 1;
      t.pid = 2000;
      t.tid = static_cast<pid_t>(3000 + id);
      t.first_name = t.name = "stress";
      t.created_ns = id;
      t.exited_ns = id + 1;
      store->record_thread(t);
    }
    REQUIRE(fwtest::wait_for([&] { return store->stats().write_errors >= 1; }));
    CHECK(store->stats().queue_depth == 50);
    CHECK(store->stats().items_dropped == 150);
    REQUIRE(holder.exec("ROLLBACK").ok());
    REQUIRE(store->flush_for(std::chrono::seconds(10)));
    CHECK(store->stats().thread_rows == 50);
    CHECK(fwtest::int_of(holder, "SELECT count(*) FROM thread_lifetimes") == 50);
  }
  auto reopened = fwtest::open_store(path);
  CHECK(reopened->last_thread_id() == 200);
}
