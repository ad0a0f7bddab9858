// LifetimeTracker: lifetimes assembled from the kernel's events, in order and
// out of order, attributed by ancestry, re-read after a loss; and the tree at
// an instant from the stored rows.
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <map>
#include <thread>
#include <nlohmann/json.hpp>

#include "db_support.h"
#include "history.h"
#include "lifetime.h"
#include "lifetime_api.h"
#include "temp_dir.h"

using namespace forkwatch;
using fwtest::TempDir;

namespace {

constexpr pid_t kDaemon = 1000;

struct Recorder : LifetimeSink {
  std::map<int64_t, Lifetime> rows;  // by id, the latest upsert
  std::vector<ProcessGap> gaps;
  void record_lifetime(const Lifetime& l) override { rows[l.id] = l; }
  void record_gap(const ProcessGap& g) override { gaps.push_back(g); }
  void record_thread(const ThreadLifetime&) override {}
};

struct Fixture {
  Recorder sink;
  ProcessEventStats stats;
  std::vector<Event> events;
  // A proc root without processes: argv reads fail, as for a process long gone.
  LifetimeTracker tracker{sink, stats, [this](Event e) { events.push_back(std::move(e)); }, kDaemon,
                          "/nonexistent-proc"};
  uint32_t seq = 0;

  ProcEvent ev(ProcOp op, pid_t pid, int64_t t, pid_t parent = 0) {
    ProcEvent e;
    e.op = op;
    e.pid = e.tgid = pid;
    e.parent_pid = e.parent_tgid = parent;
    e.mono_ns = t;
    e.seq = seq++;
    return e;
  }
  void apply(std::vector<ProcEvent> batch) { tracker.apply(batch, 1'000'000'000'000); }
  const Lifetime* by_pid(pid_t pid) {
    for (auto& [id, l] : sink.rows)
      if (l.pid == pid) return &l;
    return nullptr;
  }
};

}  // namespace

TEST_CASE("a worker's tree becomes one lifetime per process with the kernel's exit status", "[unit]") {
  Fixture f;
  f.tracker.note_spawn(7, 2000);
  ProcEvent exit_child = f.ev(ProcOp::kExit, 2001, 300, 2000);
  exit_child.exit_code = 3 << 8;
  ProcEvent exit_main = f.ev(ProcOp::kExit, 2000, 400, kDaemon);
  exit_main.exit_code = SIGKILL;
  f.apply({f.ev(ProcOp::kFork, 2000, 100, kDaemon), f.ev(ProcOp::kFork, 2001, 200, 2000), exit_child, exit_main,
           f.ev(ProcOp::kFork, 3000, 250, 999)});  // someone else's process: not ours
  REQUIRE(f.sink.rows.size() == 2);
  const Lifetime* main = f.by_pid(2000);
  const Lifetime* child = f.by_pid(2001);
  REQUIRE(main);
  REQUIRE(child);
  CHECK(main->worker_id == 7);
  CHECK(child->worker_id == 7);  // by ancestry
  CHECK(child->ppid == 2000);
  CHECK(child->raw_status == 3 << 8);
  CHECK(lifetime_description(*child) == "exited 3");
  CHECK(lifetime_description(*main) == "killed by SIGKILL");
  CHECK(main->reaped_by_daemon);
  CHECK_FALSE(child->reaped_by_daemon);
  CHECK(child->forked_ns == 1'000'000'000'000 + 200);
  CHECK(child->exited_ns == 1'000'000'000'000 + 300);
  CHECK(f.tracker.live().empty());
}

TEST_CASE("lifetimes are assembled from events that arrive out of order", "[unit]") {
  Fixture f;
  f.tracker.note_spawn(1, 2000);
  f.apply({f.ev(ProcOp::kFork, 2000, 100, kDaemon)});
  // Another CPU's exec and exit of a child reach us before its fork does,
  // first in an earlier batch, then within one batch in the wrong order.
  ProcEvent exit = f.ev(ProcOp::kExit, 2001, 300, 2000);
  exit.exit_code = 1 << 8;
  f.apply({f.ev(ProcOp::kExec, 2001, 250), exit});
  CHECK(f.tracker.pending() == 2);
  CHECK(f.by_pid(2001) == nullptr);
  f.apply({f.ev(ProcOp::kExit, 2002, 520, 2000), f.ev(ProcOp::kFork, 2001, 200, 2000),
           f.ev(ProcOp::kFork, 2002, 510, 2000)});
  CHECK(f.tracker.pending() == 0);
  const Lifetime* a = f.by_pid(2001);
  REQUIRE(a);
  CHECK(a->execs == 1);
  CHECK(a->argv_lost);  // its argv could not be read any more
  CHECK(a->raw_status == 1 << 8);
  CHECK(a->exited_ns > a->forked_ns);
  REQUIRE(f.by_pid(2002));
  CHECK(f.by_pid(2002)->exited_ns == 1'000'000'000'000 + 520);
}

TEST_CASE("threads are counted per process, not kept as processes", "[unit]") {
  Fixture f;
  f.tracker.note_spawn(1, 2000);
  ProcEvent t1 = f.ev(ProcOp::kFork, 2005, 110, 2000);
  t1.tgid = 2000;
  ProcEvent t2 = t1;
  t2.pid = 2006;
  ProcEvent t1_exit = f.ev(ProcOp::kExit, 2005, 120);
  t1_exit.tgid = 2000;
  f.apply({f.ev(ProcOp::kFork, 2000, 100, kDaemon), t1, t2, t1_exit});
  REQUIRE(f.tracker.live().count(2000));
  CHECK(f.tracker.live().at(2000).threads == 2);
  CHECK(f.tracker.live().at(2000).live_threads == 2);
  CHECK(f.tracker.live().size() == 1);
}

TEST_CASE("alive lifetimes are written once old enough, a storm reaches SSE as counts per worker", "[unit]") {
  Fixture f;
  f.tracker.note_spawn(1, 2000);
  std::vector<ProcEvent> storm{f.ev(ProcOp::kFork, 2000, 0, kDaemon)};
  for (pid_t p = 3000; p < 3100; ++p) {
    storm.push_back(f.ev(ProcOp::kFork, p, 10 + p, 2000));
    storm.push_back(f.ev(ProcOp::kExit, p, 20 + p, 2000));
  }
  f.apply(storm);
  CHECK(f.sink.rows.size() == 100);  // the 100 that ended; the main is young
  // One by one up to the window's share, then folded into counts at the tick.
  CHECK(f.events.size() == static_cast<size_t>(LifetimeTracker::kPerWindow));
  f.tracker.tick(LifetimeTracker::kAliveWriteNs + 1, 0);
  CHECK(f.sink.rows.size() == 101);
  uint64_t forks = 0, exits = 0, coalesced = 0;
  for (const Event& e : f.events) {
    REQUIRE(e.kind == EventKind::kProcess);
    auto j = nlohmann::json::parse(e.data_json);
    if (!j.contains("count")) {
      (j["op"] == "fork" ? forks : exits) += 1;
      continue;
    }
    ++coalesced;
    CHECK(j["worker_id"] == 1);
    (j["op"] == "fork" ? forks : exits) += j["count"].get<uint64_t>();
  }
  CHECK(coalesced == 2);
  CHECK(forks == 101);
  CHECK(exits == 100);
  CHECK_FALSE(f.tracker.busy());
}

TEST_CASE("a re-read of /proc after a loss ends the vanished and finds the unseen", "[unit]") {
  Fixture f;
  f.tracker.note_spawn(1, 2000);
  f.apply({f.ev(ProcOp::kFork, 2000, 1'000'000'000, kDaemon), f.ev(ProcOp::kFork, 2001, 1'100'000'000, 2000)});
  // The sample: the main is there (same start), 2001 is gone, 2050 (its fork
  // lost) is a child of the main, 4000 belongs to nobody.
  const long ticks = 100;
  std::vector<ProcessInfo> procs(3);
  procs[0].pid = 2000;
  procs[0].ppid = kDaemon;
  procs[0].starttime = 100;  // 1 s at 100 Hz: the main's fork stamp
  procs[1].pid = 2050;
  procs[1].ppid = 2000;
  procs[1].starttime = 150;
  procs[1].comm = "sleep";
  procs[1].cmdline = {"sleep", "9"};
  procs[2].pid = 4000;
  procs[2].ppid = 1;
  procs[2].starttime = 160;
  f.tracker.resync(procs, 5'000'000'000'000, 0, ticks);
  const Lifetime* gone = f.by_pid(2001);
  REQUIRE(gone);
  CHECK_FALSE(gone->raw_status.has_value());
  CHECK(lifetime_description(*gone) == "unknown (events lost)");
  CHECK(f.tracker.live().count(2000) == 1);
  REQUIRE(f.tracker.live().count(2050) == 1);
  CHECK(f.tracker.live().at(2050).from_scan);
  CHECK(f.tracker.live().at(2050).argv == std::vector<std::string>{"sleep", "9"});
  CHECK(f.tracker.live().at(2050).worker_id == 1);
  CHECK(f.tracker.live().count(4000) == 0);
}

TEST_CASE("a re-read keeps a process whose fork event came late, and ends one whose pid names a newer process",
          "[unit]") {
  Fixture f;
  f.tracker.note_spawn(1, 3000);
  // 3000 started at 1.00 s, but its forker was preempted: the event says 1.05 s.
  f.apply({f.ev(ProcOp::kFork, 3000, 1'050'000'000, kDaemon), f.ev(ProcOp::kFork, 3001, 1'100'000'000, 3000)});
  const int64_t main_id = f.tracker.live().at(3000).id, child_id = f.tracker.live().at(3001).id;
  std::vector<ProcessInfo> procs(2);
  procs[0].pid = 3000;
  procs[0].ppid = kDaemon;
  procs[0].starttime = 100;  // 1.00 s at 100 Hz
  procs[1].pid = 3001;       // exited unseen; the pid now names a process of 2 s
  procs[1].ppid = 3000;
  procs[1].starttime = 200;
  f.tracker.resync(procs, 5'000'000'000'000, 0, 100);
  REQUIRE(f.tracker.live().count(3000) == 1);
  CHECK(f.tracker.live().at(3000).id == main_id);  // the same lifetime, not ended and found again
  CHECK(f.tracker.live().at(3000).worker_id == 1);
  const Lifetime* old_child = nullptr;
  for (auto& [id, l] : f.sink.rows)
    if (id == child_id) old_child = &l;
  REQUIRE(old_child);
  CHECK(lifetime_description(*old_child) == "unknown (events lost)");
  REQUIRE(f.tracker.live().count(3001) == 1);
  CHECK(f.tracker.live().at(3001).id != child_id);
  CHECK(f.tracker.live().at(3001).from_scan);
}

TEST_CASE("the tree at an instant holds exactly the lifetimes alive then, nested by parent", "[unit]") {
  TempDir dir;
  const std::string path = dir.file("forkwatch.db");
  auto store = fwtest::open_store(path, {});
  const int64_t s = 1'000'000'000;
  auto life = [](int64_t id, pid_t pid, pid_t ppid, int64_t forked, int64_t exited) {
    Lifetime l;
    l.id = id;
    l.pid = pid;
    l.ppid = ppid;
    l.worker_id = 1;
    l.comm = "p" + std::to_string(pid);
    l.forked_ns = forked;
    l.exited_ns = exited;
    if (exited) l.raw_status = 0;
    return l;
  };
  store->record_lifetime(life(1, 100, 1, 10 * s, 0));               // alive since 10 s
  store->record_lifetime(life(2, 101, 100, 20 * s, 20 * s + 5000));  // 5 us long
  store->record_lifetime(life(3, 102, 100, 15 * s, 3600 * s));       // an hour
  store->record_lifetime(life(4, 103, 102, 19 * s, 21 * s));
  store->record_lifetime(life(5, 104, 100, 30 * s, 0));              // forked later
  store->record_lifetime(life(6, 101, 100, 40 * s, 41 * s));         // 101 reused later
  store->flush();
  auto history = db::History::open(path);
  REQUIRE(history);
  auto pids_at = [&](int64_t t) {
    auto rows = (*history)->alive_at(t);
    REQUIRE(rows);
    std::vector<pid_t> pids;
    for (const auto& r : *rows) pids.push_back(r.life.pid);
    return pids;
  };
  CHECK(pids_at(9 * s) == std::vector<pid_t>{});
  CHECK(pids_at(20 * s + 1000) == std::vector<pid_t>{100, 101, 102, 103});
  CHECK(pids_at(20 * s + 5000) == std::vector<pid_t>{100, 102, 103});  // exited at that instant
  CHECK(pids_at(35 * s) == std::vector<pid_t>{100, 102, 104});
  CHECK(pids_at(40 * s + 1) == std::vector<pid_t>{100, 101, 102, 104});
  auto rows = (*history)->alive_at(20 * s + 1000);
  REQUIRE(rows);
  auto tree = nlohmann::json::parse(tree_at_json(*rows));
  REQUIRE(tree.size() == 1);
  CHECK(tree[0]["pid"] == 100);
  REQUIRE(tree[0]["children"].size() == 2);
  CHECK(tree[0]["children"][1]["pid"] == 102);
  CHECK(tree[0]["children"][1]["children"][0]["pid"] == 103);
}

TEST_CASE("instants parse as nanoseconds or ISO 8601 UTC, bad queries are refused", "[unit]") {
  CHECK(parse_instant("1764547200000000000") == 1764547200000000000);
  CHECK(parse_instant("2025-12-01T00:00:00Z") == 1764547200000000000);
  CHECK(parse_instant("2025-12-01T00:00:00.25Z") == 1764547200250000000);
  CHECK_FALSE(parse_instant("2025-12-01 00:00:00"));
  CHECK_FALSE(parse_instant("2025-12-01T00:00:00+01:00"));
  CHECK_FALSE(parse_instant("99999999999999999999999"));
  CHECK_FALSE(parse_instant(""));
  auto future = parse_tree_at("2099-01-01T00:00:00Z", 1764547200000000000, std::nullopt);
  REQUIRE(std::holds_alternative<ApiError>(future));
  CHECK(std::get<ApiError>(future).code == "in_future");
  auto old = parse_tree_at("5", 1764547200000000000, int64_t{10});
  REQUIRE(std::holds_alternative<ApiError>(old));
  CHECK(std::get<ApiError>(old).code == "before_history");
  auto range = parse_lifetime_query({{"since", "20"}, {"until", "10"}});
  REQUIRE(std::holds_alternative<ApiError>(range));
  CHECK(std::get<ApiError>(range).status == 422);
  auto ok = parse_lifetime_query({{"worker", "3"}, {"alive", "true"}, {"limit", "1000"}});
  REQUIRE(std::holds_alternative<db::LifetimeFilter>(ok));
  CHECK(std::get<db::LifetimeFilter>(ok).worker_id == 3);
  CHECK(std::get<db::LifetimeFilter>(ok).alive == true);
}

TEST_CASE("retention by age removes ended lifetimes and old gaps but keeps a live process's row", "[unit]") {
  TempDir dir;
  const std::string path = dir.file("forkwatch.db");
  db::StoreOptions options;
  options.retention.max_age_ns = 86'400'000'000'000;  // a day
  auto store = fwtest::open_store(path, options);
  const int64_t now = realtime_ns(), old = now - 2 * 86'400'000'000'000;
  for (int64_t id = 1; id <= 300; ++id) {
    Lifetime l;
    l.id = id;
    l.pid = static_cast<pid_t>(100 + id);
    l.worker_id = 1;
    l.forked_ns = id <= 200 ? old : now;
    l.exited_ns = id == 1 ? 0 : l.forked_ns + 1000;  // id 1: alive since two days ago
    if (l.exited_ns) l.raw_status = 0;
    store->record_lifetime(l);
  }
  store->record_gap({old, 5, "overrun"});
  store->record_gap({now, 2, "sequence"});
  store->flush();
  db::Database db = fwtest::open_db(path);
  // The writer's retention step runs on its own thread: wait for it.
  CHECK(fwtest::wait_for([&] { return fwtest::int_of(db, "SELECT count(*) FROM lifetimes") == 101; }));
  CHECK(fwtest::int_of(db, "SELECT count(*) FROM lifetimes WHERE id = 1 AND exited_ns IS NULL") == 1);
  CHECK(fwtest::int_of(db, "SELECT min(id) FROM lifetimes WHERE exited_ns IS NOT NULL") == 201);
  // The gaps may come in a later batch than the lifetimes, and age at the next
  // age step (RetentionLimits::age_interval_ns, 1 s).
  CHECK(fwtest::wait_for([&] { return fwtest::int_of(db, "SELECT count(*) FROM process_gaps") == 1; }));
  // Counted by the writer just after the step's commit that the reader saw.
  CHECK(fwtest::wait_for([&] { return store->stats().retention_lifetime_rows == 199; }));
}
