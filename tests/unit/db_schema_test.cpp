#include <catch2/catch.hpp>
#include <filesystem>
#include <string>
#include <vector>

#include "db_support.h"
#include "temp_dir.h"
#include "database.h"
#include "schema.h"
#include "store.h"

using namespace forkwatch;
using namespace forkwatch::db;
using fwtest::TempDir;
using fwtest::int_of;
using fwtest::open_db;

namespace {


std::vector<std::string> strings_of(Database& db, const std::string& sql, int column) {
  Result<Statement> st = db.prepare(sql);
  if (!st) FAIL(st.error().message());
  std::vector<std::string> out;
  while (*st->step() == StepResult::kRow) out.push_back(st->text(column));
  return out;
}

const char* kInsertRow =
    "INSERT INTO wait_status (ts_ns, pid, worker_id, adopted, raw_status, wifexited, wexitstatus,"
    " wifsignaled, wtermsig, wcoredump, wifstopped, wstopsig, wifcontinued, ru_utime_us,"
    " ru_stime_us, ru_maxrss_kb, ru_minflt, ru_majflt, ru_nvcsw, ru_nivcsw)"
    " VALUES (1, 42, 9, 0, 3072, 1, 12, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7)";

}  // namespace

TEST_CASE("an empty database is migrated to the latest schema version", "[unit]") {
  Database db = open_db(":memory:");
  CHECK(int_of(db, "PRAGMA user_version") == 0);
  REQUIRE(migrate(db).ok());
  CHECK(int_of(db, "PRAGMA user_version") == schema_version());
  CHECK(schema_version() == migrations().back().version);
  std::vector<std::string> tables =
      strings_of(db, "SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name", 0);
  CHECK(tables == std::vector<std::string>{"events", "lifetimes", "meta", "process_gaps", "thread_lifetimes", "wait_status", "workers"});
}

TEST_CASE("wait_status has exactly the contract's columns, in order", "[unit]") {
  Database db = open_db(":memory:");
  REQUIRE(migrate(db).ok());
  std::vector<std::string> columns = strings_of(db, "PRAGMA table_info(wait_status)", 1);
  CHECK(columns == std::vector<std::string>{
                       "id",          "ts_ns",       "pid",          "worker_id",  "adopted",
                       "raw_status",  "wifexited",   "wexitstatus",  "wifsignaled", "wtermsig",
                       "wcoredump",   "wifstopped",  "wstopsig",     "wifcontinued",
                       "ru_utime_us", "ru_stime_us", "ru_maxrss_kb", "ru_minflt",  "ru_majflt",
                       "ru_nvcsw",    "ru_nivcsw",   "cause"});
  // worker_id is the only column that may be NULL (an orphan of no worker).
  std::vector<std::string> nullable = strings_of(
      db, "SELECT name FROM pragma_table_info('wait_status') WHERE \"notnull\" = 0 AND pk = 0", 0);
  CHECK(nullable == std::vector<std::string>{"worker_id"});
}

TEST_CASE("history by worker and by pid reads an index newest first, without sorting", "[unit]") {
  Database db = open_db(":memory:");
  REQUIRE(migrate(db).ok());
  auto plan = [&](const std::string& sql) {
    std::string all;
    for (const std::string& line : strings_of(db, "EXPLAIN QUERY PLAN " + sql, 3)) all += line + ";";
    return all;
  };
  std::string by_worker =
      plan("SELECT * FROM wait_status WHERE worker_id = 3 AND id < 100 ORDER BY id DESC LIMIT 10");
  CHECK_THAT(by_worker, Catch::Contains("USING INDEX wait_status_by_worker") &&
                            !Catch::Contains("TEMP B-TREE"));
  std::string by_pid = plan("SELECT * FROM wait_status WHERE pid = 3 ORDER BY id DESC LIMIT 10");
  CHECK_THAT(by_pid,
             Catch::Contains("USING INDEX wait_status_by_pid") && !Catch::Contains("TEMP B-TREE"));
}

TEST_CASE("re-opening a migrated file keeps its rows and its version", "[unit]") {
  TempDir dir;
  std::string path = dir.file("forkwatch.db");
  {
    Database db = open_db(path);
    REQUIRE(migrate(db).ok());
    REQUIRE(db.exec(kInsertRow).ok());
  }
  Database db = open_db(path);
  REQUIRE(migrate(db).ok());
  CHECK(int_of(db, "PRAGMA user_version") == schema_version());
  CHECK(int_of(db, "SELECT count(*) FROM wait_status") == 1);
}

TEST_CASE("a version 1 file is migrated to the latest and keeps its history", "[unit]") {
  TempDir dir;
  std::string path = dir.file("forkwatch.db");
  {
    Database db = open_db(path);
    REQUIRE(migrate(db, migrations().first(1)).ok());
    CHECK(int_of(db, "PRAGMA user_version") == 1);
    CHECK(int_of(db, "SELECT count(*) FROM sqlite_schema WHERE name = 'workers'") == 0);
    REQUIRE(db.exec(kInsertRow).ok());
  }
  Result<std::unique_ptr<Store>> store = Store::open(path);
  REQUIRE(store.ok());
  CHECK((*store)->last_worker_id() == 9);  // from the old wait_status row
  (*store)->close();
  Database db = open_db(path);
  CHECK(int_of(db, "PRAGMA user_version") == schema_version());
  CHECK(int_of(db, "SELECT count(*) FROM sqlite_schema WHERE name = 'workers'") == 1);
  CHECK(int_of(db, "SELECT wexitstatus FROM wait_status WHERE pid = 42") == 12);
}

TEST_CASE("a version 3 file gains cause, each old row the cause its status tells", "[unit]") {
  TempDir dir;
  std::string path = dir.file("forkwatch.db");
  {
    Database db = open_db(path);
    REQUIRE(migrate(db, migrations().first(3)).ok());
    // exited 12; killed by SIGKILL; stopped by SIGSTOP; continued.
    REQUIRE(db.exec(kInsertRow).ok());
    REQUIRE(db.exec("INSERT INTO wait_status (ts_ns, pid, worker_id, adopted, raw_status, wifexited, wexitstatus,"
                    " wifsignaled, wtermsig, wcoredump, wifstopped, wstopsig, wifcontinued, ru_utime_us,"
                    " ru_stime_us, ru_maxrss_kb, ru_minflt, ru_majflt, ru_nvcsw, ru_nivcsw) VALUES"
                    " (2, 43, 9, 0, 9, 0, 0, 1, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),"
                    " (3, 44, 9, 0, 4991, 0, 0, 0, 0, 0, 1, 19, 0, 0, 0, 0, 0, 0, 0, 0),"
                    " (4, 45, 9, 0, 65535, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0)").ok());
  }
  Database db = open_db(path);
  REQUIRE(migrate(db).ok());
  CHECK(strings_of(db, "SELECT cause FROM wait_status ORDER BY id", 0) ==
        std::vector<std::string>{"exited", "signaled", "stopped", "continued"});
  CHECK(int_of(db, "SELECT count(*) FROM wait_status") == 4);
}

TEST_CASE("a file from a newer forkwatchd is refused with a clear error", "[unit]") {
  TempDir dir;
  std::string path = dir.file("forkwatch.db");
  {
    Database db = open_db(path);
    REQUIRE(db.exec("PRAGMA user_version = 99").ok());
  }
  Result<std::unique_ptr<Store>> store = Store::open(path);
  REQUIRE_FALSE(store.ok());
  CHECK(store.error().message() == path + ": schema version 99 is newer than this forkwatchd knows (" +
                                       std::to_string(schema_version()) +
                                       "); use a newer forkwatchd or another state directory");
}

TEST_CASE("a failing migration step leaves the file at the last good version", "[unit]") {
  Database db = open_db(":memory:");
  const Migration steps[] = {{1, "CREATE TABLE a (x INTEGER)"},
                             {2, "CREATE TABLE b (y INTEGER); CREATE TABLE a (z INTEGER)"}};
  Status s = migrate(db, steps);
  REQUIRE_FALSE(s.ok());
  CHECK_THAT(s.error().message(), Catch::Contains("migration to schema version 2 failed") &&
                                      Catch::Contains("table a already exists"));
  CHECK(int_of(db, "PRAGMA user_version") == 1);
  CHECK(int_of(db, "SELECT count(*) FROM sqlite_schema WHERE name = 'b'") == 0);
}
