#include "store.h"

#include <pthread.h>
#include <algorithm>
#include <iterator>

#include "database.h"
#include "lifetime_row.h"
#include "log.h"
#include "schema.h"
#include "wait_row.h"

namespace forkwatch::db {

struct Store::Writer {
  Database db;  // first: closed after every statement below is finalized
  Statement insert_wait;
  Statement insert_event;
  Statement upsert_worker;
  Statement raise_mark;  // meta: value = max(value, ?)
  Statement upsert_lifetime;
  Statement insert_gap;
  Statement upsert_thread;
  std::optional<Retention> retention;
};

struct Store::Counts {
  uint64_t wait = 0, event = 0, worker = 0, skipped = 0, lifetime = 0, gap = 0, thread = 0;
};

namespace {

// data stays '' (schema v3): replay rebuilds the JSON from the columns.
constexpr std::string_view kInsertEvent =
    "INSERT INTO events (id, ts_ns, kind, worker_id, pid, data, state, detail, wait_id) "
    "VALUES (?1, ?2, ?3, ?4, ?5, '', ?6, ?7, ?8)";
// created_ns is kept from the first save: it is when the worker was created.
constexpr std::string_view kUpsertWorker =
    "INSERT INTO workers (id, name, program, spec, persistent, desired, created_ns, updated_ns) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT(id) DO UPDATE SET name = excluded.name, "
    "program = excluded.program, spec = excluded.spec, persistent = excluded.persistent, "
    "desired = excluded.desired, updated_ns = excluded.updated_ns";
constexpr std::string_view kRaiseMark =
    "INSERT INTO meta (key, value) VALUES (?1, ?2) "
    "ON CONFLICT(key) DO UPDATE SET value = max(value, excluded.value)";
constexpr std::string_view kLastEventId =
    "SELECT max(coalesce((SELECT max(id) FROM events), 0), "
    "coalesce((SELECT value FROM meta WHERE key = 'last_event_id'), 0))";
constexpr std::string_view kLastWorkerId =
    "SELECT max(coalesce((SELECT max(id) FROM workers), 0), "
    "coalesce((SELECT max(worker_id) FROM wait_status), 0), "
    "coalesce((SELECT value FROM meta WHERE key = 'last_worker_id'), 0))";
// Lifetime ids are handed out at fork and must not be reused either.
constexpr std::string_view kLastLifetimeId =
    "SELECT max(coalesce((SELECT max(id) FROM lifetimes), 0), "
    "coalesce((SELECT value FROM meta WHERE key = 'last_lifetime_id'), 0))";
constexpr std::string_view kLastThreadId =
    "SELECT max(coalesce((SELECT max(id) FROM thread_lifetimes), 0), "
    "coalesce((SELECT value FROM meta WHERE key = 'last_thread_id'), 0))";
constexpr std::string_view kInsertGap = "INSERT INTO process_gaps (ts_ns, lost, reason) VALUES (?1, ?2, ?3)";
constexpr std::string_view kSelectWorkers =
    "SELECT id, name, program, spec, persistent, desired, created_ns, updated_ns FROM workers "
    "WHERE desired != 'removed' ORDER BY id";

// A failed batch waits this long before its next attempt, doubling up to the
// cap: the cap is also how late a freed disk can be noticed.
constexpr int64_t kMinBackoffMs = 100;
constexpr int64_t kMaxBackoffMs = 2000;
// A file made before auto_vacuum=INCREMENTAL is converted at open with a
// VACUUM if it is this small (seconds at most); a larger one keeps reusing
// its free pages instead (docs/operations.md).
constexpr int64_t kVacuumAtOpenMaxBytes = 64 << 20;
// The WAL is cut back to this after each checkpoint (journal_size_limit),
// a quarter of the size limit when that is smaller.
constexpr int64_t kWalLimitBytes = 4 << 20;

std::string ms_text(int64_t ns) { return std::to_string(ns / 1'000'000) + " ms"; }

Status make_incremental(Database& db, const std::string& path, int64_t max_bytes) {
  Result<int64_t> mode = db.query_int64("PRAGMA auto_vacuum");
  if (!mode) return mode.error();
  if (*mode == 2 || max_bytes <= 0 || path == ":memory:") return Ok{};
  Result<int64_t> pages = db.query_int64("PRAGMA page_count");
  if (!pages) return pages.error();
  Result<int64_t> page_size = db.query_int64("PRAGMA page_size");
  if (!page_size) return page_size.error();
  const int64_t bytes = *pages * *page_size;
  if (bytes > kVacuumAtOpenMaxBytes) {
    log::warning("store: " + path + " (" + std::to_string(bytes >> 20) +
                 " MiB) was made without auto_vacuum; retention keeps its use bounded but the file "
                 "will not shrink (docs/operations.md: convert it once with VACUUM)");
    return Ok{};
  }
  Status s = db.exec("PRAGMA auto_vacuum=INCREMENTAL; VACUUM");
  if (s) log::notice("store: " + path + " converted to auto_vacuum=INCREMENTAL");
  return s;
}

Result<std::vector<WorkerRow>> read_workers(Database& db) {
  Result<Statement> st = db.prepare(kSelectWorkers);
  if (!st) return st.error();
  std::vector<WorkerRow> rows;
  for (;;) {
    Result<StepResult> r = st->step();
    if (!r) return r.error();
    if (*r == StepResult::kDone) break;
    WorkerRow row;
    row.id = st->int64(0);
    row.name = st->text(1);
    row.program = st->text(2);
    row.spec = st->text(3);
    row.persistent = st->int64(4) != 0;
    // The table's CHECK admits nothing else.
    row.desired = parse_desired(st->text(5)).value_or(Desired::kRemoved);
    row.created_ns = st->int64(6);
    row.updated_ns = st->int64(7);
    rows.push_back(std::move(row));
  }
  return rows;
}

// A row refused by a constraint is a bug upstream; retrying cannot fix it, and
// holding it would stop every later row. Say so loudly and go on.
Status run_row(Statement& st, uint64_t& written, uint64_t& skipped) {
  Status s = st.run();
  if (s) {
    ++written;
    return s;
  }
  if (!st.constraint_failed()) return s;
  ++skipped;
  log::error("store: row refused and skipped: " + s.error().message());
  return Ok{};
}

}  // namespace

Result<std::unique_ptr<Store>> Store::open(const std::string& path, const StoreOptions& options) {
  Result<Database> db = Database::open(path, {OpenMode::kWrite, options.busy_timeout_ms});
  if (!db) return db.error();
  Status migrated = migrate(*db);
  if (!migrated) return migrated.error();
  Status incremental = make_incremental(*db, path, options.retention.max_bytes);
  if (!incremental) return incremental.error();
  int64_t wal_limit = kWalLimitBytes;
  if (options.retention.max_bytes > 0) wal_limit = std::min(wal_limit, options.retention.max_bytes / 4);
  Status wal = db->exec("PRAGMA journal_size_limit=" + std::to_string(wal_limit));
  if (!wal) return wal.error();

  auto writer = std::make_unique<Writer>();
  writer->db = std::move(*db);
  Database& d = writer->db;
  for (auto [st, sql] : {std::pair{&writer->insert_wait, wait_insert_sql()}, {&writer->insert_event, kInsertEvent},
                         {&writer->upsert_worker, kUpsertWorker}, {&writer->raise_mark, kRaiseMark},
                         {&writer->upsert_lifetime, lifetime_upsert_sql()}, {&writer->insert_gap, kInsertGap},
                         {&writer->upsert_thread, thread_upsert_sql()}}) {
    Result<Statement> p = d.prepare(sql);
    if (!p) return p.error();
    *st = std::move(*p);
  }
  Result<Retention> retention = Retention::prepare(d, options.retention);
  if (!retention) return retention.error();
  if (retention->enabled()) writer->retention.emplace(std::move(*retention));

  int64_t last_event = 0, last_worker = 0, last_lifetime = 0, last_thread = 0;
  for (auto [out, sql] : {std::pair{&last_event, kLastEventId}, {&last_worker, kLastWorkerId},
                          {&last_lifetime, kLastLifetimeId}, {&last_thread, kLastThreadId}}) {
    Result<int64_t> v = d.query_int64(sql);
    if (!v) return v.error();
    *out = *v;
  }
  Result<std::vector<WorkerRow>> workers = read_workers(d);
  if (!workers) return workers.error();

  std::unique_ptr<Store> store(new Store(path, options, std::move(writer)));
  store->last_event_id_ = static_cast<uint64_t>(last_event);
  store->last_worker_id_ = last_worker;
  store->last_lifetime_id_ = last_lifetime;
  store->last_thread_id_ = last_thread;
  store->workers_ = std::move(*workers);
  // From here on only the writer thread touches writer_.
  store->thread_ = std::thread([s = store.get()] { s->run(); });
  return store;
}

Store::Store(std::string path, const StoreOptions& options, std::unique_ptr<Writer> writer)
    : path_(std::move(path)), options_(options), writer_(std::move(writer)) {}

Store::~Store() { close(); }

void Store::publish(const Event& event) {
  // A sample is shown live, not replayed; only its id must not be reused.
  // Process events are coalesced for the browser; their record is the lifetimes table.
  if ((event.kind == EventKind::kSample || event.kind == EventKind::kProcess) && !event.wait)
    enqueue(SampleMark{event.id});
  else
    enqueue(event);
}

void Store::save_worker(const WorkerRow& row) { enqueue(row); }

void Store::record_lifetime(const Lifetime& l) { enqueue(l); }

void Store::record_gap(const ProcessGap& g) { enqueue(g); }

void Store::record_thread(const ThreadLifetime& t) { enqueue(t); }

void Store::enqueue(Item item) {
  bool was_empty = false;
  bool refused = false;
  bool first_drop = false;
  {
    std::lock_guard lock(mu_);
    const bool full = enqueued_items_.load() - committed_items_.load() >= options_.max_queue_items;
    Event* event = std::get_if<Event>(&item);
    if (closed_) {
      refused = true;
    } else if (full && (std::holds_alternative<Lifetime>(item) || std::holds_alternative<ProcessGap>(item) ||
                        std::holds_alternative<ThreadLifetime>(item))) {
      if (const Lifetime* l = std::get_if<Lifetime>(&item))
        pending_marks_.lifetime_id = std::max(pending_marks_.lifetime_id, l->id);
      if (const ThreadLifetime* t = std::get_if<ThreadLifetime>(&item))
        pending_marks_.thread_id = std::max(pending_marks_.thread_id, t->id);
      items_dropped_.fetch_add(1);
      first_drop = !dropping_logged_;
      dropping_logged_ = true;
    } else if (full && !std::holds_alternative<WorkerRow>(item)) {
      // Only the ids survive, so that they are never handed out again.
      uint64_t id = event ? event->id : std::get<SampleMark>(item).id;
      pending_marks_.event_id = std::max(pending_marks_.event_id, id);
      if (event && event->worker_id)
        pending_marks_.worker_id = std::max(pending_marks_.worker_id, *event->worker_id);
      if (event) {
        items_dropped_.fetch_add(1);
        if (event->wait) wait_rows_dropped_.fetch_add(1);
        first_drop = !dropping_logged_;
        dropping_logged_ = true;
      }
    } else {
      was_empty = queue_.empty();
      queue_.push_back(std::move(item));
      enqueued_items_.fetch_add(1);
    }
  }
  if (first_drop)
    log::error("store: the queue for " + path_ + " is full (" + std::to_string(options_.max_queue_items) +
               " items) while the database cannot be written: new events are dropped and counted "
               "(forkwatch_store_dropped_total) until it catches up");
  if (refused) {
    log::error("store: " + path_ + " is closed; an item published after close() is not recorded");
    return;
  }
  // The writer only sleeps on an empty queue, so only the first item wakes it.
  if (was_empty) wake_writer_.notify_one();
}

void Store::flush() {
  std::unique_lock lock(mu_);
  uint64_t target = enqueued_items_.load();
  committed_.wait(lock, [&] { return committed_items_.load() >= target; });
}

bool Store::flush_for(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  uint64_t target = enqueued_items_.load();
  return committed_.wait_for(lock, timeout, [&] { return committed_items_.load() >= target; });
}

void Store::close() {
  {
    std::lock_guard lock(mu_);
    if (closed_) return;
    closed_ = true;
    stopping_ = true;
  }
  wake_writer_.notify_one();
  if (thread_.joinable()) thread_.join();
  writer_.reset();  // finalizes the statements, then closes the connection
  committed_.notify_all();
}

StoreStats Store::stats() const {
  StoreStats s;
  s.wait_rows = wait_rows_.load();
  s.event_rows = event_rows_.load();
  s.worker_rows = worker_rows_.load();
  s.lifetime_rows = lifetime_rows_.load();
  s.gap_rows = gap_rows_.load();
  s.thread_rows = thread_rows_.load();
  s.retention_lifetime_rows = retention_lifetime_rows_.load();
  s.batches = batches_.load();
  uint64_t committed = committed_items_.load();
  uint64_t enqueued = enqueued_items_.load();
  s.queue_depth = enqueued > committed ? enqueued - committed : 0;
  s.write_errors = write_errors_.load();
  s.rows_skipped = rows_skipped_.load();
  s.items_dropped = items_dropped_.load();
  s.wait_rows_dropped = wait_rows_dropped_.load();
  s.max_queue_items = options_.max_queue_items;
  const int64_t outage = outage_start_ns_.load();
  // A full queue is degraded even before the first write attempt has failed.
  s.degraded = outage != 0 || s.queue_depth >= options_.max_queue_items;
  s.degraded_for_ns = outage != 0 ? monotonic_ns() - outage : 0;
  {
    std::lock_guard lock(error_mu_);
    s.last_error = last_error_;
  }
  s.last_outage_ns = last_outage_ns_.load();
  s.last_catch_up_ns = last_catch_up_ns_.load();
  s.retention_wait_rows = retention_wait_rows_.load();
  s.retention_event_rows = retention_event_rows_.load();
  s.db_bytes = db_bytes_.load();
  s.last_batch_ns = last_batch_ns_.load();
  s.last_batch_items = last_batch_items_.load();
  s.reap_to_record = reap_to_record_.snapshot();
  return s;
}

// The writer thread never ends by an exception: one from a batch (bad_alloc,
// say) is an error like a failed write, retried with backoff and counted.
Status Store::contained_write(std::vector<Item>& batch, const Marks& marks, Counts& counts) {
  try {
    return write_batch(batch, marks, counts);
  } catch (const std::exception& e) {
    return plain_error(std::string("writing a batch threw: ") + e.what());
  } catch (...) {
    return plain_error("writing a batch threw");
  }
}

void Store::run() {
  pthread_setname_np(pthread_self(), "fw-store");
  std::vector<Item> batch;  // taken from the queue; kept across failed attempts
  Marks marks;              // likewise
  int64_t backoff_ms = 0;
  bool stop_seen = false;
  int64_t give_up_ns = 0;  // monotonic; after the stop, failing items are abandoned then
  // The first retention step runs soon after open, then once per interval
  // while within the limits, and back to back (between batches) while not.
  int64_t next_retention_ns = writer_->retention ? monotonic_ns() : INT64_MAX;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      auto ready = [&] { return !queue_.empty() || stopping_; };
      if (!batch.empty()) {
        // A failed batch waits out its backoff; newer items join it meanwhile.
        // The stop request cuts the wait short once, for a last prompt attempt.
        wake_writer_.wait_for(lock, std::chrono::milliseconds(backoff_ms),
                              [&] { return stopping_ && !stop_seen; });
      } else if (next_retention_ns != INT64_MAX) {
        wake_writer_.wait_until(
            lock, std::chrono::steady_clock::time_point(std::chrono::nanoseconds(next_retention_ns)), ready);
      } else {
        wake_writer_.wait(lock, ready);
      }
      if (stopping_ && !stop_seen) {
        stop_seen = true;
        give_up_ns = monotonic_ns() + int64_t{options_.close_retry_ms} * 1'000'000;
      }
      if (batch.empty()) {
        batch.swap(queue_);
      } else {
        std::move(queue_.begin(), queue_.end(), std::back_inserter(batch));
        queue_.clear();
      }
      marks.event_id = std::max(marks.event_id, pending_marks_.event_id);
      marks.worker_id = std::max(marks.worker_id, pending_marks_.worker_id);
      marks.lifetime_id = std::max(marks.lifetime_id, pending_marks_.lifetime_id);
      marks.thread_id = std::max(marks.thread_id, pending_marks_.thread_id);
      pending_marks_ = {};
      if (batch.empty() && stopping_) return;  // everything is committed
    }

    if (batch.empty()) {
      // Woken for retention only. (Marks come only with a full queue, never alone.)
      if (monotonic_ns() >= next_retention_ns) {
        retention_step();
        next_retention_ns = next_retention_after_step();
      }
      continue;
    }

    Counts counts;
    int64_t start = monotonic_ns();
    Status s = contained_write(batch, marks, counts);
    if (s) {
      account_commit(batch, counts, monotonic_ns() - start);
      on_commit(batch.size(), start);
      batch.clear();
      marks = {};
      backoff_ms = 0;
      // After every commit: the size grows only here, and a step within the
      // limits is three PRAGMAs.
      if (writer_->retention && !stop_seen) {
        retention_step();
        next_retention_ns = next_retention_after_step();
      }
      continue;
    }

    backoff_ms = std::clamp(backoff_ms * 2, kMinBackoffMs, kMaxBackoffMs);
    on_failure(s.error());
    if (stop_seen && monotonic_ns() >= give_up_ns) {
      log::error("store: giving up on " + std::to_string(batch.size()) + " queued items for " +
                 path_ + " at shutdown after " + std::to_string(options_.close_retry_ms) +
                 " ms of failures: " + s.error().message());
      items_dropped_.fetch_add(batch.size());
      uint64_t waits = 0;
      for (const Item& item : batch)
        if (const Event* e = std::get_if<Event>(&item); e && e->wait) ++waits;
      wait_rows_dropped_.fetch_add(waits);
      {
        std::lock_guard lock(mu_);
        committed_items_.fetch_add(batch.size());
      }
      committed_.notify_all();
      batch.clear();
      continue;
    }
    log::error("store: could not write " + std::to_string(batch.size()) + " queued items to " +
               path_ + ", retrying in " + std::to_string(backoff_ms) +
               " ms: " + s.error().message());
  }
}

void Store::on_commit(size_t items, int64_t attempt_start_ns) {
  bool drained = false;
  int64_t outage = 0;
  uint64_t lost = 0;
  {
    std::lock_guard lock(mu_);
    // Caught up once fewer items came in during a commit than it wrote: the
    // backlog is in the file and the writer is ahead of the loop again.
    drained = queue_.size() < items;
    if (drained) dropping_logged_ = false;
    outage = outage_start_ns_.load();
    if (outage != 0) {
      const int64_t now = monotonic_ns();
      // Catching up starts with the attempt that worked, not when it returned.
      if (recovered_ns_.load() == 0) recovered_ns_.store(attempt_start_ns);
      if (drained) {
        // Caught up: everything queued during the outage is in the file.
        last_outage_ns_.store(now - outage);
        last_catch_up_ns_.store(now - recovered_ns_.load());
        const uint64_t dropped = items_dropped_.load();
        lost = dropped - dropped_reported_.exchange(dropped);
        outage_start_ns_.store(0);
        recovered_ns_.store(0);
      }
    }
    // Counted last, under the same lock: whoever flush() wakes sees the
    // outage already ended in stats(), never a caught-up store "degraded".
    committed_items_.fetch_add(items);
  }
  committed_.notify_all();
  if (outage == 0 || !drained) return;
  std::string line = "store: " + path_ + " caught up after an outage of " + ms_text(last_outage_ns_.load()) +
                     " (catching up took " + ms_text(last_catch_up_ns_.load()) + ")";
  if (lost > 0) {
    log::error(line + "; " + std::to_string(lost) + " events were dropped meanwhile (queue full)");
  } else {
    log::notice(line + "; nothing was lost");
  }
}

void Store::on_failure(const SysError& e) {
  write_errors_.fetch_add(1);
  {
    std::lock_guard lock(error_mu_);
    last_error_ = e.message();
  }
  if (outage_start_ns_.load() == 0) outage_start_ns_.store(monotonic_ns());
  recovered_ns_.store(0);
}

int64_t Store::next_retention_after_step() const {
  return monotonic_ns() + (retention_more_ ? 0 : int64_t{options_.retention_interval_ms} * 1'000'000);
}

void Store::retention_step() {
  const uint64_t waits = wait_rows_.load(), events = event_rows_.load(), lifetimes = lifetime_rows_.load();
  Result<RetentionStep> r = writer_->retention->step(realtime_ns(), waits - retention_seen_wait_,
                                                     events - retention_seen_events_,
                                                     lifetimes - retention_seen_lifetimes_);
  retention_seen_wait_ = waits;
  retention_seen_events_ = events;
  retention_seen_lifetimes_ = lifetimes;
  if (!r) {
    // Retried at the next interval; a failing disk shows in the batches too.
    log::warning("store: retention step on " + path_ + " failed: " + r.error().message());
    retention_more_ = false;
    return;
  }
  retention_wait_rows_.fetch_add(r->wait_rows);
  retention_event_rows_.fetch_add(r->event_rows);
  retention_lifetime_rows_.fetch_add(r->lifetime_rows);
  db_bytes_.store(r->db_bytes);
  retention_more_ = r->more;
}

Status Store::write_batch(std::vector<Item>& batch, const Marks& marks, Counts& counts) {
  Writer& w = *writer_;
  Result<Transaction> txn = Transaction::begin(w.db);
  if (!txn) return txn.error();
  uint64_t max_event_id = marks.event_id;
  int64_t max_worker_id = marks.worker_id;
  int64_t max_lifetime_id = marks.lifetime_id;
  int64_t max_thread_id = marks.thread_id;
  for (Item& item : batch) {
    Status s = Ok{};
    if (Event* e = std::get_if<Event>(&item)) {
      max_event_id = std::max(max_event_id, e->id);
      if (e->worker_id) max_worker_id = std::max(max_worker_id, *e->worker_id);
      std::optional<int64_t> wait_id;
      if (e->wait) {
        bind_wait_record(w.insert_wait, *e->wait);
        uint64_t written = counts.wait;
        s = run_row(w.insert_wait, counts.wait, counts.skipped);
        if (!s) return s;
        // The replayed event carries its row id, as /api/history shows it.
        if (counts.wait != written) wait_id = e->wait->id = w.db.last_insert_rowid();
      }
      if (e->kind != EventKind::kSample) {
        w.insert_event.bind(1, static_cast<int64_t>(e->id))
            .bind(2, e->ts_ns)
            .bind(3, event_kind_name(e->kind))
            .bind(4, e->worker_id)
            .bind(5, int64_t{e->pid})
            .bind(8, wait_id);
        if (e->state.empty()) w.insert_event.bind_null(6);
        else w.insert_event.bind(6, e->state);
        if (e->detail.empty()) w.insert_event.bind_null(7);
        else w.insert_event.bind(7, e->detail);
        s = run_row(w.insert_event, counts.event, counts.skipped);
      }
    } else if (WorkerRow* row = std::get_if<WorkerRow>(&item)) {
      max_worker_id = std::max(max_worker_id, row->id);
      w.upsert_worker.bind(1, row->id)
          .bind(2, row->name)
          .bind(3, row->program)
          .bind(4, row->spec)
          .bind(5, int64_t{row->persistent})
          .bind(6, desired_name(row->desired))
          .bind(7, row->created_ns)
          .bind(8, row->updated_ns);
      s = run_row(w.upsert_worker, counts.worker, counts.skipped);
    } else if (Lifetime* l = std::get_if<Lifetime>(&item)) {
      max_lifetime_id = std::max(max_lifetime_id, l->id);
      bind_lifetime(w.upsert_lifetime, *l);
      s = run_row(w.upsert_lifetime, counts.lifetime, counts.skipped);
    } else if (ThreadLifetime* t = std::get_if<ThreadLifetime>(&item)) {
      max_thread_id = std::max(max_thread_id, t->id);
      bind_thread(w.upsert_thread, *t);
      s = run_row(w.upsert_thread, counts.thread, counts.skipped);
    } else if (ProcessGap* g = std::get_if<ProcessGap>(&item)) {
      w.insert_gap.bind(1, g->ts_ns).bind(2, static_cast<int64_t>(g->lost)).bind(3, g->reason);
      s = run_row(w.insert_gap, counts.gap, counts.skipped);
    } else {
      max_event_id = std::max(max_event_id, std::get<SampleMark>(item).id);
    }
    if (!s) return s;
  }
  uint64_t mark_rows = 0, skipped = 0;
  if (max_event_id > 0) {
    w.raise_mark.bind(1, std::string_view("last_event_id"))
        .bind(2, static_cast<int64_t>(max_event_id));
    Status s = run_row(w.raise_mark, mark_rows, skipped);
    if (!s) return s;
  }
  for (auto [key, value] : {std::pair{"last_lifetime_id", max_lifetime_id}, {"last_thread_id", max_thread_id},
                            {"last_worker_id", max_worker_id}}) {
    if (value <= 0) continue;
    w.raise_mark.bind(1, std::string_view(key)).bind(2, value);
    Status s = run_row(w.raise_mark, mark_rows, skipped);
    if (!s) return s;
  }
  counts.skipped += skipped;
  return txn->commit();
}

void Store::account_commit(const std::vector<Item>& batch, const Counts& counts, int64_t batch_ns) {
  wait_rows_.fetch_add(counts.wait);
  event_rows_.fetch_add(counts.event);
  worker_rows_.fetch_add(counts.worker);
  lifetime_rows_.fetch_add(counts.lifetime);
  gap_rows_.fetch_add(counts.gap);
  thread_rows_.fetch_add(counts.thread);
  rows_skipped_.fetch_add(counts.skipped);
  batches_.fetch_add(1);
  last_batch_ns_.store(batch_ns);
  last_batch_items_.store(batch.size());
  int64_t now = realtime_ns();
  for (const Item& item : batch)
    if (const Event* e = std::get_if<Event>(&item); e && e->wait)
      reap_to_record_.record(now - e->wait->ts_ns);
}

}  // namespace forkwatch::db
