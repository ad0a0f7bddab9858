#include "lifetime_query.h"

#include <algorithm>
#include <string>

#include "collect_rows.h"
#include "lifetime_row.h"

namespace forkwatch::db {
namespace {

// kLifetimeColumns with the alias l., then the wait_status link: the first
// terminating status of that pid after the fork, for the daemon's own children
// (found at read time: the reap and the kernel's exit event race).
std::string select_lifetimes() {
  std::string sql = "SELECT ";
  std::string_view cols = kLifetimeColumns;
  sql += "l.";
  for (char c : cols) {
    sql += c;
    if (c == ' ') sql += "l.";
  }
  sql += ", CASE WHEN l.reaped_by_daemon THEN (SELECT w.id FROM wait_status w WHERE w.pid = l.pid "
         "AND w.ts_ns >= l.forked_ns AND (w.wifexited = 1 OR w.wifsignaled = 1) ORDER BY w.id LIMIT 1) END "
         "FROM lifetimes l";
  return sql;
}

constexpr int kWaitIdColumn = 16;

LifetimeRecord read_record(const Statement& row) { return {read_lifetime(row), row.optional_int64(kWaitIdColumn)}; }

Status collect_into(Statement& st, std::vector<LifetimeRecord>& out) {
  Result<std::vector<LifetimeRecord>> rows = collect<LifetimeRecord>(st, read_record);
  if (!rows) return rows.error();
  out.insert(out.end(), rows->begin(), rows->end());
  return Ok{};
}

}  // namespace

Result<std::vector<LifetimeRecord>> query_lifetimes(Database& db, const LifetimeFilter& f) {
  std::string sql = select_lifetimes();
  const char* joiner = " WHERE ";
  auto where = [&](const char* clause) {
    sql += joiner;
    sql += clause;
    joiner = " AND ";
  };
  if (f.worker_id) where("l.worker_id = ?1");
  if (f.pid) where("l.pid = ?2");
  if (f.before_id) where("l.id < ?3");
  if (f.since_ns) where("(l.exited_ns IS NULL OR l.exited_ns >= ?4)");
  if (f.until_ns) where("l.forked_ns <= ?5");
  if (f.alive) where(*f.alive ? "l.exited_ns IS NULL" : "l.exited_ns IS NOT NULL");
  sql += " ORDER BY l.id DESC LIMIT ?6";
  Result<Statement> st = db.prepare(sql);
  if (!st) return st.error();
  if (f.worker_id) st->bind(1, *f.worker_id);
  if (f.pid) st->bind(2, int64_t{*f.pid});
  if (f.before_id) st->bind(3, *f.before_id);
  if (f.since_ns) st->bind(4, *f.since_ns);
  if (f.until_ns) st->bind(5, *f.until_ns);
  st->bind(6, int64_t{std::clamp(f.limit, 1, 1000)});
  return collect<LifetimeRecord>(*st, read_record);
}

Result<std::vector<LifetimeRecord>> query_alive_at(Database& db, int64_t t_ns) {
  Result<Statement> alive = db.prepare(select_lifetimes() + " WHERE l.span_class = -1 AND l.forked_ns <= ?1");
  if (!alive) return alive.error();
  Result<Statement> ended = db.prepare(select_lifetimes() +
                                       " WHERE l.span_class = ?1 AND l.forked_ns > ?2 AND l.forked_ns <= ?3"
                                       " AND l.exited_ns > ?3");
  if (!ended) return ended.error();
  std::vector<LifetimeRecord> out;
  alive->bind(1, t_ns);
  if (auto r = collect_into(*alive, out); !r) return r.error();
  for (int k = 0; k <= kMaxSpanClass; ++k) {
    const int64_t bound = span_class_bound_ns(k);
    const int64_t lo = t_ns > INT64_MIN + bound ? t_ns - bound : INT64_MIN;
    ended->bind(1, int64_t{k}).bind(2, lo).bind(3, t_ns);
    if (auto r = collect_into(*ended, out); !r) return r.error();
  }
  std::sort(out.begin(), out.end(), [](const LifetimeRecord& a, const LifetimeRecord& b) {
    return a.life.pid != b.life.pid ? a.life.pid < b.life.pid : a.life.id < b.life.id;
  });
  return out;
}

Result<std::vector<ProcessGap>> query_gaps(Database& db, int64_t since_ns, int64_t until_ns, int limit) {
  Result<Statement> st =
      db.prepare("SELECT ts_ns, lost, reason FROM process_gaps WHERE ts_ns >= ?1 AND ts_ns <= ?2 ORDER BY id LIMIT ?3");
  if (!st) return st.error();
  st->bind(1, since_ns).bind(2, until_ns).bind(3, int64_t{limit});
  std::vector<ProcessGap> out;
  for (;;) {
    Result<StepResult> r = st->step();
    if (!r) return r.error();
    if (*r == StepResult::kDone) break;
    out.push_back({st->int64(0), static_cast<uint64_t>(st->int64(1)), st->text(2)});
  }
  return out;
}

Result<std::optional<std::vector<ThreadLifetime>>> query_threads(Database& db, const ThreadFilter& f) {
  Result<Statement> exists = db.prepare("SELECT 1 FROM lifetimes WHERE id = ?1");
  if (!exists) return exists.error();
  exists->bind(1, f.lifetime_id);
  Result<StepResult> found = exists->step();
  if (!found) return found.error();
  if (*found == StepResult::kDone) return std::optional<std::vector<ThreadLifetime>>{};
  exists->reset();
  Result<Statement> st = db.prepare("SELECT " + std::string(kThreadColumns) +
                                    " FROM thread_lifetimes WHERE lifetime_id = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3");
  if (!st) return st.error();
  st->bind(1, f.lifetime_id).bind(2, f.before_id.value_or(INT64_MAX)).bind(3, int64_t{std::clamp(f.limit, 1, 1000)});
  Result<std::vector<ThreadLifetime>> rows = collect<ThreadLifetime>(*st, read_thread);
  if (!rows) return rows.error();
  return std::optional<std::vector<ThreadLifetime>>(std::move(*rows));
}

Result<std::optional<int64_t>> query_oldest_lifetime(Database& db) {
  Result<Statement> st = db.prepare("SELECT forked_ns FROM lifetimes ORDER BY id LIMIT 1");
  if (!st) return st.error();
  Result<StepResult> r = st->step();
  if (!r) return r.error();
  if (*r == StepResult::kDone) return std::optional<int64_t>{};
  return std::optional<int64_t>(st->int64(0));
}

}  // namespace forkwatch::db
