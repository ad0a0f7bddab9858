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

constexpr Migration kMigrations[] = {{1, kV1}, {2, kV2}};

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
