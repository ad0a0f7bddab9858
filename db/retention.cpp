#include "retention.h"

#include <algorithm>
#include <limits>
#include <optional>
#include <tuple>

namespace forkwatch::db {
namespace {

// The rows are read oldest first by id (the rowid: no index needed, and ids
// grow with time); a step looks at no more than the batch oldest rows, so it
// costs the same on a table of a thousand rows or of millions.
constexpr std::string_view kOldestWaitTs =
    "SELECT max(ts_ns) FROM (SELECT ts_ns FROM wait_status ORDER BY id LIMIT ?1)";
constexpr std::string_view kOldestEventTs =
    "SELECT max(ts_ns) FROM (SELECT ts_ns FROM events ORDER BY id LIMIT ?1)";
// Ids are dense (oldest rows go first), so the span of ids is the row count
// within what retention has cut: two index lookups instead of count(*)'s scan.
constexpr std::string_view kSpanWait = "SELECT max(id) - min(id) + 1 FROM wait_status WHERE ?1 = ?1";
constexpr std::string_view kSpanEvents = "SELECT max(id) - min(id) + 1 FROM events WHERE ?1 = ?1";
constexpr std::string_view kDeleteWait =
    "DELETE FROM wait_status WHERE id IN (SELECT id FROM wait_status ORDER BY id LIMIT ?2) "
    "AND ts_ns <= ?1";
constexpr std::string_view kDeleteEvents =
    "DELETE FROM events WHERE id IN (SELECT id FROM events ORDER BY id LIMIT ?2) AND ts_ns <= ?1";

// A lifetime ages by its end; one still alive is kept whatever its age.
constexpr std::string_view kOldestLifetimeTs =
    "SELECT max(exited_ns) FROM (SELECT exited_ns FROM lifetimes WHERE exited_ns IS NOT NULL ORDER BY id LIMIT ?1)";
constexpr std::string_view kDeleteLifetimes =
    "DELETE FROM lifetimes WHERE id IN (SELECT id FROM lifetimes WHERE exited_ns IS NOT NULL ORDER BY id LIMIT ?2) "
    "AND exited_ns <= ?1";
// Lifetime ids have holes where live processes' rows stay: an upper bound, near enough.
constexpr std::string_view kSpanLifetimes = "SELECT max(id) - min(id) + 1 FROM lifetimes WHERE ?1 = ?1";
constexpr std::string_view kDeleteGaps =
    "DELETE FROM process_gaps WHERE id IN (SELECT id FROM process_gaps ORDER BY id LIMIT ?2) AND ts_ns <= ?1";

Result<std::optional<int64_t>> query_optional(Statement& st, int64_t batch) {
  st.bind(1, batch);
  Result<StepResult> r = st.step();
  std::optional<int64_t> value;
  if (r && *r == StepResult::kRow) value = st.optional_int64(0);
  st.reset();
  if (!r) return r.error();
  return value;
}

Status prepare_into(Database& db, Statement& st, std::string_view sql) {
  Result<Statement> p = db.prepare(sql);
  if (!p) return p.error();
  st = std::move(*p);
  return Ok{};
}

}  // namespace

Result<Retention> Retention::prepare(Database& db, const RetentionLimits& limits) {
  Retention r;
  r.db_ = &db;
  r.limits_ = limits;
  r.limits_.batch_rows = std::max(1, limits.batch_rows);
  for (auto [st, sql] : {std::pair{&r.oldest_wait_ts_, kOldestWaitTs}, {&r.oldest_event_ts_, kOldestEventTs},
                         {&r.delete_wait_, kDeleteWait}, {&r.delete_events_, kDeleteEvents},
                         {&r.span_wait_, kSpanWait}, {&r.span_events_, kSpanEvents},
                         {&r.oldest_lifetime_ts_, kOldestLifetimeTs}, {&r.delete_lifetimes_, kDeleteLifetimes},
                         {&r.delete_gaps_, kDeleteGaps}, {&r.span_lifetimes_, kSpanLifetimes}}) {
    Status s = prepare_into(db, *st, sql);
    if (!s) return s.error();
  }
  Result<int64_t> mode = db.query_int64("PRAGMA auto_vacuum");
  if (!mode) return mode.error();
  r.incremental_ = *mode == 2;  // 0 none, 1 full, 2 incremental (sqlite.org/pragma.html#pragma_auto_vacuum)
  return r;
}

Result<int64_t> Retention::used_bytes(int64_t& file_bytes) {
  Result<int64_t> pages = db_->query_int64("PRAGMA page_count");
  if (!pages) return pages.error();
  Result<int64_t> free_pages = db_->query_int64("PRAGMA freelist_count");
  if (!free_pages) return free_pages.error();
  Result<int64_t> page_size = db_->query_int64("PRAGMA page_size");
  if (!page_size) return page_size.error();
  file_bytes = *pages * *page_size;
  return (*pages - *free_pages) * *page_size;
}

Result<RetentionStep> Retention::delete_through(int64_t cut_ts_ns, int64_t wait_limit, int64_t event_limit,
                                               int64_t lifetime_limit) {
  RetentionStep r;
  Result<Transaction> txn = Transaction::begin(*db_);
  if (!txn) return txn.error();
  for (auto [st, count, limit] : {std::tuple{&delete_wait_, &r.wait_rows, wait_limit},
                                  {&delete_events_, &r.event_rows, event_limit},
                                  {&delete_lifetimes_, &r.lifetime_rows, lifetime_limit},
                                  {&delete_gaps_, &r.gap_rows, int64_t{limits_.batch_rows}}}) {
    st->bind(1, cut_ts_ns).bind(2, limit);
    Status s = st->run();
    if (!s) return s.error();
    *count = static_cast<uint64_t>(db_->changes());
  }
  Status s = txn->commit();
  if (!s) return s.error();
  r.more = r.wait_rows == static_cast<uint64_t>(wait_limit) || r.event_rows == static_cast<uint64_t>(event_limit) ||
           r.lifetime_rows == static_cast<uint64_t>(lifetime_limit);
  return r;
}

Result<RetentionStep> Retention::step(int64_t now_ns, uint64_t added_wait, uint64_t added_events,
                                     uint64_t added_lifetimes) {
  const int64_t batch = limits_.batch_rows;
  RetentionStep total;
  auto add = [&total](const RetentionStep& s) {
    total.wait_rows += s.wait_rows;
    total.event_rows += s.event_rows;
    total.lifetime_rows += s.lifetime_rows;
    total.gap_rows += s.gap_rows;
    total.more = total.more || s.more;
  };
  // The age is looked at once per age_interval_ns (or back to back while a
  // step finds more); the size, three PRAGMAs, at every step.
  if (limits_.max_age_ns > 0 && (aging_ || now_ns >= next_age_ns_)) {
    next_age_ns_ = now_ns + limits_.age_interval_ns;
    Result<RetentionStep> aged = delete_through(now_ns - limits_.max_age_ns - 1, batch, batch, batch);
    if (!aged) return aged.error();
    add(*aged);
    aging_ = aged->more;
  }
  int64_t file_bytes = 0;
  Result<int64_t> used = used_bytes(file_bytes);
  if (!used) return used.error();
  if (limits_.max_bytes > 0) {
    if (*used > high_mark(limits_.max_bytes)) shrinking_ = true;
    if (shrinking_) {
      // One time slice off both tables: up to the later of the batch oldest
      // rows of whichever table reaches less far, so neither is emptied first.
      // Never more rows than the bytes over the low mark stand for: after one
      // large batch (a loaded writer commits thousands at once), "batch plus
      // what was just added" was every row, and a step emptied both tables.
      const double over = static_cast<double>(*used - low_mark(limits_.max_bytes)) / static_cast<double>(*used);
      auto share = [&](Statement& span, int64_t limit) -> Result<int64_t> {
        Result<std::optional<int64_t>> rows = query_optional(span, 0);
        if (!rows) return rows.error();
        const int64_t needed = static_cast<int64_t>(static_cast<double>(rows->value_or(0)) * over) + 1;
        return std::clamp<int64_t>(needed, 1, limit);
      };
      Result<int64_t> wait_limit = share(span_wait_, batch + static_cast<int64_t>(added_wait));
      if (!wait_limit) return wait_limit.error();
      Result<int64_t> event_limit = share(span_events_, batch + static_cast<int64_t>(added_events));
      if (!event_limit) return event_limit.error();
      Result<int64_t> lifetime_limit = share(span_lifetimes_, batch + static_cast<int64_t>(added_lifetimes));
      if (!lifetime_limit) return lifetime_limit.error();
      std::optional<int64_t> cut;
      for (auto [st, limit] : {std::pair{&oldest_wait_ts_, *wait_limit}, {&oldest_event_ts_, *event_limit},
                               {&oldest_lifetime_ts_, *lifetime_limit}}) {
        Result<std::optional<int64_t>> ts = query_optional(*st, limit);
        if (!ts) return ts.error();
        if (*ts) cut = cut ? std::min(*cut, **ts) : **ts;
      }
      RetentionStep sized;
      if (cut) {
        Result<RetentionStep> s = delete_through(*cut, *wait_limit, *event_limit, *lifetime_limit);
        if (!s) return s.error();
        sized = *s;
        add(sized);
      }
      used = used_bytes(file_bytes);
      if (!used) return used.error();
      // Nothing left to delete: what remains is not history (workers, meta).
      if (*used <= low_mark(limits_.max_bytes) || sized.wait_rows + sized.event_rows + sized.lifetime_rows == 0)
        shrinking_ = false;
      total.more = total.more || shrinking_;
    }
    if (incremental_ && file_bytes > high_mark(limits_.max_bytes)) {
      // Every free page: they are what this and the last steps deleted, so
      // the work stays proportional to the inserts.
      Status s = db_->exec("PRAGMA incremental_vacuum");
      if (!s) return s.error();
      used = used_bytes(file_bytes);
      if (!used) return used.error();
    }
  }
  total.db_bytes = file_bytes;
  return total;
}

}  // namespace forkwatch::db
