// Database, Statement, Transaction: small RAII owners of SQLite handles.
// A Database is one connection, opened without SQLite's own mutex: it and its
// Statements and Transactions belong to one thread at a time. Errors come back
// as values that name the call, the file and SQLite's words, e.g.
// "sqlite3_open(/x/forkwatch.db): unable to open database file: Permission denied".
// <sqlite3.h> stays in db/*.cpp; the handle types are only forward-declared here.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "sys_error.h"

struct sqlite3;
struct sqlite3_stmt;

namespace forkwatch::db {

enum class StepResult { kRow, kDone };

// One prepared statement, prepared once and reused: bind, step, reset.
class Statement {
 public:
  Statement() = default;
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&& other) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  // 1-based parameter indexes, as in "?1". A bind error is reported by step().
  Statement& bind(int index, int64_t value);
  Statement& bind(int index, std::string_view text);
  Statement& bind(int index, std::optional<int64_t> value);  // nullopt binds NULL
  Statement& bind_null(int index);

  Result<StepResult> step();
  // Steps to the end (for statements that return no rows), then resets.
  Status run();
  // Ready to step again: ends the read or write, clears every binding.
  void reset();

  // Columns of the current row, 0-based.
  int64_t int64(int column) const;
  std::optional<int64_t> optional_int64(int column) const;
  std::string text(int column) const;
  bool is_null(int column) const;

  // The last step() failed on a UNIQUE, CHECK, NOT NULL or similar constraint:
  // the row's fault, not the disk's. The surrounding transaction stays usable.
  bool constraint_failed() const { return constraint_failed_; }
  bool valid() const { return stmt_ != nullptr; }

 private:
  friend class Database;
  Statement(sqlite3_stmt* stmt, sqlite3* db, std::string context);
  void note_bind(int rc);

  sqlite3_stmt* stmt_ = nullptr;  // owned; finalized in the destructor
  sqlite3* db_ = nullptr;         // not owned; outlives this statement
  std::string context_;           // "INSERT INTO wait_status(... on /x/forkwatch.db", for errors
  int bind_rc_ = 0;               // first failed bind since reset(), 0 if none
  bool constraint_failed_ = false;
};

enum class OpenMode {
  kWrite,  // create if missing; WAL, synchronous=NORMAL, foreign keys
  kRead,   // the file must exist; query_only, foreign keys
};

struct OpenOptions {
  OpenMode mode = OpenMode::kWrite;
  int busy_timeout_ms = 5000;  // how long a locked database is waited for
};

class Database {
 public:
  // ":memory:" opens a private in-memory database (one connection only).
  static Result<Database> open(const std::string& path, const OpenOptions& options = {});

  Database() = default;
  Database(Database&& other) noexcept;
  Database& operator=(Database&& other) noexcept;
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;
  ~Database();  // finalize every Statement of this connection first

  // One or more statements that return no rows (DDL, PRAGMA settings).
  Status exec(std::string_view sql);
  Result<Statement> prepare(std::string_view sql);
  // The first column of the first row; 0 when there is no row or it is NULL.
  Result<int64_t> query_int64(std::string_view sql);
  // The first column of the first row; "" when there is no row or it is NULL.
  Result<std::string> query_text(std::string_view sql);

  int64_t last_insert_rowid() const;
  // Rows changed by the last INSERT, UPDATE or DELETE that finished.
  int64_t changes() const;
  bool in_transaction() const;
  const std::string& path() const { return path_; }
  bool valid() const { return db_ != nullptr; }

 private:
  Database(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  SysError error(std::string_view call, int rc) const;

  sqlite3* db_ = nullptr;  // owned; closed in the destructor
  std::string path_;
};

// BEGIN IMMEDIATE ... COMMIT; rolls back in the destructor unless committed.
// Never throws; a failed rollback is only logged.
class Transaction {
 public:
  static Result<Transaction> begin(Database& db);

  Transaction(Transaction&& other) noexcept;
  Transaction& operator=(Transaction&&) = delete;
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction();

  Status commit();

 private:
  explicit Transaction(Database* db) : db_(db) {}
  Database* db_ = nullptr;  // nullptr once committed, rolled back or moved from
};

}  // namespace forkwatch::db
