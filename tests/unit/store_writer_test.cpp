#include <signal.h>
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "db_support.h"
#include "temp_dir.h"
#include "database.h"
#include "history.h"
#include "store.h"

using namespace forkwatch;
using namespace forkwatch::db;
using namespace fwtest;  // TempDir and the db_support.h helpers

namespace {

Event wait_event(uint64_t id, EventKind kind, pid_t pid, std::optional<int64_t> worker, int raw) {
  Event e;
  e.id = id;
  e.kind = kind;
  e.ts_ns = realtime_ns();
  e.worker_id = worker;
  e.pid = pid;
  WaitRecord w;
  w.ts_ns = e.ts_ns;
  w.pid = pid;
  w.worker_id = worker;
  w.adopted = kind == EventKind::kAdopt;
  w.status = decode_wait_status(raw);
  e.wait = w;
  return e;
}

Event plain_event(uint64_t id, EventKind kind, std::optional<int64_t> worker) {
  Event e;
  e.id = id;
  e.kind = kind;
  e.ts_ns = realtime_ns();
  e.worker_id = worker;
  e.pid = 100;
  e.state = kind == EventKind::kState ? "running" : "";
  return e;
}

WorkerRow worker(int64_t id, std::string name, std::string program, std::string spec,
                 bool persistent, Desired desired, int64_t created_ns, int64_t updated_ns) {
  WorkerRow row;
  row.id = id;
  row.name = std::move(name);
  row.program = std::move(program);
  row.spec = std::move(spec);
  row.persistent = persistent;
  row.desired = desired;
  row.created_ns = created_ns;
  row.updated_ns = updated_ns;
  return row;
}

StoreOptions busy_timeout(int ms) {
  StoreOptions options;
  options.busy_timeout_ms = ms;
  return options;
}



}  // namespace

TEST_CASE("every column of a WaitRecord round-trips through the store", "[unit]") {
  TempDir dir;
  std::string path = dir.file("forkwatch.db");
  std::unique_ptr<Store> store = open_store(path);

  std::vector<WaitRecord> sent;
  const int statuses[] = {W_EXITCODE(12, 0), W_EXITCODE(0, SIGSEGV) | WCOREFLAG,
                          W_EXITCODE(0, SIGKILL), W_STOPCODE(SIGSTOP), __W_CONTINUED};
  uint64_t id = 0;
  for (int raw : statuses) {
    ++id;
    Event e = wait_event(id, EventKind::kExit, static_cast<pid_t>(1000 + id), 7, raw);
    e.wait->ts_ns = 1'700'000'000'123'456'789 + static_cast<int64_t>(id);
    Rusage& ru = e.wait->rusage;
    ru.utime_us = 1'000'001;
    ru.stime_us = 2'000'002;
    ru.maxrss_kb = 3'003;
    ru.minflt = 4'004;
    ru.majflt = 5;
    ru.nvcsw = 6'006;
    ru.nivcsw = 7'007 + static_cast<int64_t>(id);
    sent.push_back(*e.wait);
    store->publish(e);
  }
  // An adopted orphan of no worker: NULL worker_id, adopted 1, zero rusage.
  Event orphan = wait_event(++id, EventKind::kAdopt, 4242, std::nullopt, W_EXITCODE(3, 0));
  sent.push_back(*orphan.wait);
  store->publish(orphan);
  store->flush();

  Result<std::unique_ptr<History>> history = History::open(path);
  REQUIRE(history.ok());
  Result<std::vector<WaitRecord>> rows = (*history)->wait_status(HistoryFilter{});
  REQUIRE(rows.ok());
  REQUIRE(rows->size() == sent.size());
  for (size_t i = 0; i < sent.size(); ++i) {
    const WaitRecord& want = sent[i];
    const WaitRecord& got = (*rows)[sent.size() - 1 - i];  // newest first
    INFO("record " << i << " raw " << want.status.raw);
    CHECK(got.id == static_cast<int64_t>(i + 1));
    CHECK(got.ts_ns == want.ts_ns);
    CHECK(got.pid == want.pid);
    CHECK(got.worker_id == want.worker_id);
    CHECK(got.adopted == want.adopted);
    CHECK(got.status.raw == want.status.raw);
    CHECK(got.status.exited == want.status.exited);
    CHECK(got.status.exit_status == want.status.exit_status);
    CHECK(got.status.signaled == want.status.signaled);
    CHECK(got.status.term_sig == want.status.term_sig);
    CHECK(got.status.core_dumped == want.status.core_dumped);
    CHECK(got.status.stopped == want.status.stopped);
    CHECK(got.status.stop_sig == want.status.stop_sig);
    CHECK(got.status.continued == want.status.continued);
    CHECK(got.rusage.utime_us == want.rusage.utime_us);
    CHECK(got.rusage.stime_us == want.rusage.stime_us);
    CHECK(got.rusage.maxrss_kb == want.rusage.maxrss_kb);
    CHECK(got.rusage.minflt == want.rusage.minflt);
    CHECK(got.rusage.majflt == want.rusage.majflt);
    CHECK(got.rusage.nvcsw == want.rusage.nvcsw);
    CHECK(got.rusage.nivcsw == want.rusage.nivcsw);
  }
  // The decoded macros were really set: the sample covers all eight.
  CHECK((*rows)[5].status.exit_status == 12);
  CHECK((*rows)[4].status.core_dumped);
  CHECK((*rows)[2].status.stop_sig == SIGSTOP);
  CHECK((*rows)[1].status.continued);
  CHECK((*rows)[0].adopted);
  CHECK_FALSE((*rows)[0].worker_id.has_value());
}

TEST_CASE("a storm of 10,000 events is all recorded, in publish order, on :memory:", "[unit]") {
  std::unique_ptr<Store> store = open_store(":memory:");
  constexpr int kN = 10'000;
  for (int i = 1; i <= kN; ++i)
    store->publish(wait_event(static_cast<uint64_t>(i), EventKind::kExit, i, i % 5, W_EXITCODE(i % 256, 0)));
  store->flush();
  StoreStats s = store->stats();
  CHECK(s.wait_rows == kN);
  CHECK(s.event_rows == kN);
  CHECK(s.queue_depth == 0);
  CHECK(s.write_errors == 0);
  CHECK(s.batches >= 1);
  CHECK(s.batches < kN);  // batched, not one transaction per event
  CHECK(s.reap_to_record.count == kN);
  CHECK(s.reap_to_record.sum_ns > 0);
}

TEST_CASE("a storm of 10,000 events in a file is contiguous and in publish order", "[unit]") {
  TempDir dir;
  std::string path = dir.file("forkwatch.db");
  constexpr int kN = 10'000;
  {
    std::unique_ptr<Store> store = open_store(path);
    for (int i = 1; i <= kN; ++i) {
      store->publish(wait_event(static_cast<uint64_t>(i), EventKind::kExit, i, 1, W_EXITCODE(0, 0)));
      if (i % 1000 == 0) store->publish(plain_event(0, EventKind::kSample, std::nullopt));
    }
    store->flush();
    CHECK(store->stats().wait_rows == kN);
  }
  Database db = open_db(path);
  CHECK(int_of(db, "SELECT count(*) FROM wait_status") == kN);
  CHECK(int_of(db, "SELECT count(*) FROM wait_status WHERE pid != id") == 0);
  CHECK(int_of(db, "SELECT count(*) FROM events") == kN);
  CHECK(int_of(db, "SELECT max(id) FROM events") == kN);
  // Each exit event points at the wait_status row it became (schema v3).
  CHECK(int_of(db, "SELECT count(*) FROM events WHERE wait_id IS NULL OR wait_id != id") == 0);
}

TEST_CASE("close() commits what is queued without a flush", "[unit]") {
  TempDir dir;
  std::string path = dir.file("forkwatch.db");
  {
    std::unique_ptr<Store> store = open_store(path);
    for (int i = 1; i <= 3000; ++i)
      store->publish(wait_event(static_cast<uint64_t>(i), EventKind::kExit, i, 1, 0));
    store->close();
    store->publish(wait_event(3001, EventKind::kExit, 3001, 1, 0));  // refused, not queued
    CHECK(store->stats().queue_depth == 0);
    CHECK(store->flush_for(std::chrono::milliseconds(1)));
  }
  Database db = open_db(path);
  CHECK(int_of(db, "SELECT count(*) FROM wait_status") == 3000);
}

TEST_CASE("events replay after an id, samples are not stored but their ids are not reused",
          "[unit]") {
  TempDir dir;
  std::string path = dir.file("forkwatch.db");
  {
    std::unique_ptr<Store> store = open_store(path);
    CHECK(store->last_event_id() == 0);
    store->publish(plain_event(1, EventKind::kSpawn, 3));
    store->publish(plain_event(2, EventKind::kSample, std::nullopt));
    store->publish(wait_event(3, EventKind::kExit, 100, 3, W_EXITCODE(0, SIGTERM)));
    store->publish(plain_event(4, EventKind::kState, 3));
    store->publish(plain_event(5, EventKind::kSample, std::nullopt));
    store->flush();
    Result<std::unique_ptr<History>> history = History::open(path);
    REQUIRE(history.ok());
    Result<std::vector<EventRow>> all = (*history)->events_after(0, 100);
    REQUIRE(all.ok());
    REQUIRE(all->size() == 3);
    CHECK((*all)[0].id == 1);
    CHECK((*all)[0].kind == "spawn");
    CHECK((*all)[1].id == 3);
    CHECK((*all)[1].kind == "exit");
    CHECK((*all)[2].id == 4);
    CHECK((*all)[2].kind == "state");
    nlohmann::json exit = nlohmann::json::parse((*all)[1].data);
    CHECK(exit["id"] == 3);
    CHECK(exit["type"] == "exit");
    CHECK(exit["wait"]["id"] == 1);  // the wait_status row it became
    CHECK(exit["wait"]["wtermsig"] == SIGTERM);
    CHECK(nlohmann::json::parse((*all)[2].data)["state"] == "running");

    Result<std::vector<EventRow>> later = (*history)->events_after(3, 100);
    REQUIRE(later.ok());
    REQUIRE(later->size() == 1);
    CHECK((*later)[0].id == 4);
    Result<std::vector<EventRow>> one = (*history)->events_after(0, 1);
    REQUIRE(one.ok());
    CHECK(one->size() == 1);
  }
  std::unique_ptr<Store> reopened = open_store(path);
  CHECK(reopened->last_event_id() == 5);
}

TEST_CASE("workers are upserted by id and the ones not removed come back at open", "[unit]") {
  TempDir dir;
  std::string path = dir.file("forkwatch.db");
  {
    std::unique_ptr<Store> store = open_store(path);
    store->save_worker(worker(1, "a", "exit-with", R"({"v":1})", true, Desired::kRunning, 10, 10));
    store->save_worker(worker(2, "b", "echo-fork", "{}", false, Desired::kRunning, 20, 20));
    store->save_worker(worker(1, "a2", "exit-with", R"({"v":2})", true, Desired::kStopped, 99, 30));
    store->save_worker(worker(3, "c", "exit-with", "{}", true, Desired::kRemoved, 40, 40));
    store->publish(plain_event(1, EventKind::kSpawn, 7));  // a worker that was never saved
    store->flush();
    CHECK(store->stats().worker_rows == 4);
  }
  std::unique_ptr<Store> store = open_store(path);
  std::vector<WorkerRow> rows = store->load_workers();
  REQUIRE(rows.size() == 2);
  CHECK(rows[0].id == 1);
  CHECK(rows[0].name == "a2");
  CHECK(rows[0].spec == R"({"v":2})");
  CHECK(rows[0].desired == Desired::kStopped);
  CHECK(rows[0].created_ns == 10);  // from the first save
  CHECK(rows[0].updated_ns == 30);
  CHECK(rows[1].id == 2);
  CHECK(rows[1].program == "echo-fork");
  CHECK_FALSE(rows[1].persistent);
  CHECK(store->last_worker_id() == 7);
}

TEST_CASE("a row refused by a constraint is skipped and counted, the batch is written", "[unit]") {
  std::unique_ptr<Store> store = open_store(":memory:");
  store->publish(plain_event(1, EventKind::kSpawn, 1));
  store->publish(plain_event(1, EventKind::kSpawn, 1));  // a duplicate id: a bug upstream
  store->publish(wait_event(2, EventKind::kExit, 5, 1, 0));
  store->flush();
  StoreStats s = store->stats();
  CHECK(s.rows_skipped == 1);
  CHECK(s.event_rows == 2);
  CHECK(s.wait_rows == 1);
  CHECK(s.write_errors == 0);
}

TEST_CASE("a batch that fails while another connection holds the lock is retried, not dropped",
          "[unit]") {
  TempDir dir;
  std::string path = dir.file("forkwatch.db");
  std::unique_ptr<Store> store = open_store(path, busy_timeout(20));
  Database holder = open_db(path);
  REQUIRE(holder.exec("BEGIN IMMEDIATE").ok());
  for (int i = 1; i <= 500; ++i)
    store->publish(wait_event(static_cast<uint64_t>(i), EventKind::kExit, i, 1, 0));
  REQUIRE(wait_for([&] { return store->stats().write_errors >= 2; }, std::chrono::seconds(20)));
  CHECK(store->stats().wait_rows == 0);
  CHECK(store->stats().queue_depth == 500);
  REQUIRE(holder.exec("ROLLBACK").ok());
  REQUIRE(store->flush_for(std::chrono::seconds(20)));
  CHECK(store->stats().wait_rows == 500);
  CHECK(int_of(holder, "SELECT count(*) FROM wait_status") == 500);
  CHECK(int_of(holder, "SELECT max(id) FROM wait_status") == 500);
}
