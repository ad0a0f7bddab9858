#include "history.h"

#include <algorithm>
#include <array>

#include "collect_rows.h"
#include "database.h"
#include "event_json.h"
#include "schema.h"
#include "wait_row.h"

namespace forkwatch::db {

struct History::Reader {
  Database db;
  // wait_status queries by which filters are present: bit 0 worker, 1 pid,
  // 2 before. Prepared on first use.
  std::array<Statement, 8> wait_queries;
  Statement events_after;
  Statement recent_exits;
};

class History::Lease {
 public:
  Lease(History* history, std::unique_ptr<Reader> reader)
      : history_(history), reader_(std::move(reader)) {}
  Lease(Lease&& other) noexcept = default;
  Lease& operator=(Lease&&) = delete;
  ~Lease() {
    if (reader_) history_->release(std::move(reader_));
  }
  Reader& operator*() { return *reader_; }
  Reader* operator->() { return reader_.get(); }

 private:
  History* history_;
  std::unique_ptr<Reader> reader_;
};

namespace {

constexpr int kWorkerBit = 1, kPidBit = 2, kBeforeBit = 4;

// Parameters: ?1 worker_id, ?2 pid, ?3 before id, ?4 limit. Each combination
// gets its own text so SQLite can use the matching index.
std::string wait_query_sql(int filters) {
  std::string sql = "SELECT ";
  sql += kWaitColumns;
  sql += " FROM wait_status";
  const char* joiner = " WHERE ";
  if (filters & kWorkerBit) {
    sql += joiner;
    sql += "worker_id = ?1";
    joiner = " AND ";
  }
  if (filters & kPidBit) {
    sql += joiner;
    sql += "pid = ?2";
    joiner = " AND ";
  }
  if (filters & kBeforeBit) {
    sql += joiner;
    sql += "id < ?3";
  }
  sql += " ORDER BY id DESC LIMIT ?4";
  return sql;
}

// kWaitColumns of wait_status aliased as w, for a join.
std::string qualified_wait_columns() {
  std::string out = "w.";
  for (char c : kWaitColumns) {
    out += c;
    if (c == ' ') out += "w.";
  }
  return out;
}

// Columns 0..7 of the events query, then the wait row's from column 8.
constexpr int kEventWaitColumn = 8;

std::optional<EventKind> parse_event_kind(std::string_view name) {
  for (EventKind k : {EventKind::kSpawn, EventKind::kExit, EventKind::kStop, EventKind::kContinue,
                      EventKind::kRestart, EventKind::kAdopt, EventKind::kState, EventKind::kSample,
                      EventKind::kPause, EventKind::kResume})
    if (event_kind_name(k) == name) return k;
  return std::nullopt;
}

// Rows before schema v3 carry their JSON; newer ones are rebuilt from the
// columns and their wait_status row, which give the same JSON.
EventRow read_event_row(const Statement& row) {
  EventRow out{static_cast<uint64_t>(row.int64(0)), row.text(1), row.text(2)};
  std::optional<EventKind> kind = parse_event_kind(out.kind);
  if (!out.data.empty() || !kind) return out;
  Event e;
  e.id = out.id;
  e.kind = *kind;
  e.ts_ns = row.int64(3);
  e.worker_id = row.optional_int64(4);
  e.pid = static_cast<pid_t>(row.int64(5));
  e.state = row.text(6);
  e.detail = row.text(7);
  if (!row.is_null(kEventWaitColumn)) e.wait = read_wait_record(row, kEventWaitColumn);
  out.data = event_json(e);
  return out;
}

Status ensure_prepared(Database& db, Statement& st, std::string_view sql) {
  if (st.valid()) return Ok{};
  Result<Statement> prepared = db.prepare(sql);
  if (!prepared) return prepared.error();
  st = std::move(*prepared);
  return Ok{};
}

}  // namespace

Result<std::unique_ptr<History>> History::open(const std::string& path, size_t max_connections) {
  if (path == ":memory:" || path.rfind("file::memory:", 0) == 0)
    return plain_error("history: " + path +
                       " cannot be shared between connections; use a database file");
  std::unique_ptr<History> h(new History(path, std::max<size_t>(1, max_connections)));
  // One connection now, so a missing or foreign file is an error at open.
  Result<Lease> first = h->acquire();
  if (!first) return first.error();
  Result<int64_t> version = (*first)->db.query_int64("PRAGMA user_version");
  if (!version) return version.error();
  if (*version != schema_version())
    return plain_error("history: " + path + " has schema version " + std::to_string(*version) +
                       ", expected " + std::to_string(schema_version()) +
                       " (the store migrates it at open)");
  return h;
}

History::History(std::string path, size_t max_connections)
    : path_(std::move(path)), max_connections_(max_connections) {}

History::~History() = default;

Result<std::unique_ptr<History::Reader>> History::open_reader() {
  Result<Database> db = Database::open(path_, {OpenMode::kRead, 5000});
  if (!db) return db.error();
  auto reader = std::make_unique<Reader>();
  reader->db = std::move(*db);
  return reader;
}

Result<History::Lease> History::acquire() {
  {
    std::unique_lock lock(mu_);
    reader_free_.wait(lock, [&] { return !idle_.empty() || open_count_ < max_connections_; });
    if (!idle_.empty()) {
      std::unique_ptr<Reader> r = std::move(idle_.back());
      idle_.pop_back();
      return Lease(this, std::move(r));
    }
    ++open_count_;  // reserve a slot; opened outside the lock
  }
  Result<std::unique_ptr<Reader>> r = open_reader();
  if (!r) {
    {
      std::lock_guard lock(mu_);
      --open_count_;
    }
    reader_free_.notify_one();
    return r.error();
  }
  return Lease(this, std::move(*r));
}

void History::release(std::unique_ptr<Reader> reader) {
  {
    std::lock_guard lock(mu_);
    idle_.push_back(std::move(reader));
  }
  reader_free_.notify_one();
}

Result<std::vector<WaitRecord>> History::wait_status(const HistoryFilter& filter) {
  if (filter.limit < 1 || filter.limit > kMaxLimit)
    return plain_error("history: limit must be 1.." + std::to_string(kMaxLimit) + ", got " +
                       std::to_string(filter.limit));
  int filters = (filter.worker_id ? kWorkerBit : 0) | (filter.pid ? kPidBit : 0) |
                (filter.before_id ? kBeforeBit : 0);
  Result<Lease> lease = acquire();
  if (!lease) return lease.error();
  Reader& reader = **lease;
  Statement& st = reader.wait_queries[filters];
  Status s = ensure_prepared(reader.db, st, wait_query_sql(filters));
  if (!s) return s.error();
  if (filter.worker_id) st.bind(1, *filter.worker_id);
  if (filter.pid) st.bind(2, int64_t{*filter.pid});
  if (filter.before_id) st.bind(3, *filter.before_id);
  st.bind(4, int64_t{filter.limit});
  return collect<WaitRecord>(st, [](const Statement& row) { return read_wait_record(row); });
}

Result<std::vector<EventRow>> History::events_after(uint64_t after_id, size_t limit) {
  limit = std::min<size_t>(limit, kMaxLimit);
  if (limit == 0) return std::vector<EventRow>{};
  Result<Lease> lease = acquire();
  if (!lease) return lease.error();
  Reader& reader = **lease;
  Status s = ensure_prepared(reader.db, reader.events_after,
                             "SELECT e.id, e.kind, e.data, e.ts_ns, e.worker_id, e.pid, e.state, e.detail, " +
                                 qualified_wait_columns() +
                                 " FROM events e LEFT JOIN wait_status w ON w.id = e.wait_id"
                                 " WHERE e.id > ?1 ORDER BY e.id LIMIT ?2");
  if (!s) return s.error();
  reader.events_after.bind(1, static_cast<int64_t>(after_id)).bind(2, static_cast<int64_t>(limit));
  return collect<EventRow>(reader.events_after, read_event_row);
}

Result<std::vector<WaitRecord>> History::recent_exits(int64_t worker_id, size_t n) {
  n = std::min<size_t>(n, kMaxLimit);
  if (n == 0) return std::vector<WaitRecord>{};
  Result<Lease> lease = acquire();
  if (!lease) return lease.error();
  Reader& reader = **lease;
  std::string sql = "SELECT ";
  sql += kWaitColumns;
  sql += " FROM wait_status WHERE worker_id = ?1 AND (wifexited = 1 OR wifsignaled = 1)"
         " ORDER BY id DESC LIMIT ?2";
  Status s = ensure_prepared(reader.db, reader.recent_exits, sql);
  if (!s) return s.error();
  reader.recent_exits.bind(1, worker_id).bind(2, static_cast<int64_t>(n));
  return collect<WaitRecord>(reader.recent_exits, [](const Statement& row) { return read_wait_record(row); });
}

// Each borrows a connection for one query of lifetime_query.h.
template <typename Fn>
auto History::with_reader(Fn fn) -> decltype(fn(std::declval<Database&>())) {
  Result<Lease> lease = acquire();
  if (!lease) return lease.error();
  return fn((*lease)->db);
}

Result<std::vector<LifetimeRecord>> History::lifetimes(const LifetimeFilter& filter) {
  return with_reader([&](Database& db) { return query_lifetimes(db, filter); });
}

Result<std::vector<LifetimeRecord>> History::alive_at(int64_t t_ns) {
  return with_reader([&](Database& db) { return query_alive_at(db, t_ns); });
}

Result<std::vector<ProcessGap>> History::gaps(int64_t since_ns, int64_t until_ns, int limit) {
  return with_reader([&](Database& db) { return query_gaps(db, since_ns, until_ns, limit); });
}

Result<std::optional<std::vector<ThreadLifetime>>> History::threads(const ThreadFilter& filter) {
  return with_reader([&](Database& db) { return query_threads(db, filter); });
}

Result<std::optional<int64_t>> History::oldest_lifetime_ns() {
  return with_reader([&](Database& db) { return query_oldest_lifetime(db); });
}

}  // namespace forkwatch::db
