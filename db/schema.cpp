#include "schema.h"

#include <string>

namespace forkwatch::db {
namespace {

// Version 1: what reaping needs. wait_status has exactly the contract's
// columns (CONTRACT.md, "The wait-status record"); events keeps every event
// but samples for Last-Event-ID replay.
constexpr const char* kV1 = R"sql(
CREATE TABLE wait_status (
  id INTEGER PRIMARY KEY,
  ts_ns INTEGER NOT NULL,
  pid INTEGER NOT NULL,
  worker_id INTEGER,
  adopted INTEGER NOT NULL,
  raw_status INTEGER NOT NULL,
  wifexited INTEGER NOT NULL,
  wexitstatus INTEGER NOT NULL,
  wifsignaled INTEGER NOT NULL,
  wtermsig INTEGER NOT NULL,
  wcoredump INTEGER NOT NULL,
  wifstopped INTEGER NOT NULL,
  wstopsig INTEGER NOT NULL,
  wifcontinued INTEGER NOT NULL,
  ru_utime_us INTEGER NOT NULL,
  ru_stime_us INTEGER NOT NULL,
  ru_maxrss_kb INTEGER NOT NULL,
  ru_minflt INTEGER NOT NULL,
  ru_majflt INTEGER NOT NULL,
  ru_nvcsw INTEGER NOT NULL,
  ru_nivcsw INTEGER NOT NULL
);
-- History is read newest first per worker or per pid; id is the rowid, so
-- these indexes hand rows out in id order without a sort.
CREATE INDEX wait_status_by_worker ON wait_status(worker_id, id);
CREATE INDEX wait_status_by_pid ON wait_status(pid, id);

CREATE TABLE events (
  id INTEGER PRIMARY KEY,
  ts_ns INTEGER NOT NULL,
  kind TEXT NOT NULL,
  worker_id INTEGER,
  pid INTEGER NOT NULL,
  data TEXT NOT NULL
);
)sql";

// Version 2: workers started through the API survive a daemon restart. spec is
// the caller's JSON, opaque here. History rows keep their worker_id after the
// worker is removed, so there is no foreign key from wait_status.
// meta keeps high-water marks ('last_event_id', 'last_worker_id') that the
// tables alone would lose: samples are not stored as events, and a worker that
// never exited leaves no wait_status row; ids must still never be reused.
constexpr const char* kV2 = R"sql(
CREATE TABLE workers (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  program TEXT NOT NULL,
  spec TEXT NOT NULL,
  persistent INTEGER NOT NULL,
  desired TEXT NOT NULL CHECK (desired IN ('running', 'stopped', 'removed')),
  created_ns INTEGER NOT NULL,
  updated_ns INTEGER NOT NULL
);

CREATE TABLE meta (
  key TEXT PRIMARY KEY,
  value INTEGER NOT NULL
);
)sql";

// Version 3: fewer bytes per exit. An events row used to carry its whole
// event JSON in `data`, the wait record included, which repeated its own
// columns and its wait_status row (about 1,350 bytes per exit over five rows,
// issue 20). New rows keep only what the columns lack (state, detail) and the
// wait_status row id; replay rebuilds the same JSON. `data` stays for older
// rows and is '' in new ones.
constexpr const char* kV3 = R"sql(
ALTER TABLE events ADD COLUMN state TEXT;
ALTER TABLE events ADD COLUMN detail TEXT;
ALTER TABLE events ADD COLUMN wait_id INTEGER;
)sql";

// Version 4: why each process ended (CONTRACT.md `cause`). Rows written
// before it get the cause their status alone tells (exited, signaled, stopped,
// continued): what an older forkwatchd knew, no more.
constexpr const char* kV4 = R"sql(
ALTER TABLE wait_status ADD COLUMN cause TEXT NOT NULL DEFAULT 'exited';
UPDATE wait_status SET cause = CASE
  WHEN wifstopped != 0 THEN 'stopped'
  WHEN wifcontinued != 0 THEN 'continued'
  WHEN wifsignaled != 0 THEN 'signaled'
  ELSE 'exited' END;
)sql";

// Version 5 (issue 15; written as version 4 beside the `cause` branch and
// renumbered at the merge): one row per process lifetime of a supervised tree,
// as the kernel's proc connector reported it, and the places where its
// events were lost. argv is NUL-terminated arguments, as /proc/PID/cmdline
// gives them (a JSON parse per row cost more than the query). span_class is -1 while alive, else
// the bit width of (exited_ns - forked_ns) >> 20: a lifetime of class k lasted
// under 2^(k+20) ns, so "alive at T" is, per class, a range of forked_ns just
// below T (lifetime_row.h), not a scan of the whole day. wait_status rows are
// found by pid and time at read, since the reap and the exit event race.
constexpr const char* kV5 = R"sql(
CREATE TABLE lifetimes (
  id INTEGER PRIMARY KEY,
  pid INTEGER NOT NULL,
  ppid INTEGER NOT NULL,
  worker_id INTEGER NOT NULL,
  comm TEXT NOT NULL,
  argv TEXT NOT NULL,
  argv_lost INTEGER NOT NULL,
  forked_ns INTEGER NOT NULL,
  exec_ns INTEGER,
  execs INTEGER NOT NULL,
  exited_ns INTEGER,
  raw_status INTEGER,
  reaped_by_daemon INTEGER NOT NULL,
  core_dumped INTEGER NOT NULL,
  from_scan INTEGER NOT NULL,
  threads INTEGER NOT NULL,
  span_class INTEGER NOT NULL
);
CREATE INDEX lifetimes_by_worker ON lifetimes(worker_id, id);
CREATE INDEX lifetimes_by_pid ON lifetimes(pid, id);
CREATE INDEX lifetimes_by_span ON lifetimes(span_class, forked_ns, exited_ns);

CREATE TABLE process_gaps (
  id INTEGER PRIMARY KEY,
  ts_ns INTEGER NOT NULL,
  lost INTEGER NOT NULL,
  reason TEXT NOT NULL
);
)sql";

// Version 6 (issue 15): each thread of a supervised process, creation to
// exit. Its rows belong to their process's lifetime: retention (or anything
// else) deleting a lifetime takes its threads with it, by the trigger, so
// no thread outlives its process's row. Additive: a v5 file keeps its rows.
constexpr const char* kV6 = R"sql(
CREATE TABLE thread_lifetimes (
  id INTEGER PRIMARY KEY,
  lifetime_id INTEGER NOT NULL,
  pid INTEGER NOT NULL,
  tid INTEGER NOT NULL,
  first_name TEXT NOT NULL,
  name TEXT NOT NULL,
  created_ns INTEGER NOT NULL,
  exited_ns INTEGER
);
CREATE INDEX thread_lifetimes_by_lifetime ON thread_lifetimes(lifetime_id, id);
CREATE TRIGGER lifetimes_take_their_threads AFTER DELETE ON lifetimes BEGIN
  DELETE FROM thread_lifetimes WHERE lifetime_id = old.id;
END;
)sql";

constexpr Migration kMigrations[] = {{1, kV1}, {2, kV2}, {3, kV3}, {4, kV4}, {5, kV5}, {6, kV6}};

}  // namespace

std::span<const Migration> migrations() { return kMigrations; }

int schema_version() { return kMigrations[std::size(kMigrations) - 1].version; }

Status migrate(Database& db, std::span<const Migration> steps) {
  int latest = steps.empty() ? 0 : steps.back().version;
  Result<int64_t> current = db.query_int64("PRAGMA user_version");
  if (!current) return current.error();
  if (*current > latest)
    return plain_error(db.path() + ": schema version " + std::to_string(*current) +
                       " is newer than this forkwatchd knows (" + std::to_string(latest) +
                       "); use a newer forkwatchd or another state directory");
  for (const Migration& m : steps) {
    if (m.version <= *current) continue;
    Result<Transaction> txn = Transaction::begin(db);
    if (!txn) return txn.error();
    Status s = db.exec(m.sql);
    // PRAGMA takes no parameters; the version is our own integer.
    if (s) s = db.exec("PRAGMA user_version=" + std::to_string(m.version));
    if (s) s = txn->commit();
    if (!s)
      return plain_error(db.path() + ": migration to schema version " +
                         std::to_string(m.version) + " failed: " + s.error().message());
  }
  return Ok{};
}

}  // namespace forkwatch::db
