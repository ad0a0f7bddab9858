#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "temp_dir.h"
#include "database.h"
#include "store.h"

using namespace forkwatch;
using namespace forkwatch::db;
using fwtest::TempDir;

namespace {

Database open_or_fail(const std::string& path) {
  Result<Database> db = Database::open(path);
  if (!db) FAIL(db.error().message());
  return std::move(*db);
}

StoreOptions busy_timeout(int ms) {
  StoreOptions options;
  options.busy_timeout_ms = ms;
  return options;
}

int64_t count(Database& db, const char* table) {
  Result<int64_t> n = db.query_int64(std::string("SELECT count(*) FROM ") + table);
  REQUIRE(n.ok());
  return *n;
}

}  // namespace

TEST_CASE("a transaction that is not committed is rolled back", "[unit]") {
  Database db = open_or_fail(":memory:");
  REQUIRE(db.exec("CREATE TABLE t (x INTEGER)").ok());
  {
    Result<Transaction> txn = Transaction::begin(db);
    REQUIRE(txn.ok());
    REQUIRE(db.exec("INSERT INTO t VALUES (1)").ok());
    CHECK(db.in_transaction());
  }
  CHECK_FALSE(db.in_transaction());
  CHECK(count(db, "t") == 0);
  {
    Result<Transaction> txn = Transaction::begin(db);
    REQUIRE(txn.ok());
    REQUIRE(db.exec("INSERT INTO t VALUES (2)").ok());
    REQUIRE(txn->commit().ok());
  }
  CHECK(count(db, "t") == 1);
}

TEST_CASE("a prepared statement binds integers, text and NULL and is reused after reset", "[unit]") {
  Database db = open_or_fail(":memory:");
  REQUIRE(db.exec("CREATE TABLE t (i INTEGER, s TEXT, o INTEGER)").ok());
  Result<Statement> insert = db.prepare("INSERT INTO t VALUES (?1, ?2, ?3)");
  REQUIRE(insert.ok());
  const int64_t big = int64_t{1} << 62;
  REQUIRE(insert->bind(1, big).bind(2, std::string_view("caf\xc3\xa9\n")).bind(3, int64_t{-7}).run().ok());
  REQUIRE(insert->bind(1, int64_t{2}).bind(2, std::string_view()).bind(3, std::nullopt).run().ok());

  Result<Statement> select = db.prepare("SELECT i, s, o FROM t ORDER BY rowid");
  REQUIRE(select.ok());
  REQUIRE(*select->step() == StepResult::kRow);
  CHECK(select->int64(0) == big);
  CHECK(select->text(1) == "caf\xc3\xa9\n");
  CHECK(select->optional_int64(2) == -7);
  REQUIRE(*select->step() == StepResult::kRow);
  CHECK(select->text(1).empty());
  CHECK_FALSE(select->is_null(1));  // "" stays "", not NULL
  CHECK(select->is_null(2));
  CHECK_FALSE(select->optional_int64(2).has_value());
  REQUIRE(*select->step() == StepResult::kDone);
  select->reset();
  REQUIRE(*select->step() == StepResult::kRow);
  CHECK(select->int64(0) == big);
}

TEST_CASE("a refused row names the statement and the constraint, the transaction goes on", "[unit]") {
  Database db = open_or_fail(":memory:");
  REQUIRE(db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY)").ok());
  Result<Transaction> txn = Transaction::begin(db);
  REQUIRE(txn.ok());
  Result<Statement> insert = db.prepare("INSERT INTO t (id) VALUES (?1)");
  REQUIRE(insert.ok());
  REQUIRE(insert->bind(1, int64_t{1}).run().ok());
  Status dup = insert->bind(1, int64_t{1}).run();
  REQUIRE_FALSE(dup.ok());
  CHECK(insert->constraint_failed());
  CHECK_THAT(dup.error().message(), Catch::Contains("INSERT INTO t (id)") &&
                                        Catch::Contains("UNIQUE constraint failed: t.id"));
  REQUIRE(insert->bind(1, int64_t{2}).run().ok());
  CHECK_FALSE(insert->constraint_failed());
  REQUIRE(txn->commit().ok());
  CHECK(count(db, "t") == 2);
}

TEST_CASE("SQL that does not compile is an error naming the SQL", "[unit]") {
  Database db = open_or_fail(":memory:");
  Result<Statement> st = db.prepare("SELEC 1");
  REQUIRE_FALSE(st.ok());
  CHECK_THAT(st.error().message(), Catch::Contains("sqlite3_prepare(:memory:, \"SELEC 1\")") &&
                                       Catch::Contains("syntax error"));
}

TEST_CASE("a file database is opened in WAL mode with NORMAL sync and foreign keys", "[unit]") {
  TempDir dir;
  Database db = open_or_fail(dir.file("forkwatch.db"));
  CHECK(*db.query_text("PRAGMA journal_mode") == "wal");
  CHECK(*db.query_int64("PRAGMA synchronous") == 1);  // NORMAL
  CHECK(*db.query_int64("PRAGMA foreign_keys") == 1);
}

TEST_CASE("opening a database in a missing directory names the file and says why", "[unit]") {
  TempDir dir;
  std::string path = dir.file("missing/forkwatch.db");
  Result<std::unique_ptr<Store>> store = Store::open(path);
  REQUIRE_FALSE(store.ok());
  CHECK(store.error().message() ==
        "sqlite3_open(" + path + "): unable to open database file: No such file or directory");
}

TEST_CASE("a database file overwritten with garbage is refused at open", "[unit]") {
  TempDir dir;
  std::string path = dir.file("forkwatch.db");
  {
    Result<std::unique_ptr<Store>> store = Store::open(path);
    REQUIRE(store.ok());
  }
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    for (int i = 0; i < 64 * 1024; ++i) out.put(static_cast<char>((i * 7919) & 0xff));
  }
  std::filesystem::remove(path + "-wal");
  std::filesystem::remove(path + "-shm");
  Result<std::unique_ptr<Store>> store = Store::open(path);
  REQUIRE_FALSE(store.ok());
  CHECK_THAT(store.error().message(),
             Catch::Contains(path) && Catch::Contains("file is not a database"));
}

TEST_CASE("a state directory the daemon may not write is refused at open", "[unit]") {
  TempDir dir;
  std::string ro = dir.file("ro");
  std::filesystem::create_directory(ro);
  std::filesystem::permissions(ro, std::filesystem::perms::owner_read |
                                       std::filesystem::perms::owner_exec |
                                       std::filesystem::perms::group_read |
                                       std::filesystem::perms::group_exec |
                                       std::filesystem::perms::others_read |
                                       std::filesystem::perms::others_exec);
  std::string path = ro + "/forkwatch.db";
  // Root ignores directory permissions, so as root the open runs in a child
  // that has dropped to nobody; the message comes back through a pipe.
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0)) _exit(3);
    Result<std::unique_ptr<Store>> store = Store::open(path);
    if (store.ok()) _exit(1);
    std::string m = store.error().message();
    if (write(fds[1], m.data(), m.size()) != static_cast<ssize_t>(m.size())) _exit(4);
    _exit(0);
  }
  close(fds[1]);
  std::string message;
  char buf[512];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0) message.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  CHECK(message ==
        "sqlite3_open(" + path + "): unable to open database file: Permission denied");
}

TEST_CASE("a database locked by another connection is an error after the busy timeout", "[unit]") {
  TempDir dir;
  std::string path = dir.file("forkwatch.db");
  Database holder = open_or_fail(path);
  REQUIRE(holder.exec("BEGIN EXCLUSIVE").ok());
  Result<std::unique_ptr<Store>> store = Store::open(path, busy_timeout(50));
  REQUIRE_FALSE(store.ok());
  CHECK_THAT(store.error().message(),
             Catch::Contains(path) && Catch::Contains("database is locked"));
  REQUIRE(holder.exec("ROLLBACK").ok());
  CHECK(Store::open(path, busy_timeout(50)).ok());
}
