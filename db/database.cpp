#include "database.h"

#include <sqlite3.h>

#include "log.h"

namespace forkwatch::db {
namespace {

// SQL text shortened to one line for error messages: enough to tell which
// statement failed without pasting a whole migration.
std::string sql_head(std::string_view sql) {
  constexpr size_t kMaxChars = 48;
  std::string out;
  bool space = false;
  for (char c : sql) {
    if (c == ' ' || c == '\n' || c == '\t' || c == '\r') {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    if (out.size() >= kMaxChars) {
      out += "...";
      break;
    }
    out += c;
  }
  return out;
}

std::string call_text(std::string_view call, const std::string& path, std::string_view sql) {
  std::string s(call);
  s += '(';
  s += path;
  if (!sql.empty()) {
    s += ", \"";
    s += sql_head(sql);
    s += '"';
  }
  s += ')';
  return s;
}

// SQLite's words, plus errno where the failure came from the file system
// (open, I/O, full disk, read-only file), so "unable to open database file"
// also says why.
SysError sqlite_error(sqlite3* db, int rc, std::string what) {
  std::string message = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  int primary = rc & 0xff;
  int sys_errno = 0;
  if (db && (primary == SQLITE_CANTOPEN || primary == SQLITE_IOERR || primary == SQLITE_FULL ||
             primary == SQLITE_READONLY))
    sys_errno = sqlite3_system_errno(db);
  return SysError{std::move(what) + ": " + message, sys_errno};
}

}  // namespace

// ---- Statement

Statement::Statement(sqlite3_stmt* stmt, sqlite3* db, std::string context)
    : stmt_(stmt), db_(db), context_(std::move(context)) {}

Statement::Statement(Statement&& other) noexcept
    : stmt_(std::exchange(other.stmt_, nullptr)),
      db_(other.db_),
      context_(std::move(other.context_)),
      bind_rc_(other.bind_rc_),
      constraint_failed_(other.constraint_failed_) {}

Statement& Statement::operator=(Statement&& other) noexcept {
  if (this != &other) {
    if (stmt_) sqlite3_finalize(stmt_);
    stmt_ = std::exchange(other.stmt_, nullptr);
    db_ = other.db_;
    context_ = std::move(other.context_);
    bind_rc_ = other.bind_rc_;
    constraint_failed_ = other.constraint_failed_;
  }
  return *this;
}

Statement::~Statement() {
  if (stmt_) sqlite3_finalize(stmt_);
}

void Statement::note_bind(int rc) {
  if (rc != SQLITE_OK && bind_rc_ == SQLITE_OK) bind_rc_ = rc;
}

Statement& Statement::bind(int index, int64_t value) {
  note_bind(sqlite3_bind_int64(stmt_, index, value));
  return *this;
}

Statement& Statement::bind(int index, std::string_view text) {
  // A null data pointer would bind NULL, not "".
  const char* data = text.data() ? text.data() : "";
  note_bind(sqlite3_bind_text64(stmt_, index, data, text.size(), SQLITE_TRANSIENT, SQLITE_UTF8));
  return *this;
}

Statement& Statement::bind(int index, std::optional<int64_t> value) {
  return value ? bind(index, *value) : bind_null(index);
}

Statement& Statement::bind_null(int index) {
  note_bind(sqlite3_bind_null(stmt_, index));
  return *this;
}

Result<StepResult> Statement::step() {
  constraint_failed_ = false;
  if (bind_rc_ != SQLITE_OK)
    return SysError{"sqlite3_bind(" + context_ + "): " + sqlite3_errstr(bind_rc_), 0};
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return StepResult::kRow;
  if (rc == SQLITE_DONE) return StepResult::kDone;
  constraint_failed_ = (rc & 0xff) == SQLITE_CONSTRAINT;
  SysError e = sqlite_error(db_, rc, "sqlite3_step(" + context_ + ")");
  sqlite3_reset(stmt_);  // reusable again; the error is already captured
  return e;
}

Status Statement::run() {
  for (;;) {
    Result<StepResult> r = step();
    if (!r) {
      reset();
      return r.error();
    }
    if (*r == StepResult::kDone) break;
  }
  reset();
  return Ok{};
}

void Statement::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  bind_rc_ = SQLITE_OK;
}

int64_t Statement::int64(int column) const { return sqlite3_column_int64(stmt_, column); }

std::optional<int64_t> Statement::optional_int64(int column) const {
  if (is_null(column)) return std::nullopt;
  return int64(column);
}

std::string Statement::text(int column) const {
  const unsigned char* p = sqlite3_column_text(stmt_, column);
  if (!p) return {};
  return std::string(reinterpret_cast<const char*>(p),
                     static_cast<size_t>(sqlite3_column_bytes(stmt_, column)));
}

bool Statement::is_null(int column) const {
  return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}

// ---- Database

Result<Database> Database::open(const std::string& path, const OpenOptions& options) {
  // SQLite opens a private temporary file for "": never what a caller meant.
  if (path.empty()) return plain_error("sqlite3_open(): empty database path");
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
  if (options.mode == OpenMode::kWrite) flags |= SQLITE_OPEN_CREATE;
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  Database db(raw, path);  // owns the handle even on failure, which must be closed too
  if (rc != SQLITE_OK) return db.error("sqlite3_open", rc);
  sqlite3_busy_timeout(raw, options.busy_timeout_ms);

  if (options.mode == OpenMode::kWrite) {
    // The first statement reads the file header: a file that is not SQLite fails here.
    // Before any table exists, so that a new file can hand pages back to the
    // file system when retention deletes rows; on an existing file that was
    // made without it, this is a no-op (only a VACUUM changes it).
    Status vacuum = db.exec("PRAGMA auto_vacuum=INCREMENTAL");
    if (!vacuum) return vacuum.error();
    Result<std::string> mode = db.query_text("PRAGMA journal_mode=WAL");
    if (!mode) return mode.error();
    if (*mode != "wal" && path != ":memory:")
      log::warning("database " + path + ": journal_mode is " + *mode + ", not wal");
    // WAL + NORMAL: a commit survives a process crash; only a power loss can
    // take the last few commits (sqlite.org/pragma.html#pragma_synchronous).
    Status s = db.exec("PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON");
    if (!s) return s.error();
  } else {
    Status s = db.exec("PRAGMA query_only=ON; PRAGMA foreign_keys=ON");
    if (!s) return s.error();
    Result<int64_t> probe = db.query_int64("PRAGMA schema_version");
    if (!probe) return probe.error();
  }
  return db;
}

Database::Database(Database&& other) noexcept
    : db_(std::exchange(other.db_, nullptr)), path_(std::move(other.path_)) {}

Database& Database::operator=(Database&& other) noexcept {
  if (this != &other) {
    if (db_) sqlite3_close_v2(db_);
    db_ = std::exchange(other.db_, nullptr);
    path_ = std::move(other.path_);
  }
  return *this;
}

Database::~Database() {
  // close_v2 defers the close until the last statement is finalized instead
  // of failing with SQLITE_BUSY.
  if (db_) sqlite3_close_v2(db_);
}

SysError Database::error(std::string_view call, int rc) const {
  return sqlite_error(db_, rc, call_text(call, path_, {}));
}

Status Database::exec(std::string_view sql) {
  std::string text(sql);
  char* message = nullptr;
  int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &message);
  if (rc == SQLITE_OK) return Ok{};
  SysError e = sqlite_error(db_, rc, call_text("sqlite3_exec", path_, sql));
  sqlite3_free(message);
  return e;
}

Result<Statement> Database::prepare(std::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) {
    if (stmt) sqlite3_finalize(stmt);
    return sqlite_error(db_, rc, call_text("sqlite3_prepare", path_, sql));
  }
  std::string context = path_ + ", \"" + sql_head(sql) + "\"";
  return Statement(stmt, db_, std::move(context));
}

Result<int64_t> Database::query_int64(std::string_view sql) {
  Result<Statement> st = prepare(sql);
  if (!st) return st.error();
  Result<StepResult> r = st->step();
  if (!r) return r.error();
  if (*r == StepResult::kDone) return int64_t{0};
  return st->int64(0);
}

Result<std::string> Database::query_text(std::string_view sql) {
  Result<Statement> st = prepare(sql);
  if (!st) return st.error();
  Result<StepResult> r = st->step();
  if (!r) return r.error();
  if (*r == StepResult::kDone) return std::string();
  return st->text(0);
}

int64_t Database::last_insert_rowid() const { return sqlite3_last_insert_rowid(db_); }

int64_t Database::changes() const { return sqlite3_changes(db_); }

bool Database::in_transaction() const { return db_ && sqlite3_get_autocommit(db_) == 0; }

// ---- Transaction

Result<Transaction> Transaction::begin(Database& db) {
  // IMMEDIATE takes the write lock now, so a busy database fails here and not
  // halfway through the batch.
  Status s = db.exec("BEGIN IMMEDIATE");
  if (!s) return s.error();
  return Transaction(&db);
}

Transaction::Transaction(Transaction&& other) noexcept : db_(std::exchange(other.db_, nullptr)) {}

Transaction::~Transaction() {
  // Some errors (a full disk, I/O) already rolled SQLite back by themselves.
  if (!db_ || !db_->in_transaction()) return;
  Status s = db_->exec("ROLLBACK");
  if (!s) log::warning(s.error().message());
}

Status Transaction::commit() {
  if (!db_) return plain_error("commit: transaction already finished");
  Status s = db_->exec("COMMIT");
  if (!s) return s;  // still open; the destructor rolls back
  db_ = nullptr;
  return Ok{};
}

}  // namespace forkwatch::db
