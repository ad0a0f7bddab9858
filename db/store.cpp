#include "store.h"

#include <pthread.h>
#include <algorithm>
#include <iterator>

#include "database.h"
#include "event_json.h"
#include "log.h"
#include "schema.h"
#include "wait_row.h"

namespace forkwatch::db {

struct Store::Writer {
  Database db;
  Statement insert_wait;
  Statement insert_event;
  Statement upsert_worker;
  Statement raise_mark;  // meta: value = max(value, ?)
};

struct Store::Counts {
  uint64_t wait = 0, event = 0, worker = 0, skipped = 0;
};

namespace {

constexpr std::string_view kInsertEvent =
    "INSERT INTO events (id, ts_ns, kind, worker_id, pid, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
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
constexpr std::string_view kSelectWorkers =
    "SELECT id, name, program, spec, persistent, desired, created_ns, updated_ns FROM workers "
    "WHERE desired != 'removed' ORDER BY id";

// A failed batch waits this long before its next attempt, doubling up to the cap.
constexpr int64_t kMinBackoffMs = 100;
constexpr int64_t kMaxBackoffMs = 5000;

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

  auto writer = std::make_unique<Writer>();
  writer->db = std::move(*db);
  Database& d = writer->db;
  Result<Statement> insert_wait = d.prepare(wait_insert_sql());
  if (!insert_wait) return insert_wait.error();
  Result<Statement> insert_event = d.prepare(kInsertEvent);
  if (!insert_event) return insert_event.error();
  Result<Statement> upsert_worker = d.prepare(kUpsertWorker);
  if (!upsert_worker) return upsert_worker.error();
  Result<Statement> raise_mark = d.prepare(kRaiseMark);
  if (!raise_mark) return raise_mark.error();
  writer->insert_wait = std::move(*insert_wait);
  writer->insert_event = std::move(*insert_event);
  writer->upsert_worker = std::move(*upsert_worker);
  writer->raise_mark = std::move(*raise_mark);

  Result<int64_t> last_event = d.query_int64(kLastEventId);
  if (!last_event) return last_event.error();
  Result<int64_t> last_worker = d.query_int64(kLastWorkerId);
  if (!last_worker) return last_worker.error();
  Result<std::vector<WorkerRow>> workers = read_workers(d);
  if (!workers) return workers.error();

  std::unique_ptr<Store> store(new Store(path, options, std::move(writer)));
  store->last_event_id_ = static_cast<uint64_t>(*last_event);
  store->last_worker_id_ = *last_worker;
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
  if (event.kind == EventKind::kSample && !event.wait)
    enqueue(SampleMark{event.id});
  else
    enqueue(event);
}

void Store::save_worker(const WorkerRow& row) { enqueue(row); }

void Store::enqueue(Item item) {
  bool was_empty = false;
  bool refused = false;
  {
    std::lock_guard lock(mu_);
    if (closed_) {
      refused = true;
    } else {
      was_empty = queue_.empty();
      queue_.push_back(std::move(item));
      enqueued_items_.fetch_add(1);
    }
  }
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
  s.batches = batches_.load();
  uint64_t committed = committed_items_.load();
  uint64_t enqueued = enqueued_items_.load();
  s.queue_depth = enqueued > committed ? enqueued - committed : 0;
  s.write_errors = write_errors_.load();
  s.rows_skipped = rows_skipped_.load();
  s.items_dropped = items_dropped_.load();
  s.last_batch_ns = last_batch_ns_.load();
  s.last_batch_items = last_batch_items_.load();
  s.reap_to_record = reap_to_record_.snapshot();
  return s;
}

void Store::run() {
  pthread_setname_np(pthread_self(), "fw-store");
  std::vector<Item> batch;  // taken from the queue; kept across failed attempts
  int64_t backoff_ms = 0;
  bool stop_seen = false;
  int64_t give_up_ns = 0;  // monotonic; after the stop, failing items are abandoned then
  for (;;) {
    {
      std::unique_lock lock(mu_);
      if (batch.empty()) {
        wake_writer_.wait(lock, [&] { return !queue_.empty() || stopping_; });
      } else {
        // A failed batch waits out its backoff; newer items join it meanwhile.
        // The stop request cuts the wait short once, for a last prompt attempt.
        wake_writer_.wait_for(lock, std::chrono::milliseconds(backoff_ms),
                              [&] { return stopping_ && !stop_seen; });
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
      if (batch.empty()) return;  // stopping, and everything is committed
    }

    Counts counts;
    int64_t start = monotonic_ns();
    Status s = write_batch(batch, counts);
    if (s) {
      account_commit(batch, counts, monotonic_ns() - start);
      {
        std::lock_guard lock(mu_);
        committed_items_.fetch_add(batch.size());
      }
      committed_.notify_all();
      batch.clear();
      backoff_ms = 0;
      continue;
    }

    write_errors_.fetch_add(1);
    backoff_ms = std::clamp(backoff_ms * 2, kMinBackoffMs, kMaxBackoffMs);
    if (stop_seen && monotonic_ns() >= give_up_ns) {
      log::error("store: giving up on " + std::to_string(batch.size()) + " queued items for " +
                 path_ + " at shutdown after " + std::to_string(options_.close_retry_ms) +
                 " ms of failures: " + s.error().message());
      items_dropped_.fetch_add(batch.size());
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

Status Store::write_batch(std::vector<Item>& batch, Counts& counts) {
  Writer& w = *writer_;
  Result<Transaction> txn = Transaction::begin(w.db);
  if (!txn) return txn.error();
  uint64_t max_event_id = 0;
  int64_t max_worker_id = 0;
  for (Item& item : batch) {
    Status s = Ok{};
    if (Event* e = std::get_if<Event>(&item)) {
      max_event_id = std::max(max_event_id, e->id);
      if (e->worker_id) max_worker_id = std::max(max_worker_id, *e->worker_id);
      if (e->wait) {
        bind_wait_record(w.insert_wait, *e->wait);
        uint64_t written = counts.wait;
        s = run_row(w.insert_wait, counts.wait, counts.skipped);
        if (!s) return s;
        // The replayed event carries its row id, as /api/history shows it.
        if (counts.wait != written) e->wait->id = w.db.last_insert_rowid();
      }
      if (e->kind != EventKind::kSample) {
        w.insert_event.bind(1, static_cast<int64_t>(e->id))
            .bind(2, e->ts_ns)
            .bind(3, event_kind_name(e->kind))
            .bind(4, e->worker_id)
            .bind(5, int64_t{e->pid})
            .bind(6, event_json(*e));
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
    } else {
      max_event_id = std::max(max_event_id, std::get<SampleMark>(item).id);
    }
    if (!s) return s;
  }
  uint64_t marks = 0, skipped = 0;
  if (max_event_id > 0) {
    w.raise_mark.bind(1, std::string_view("last_event_id"))
        .bind(2, static_cast<int64_t>(max_event_id));
    Status s = run_row(w.raise_mark, marks, skipped);
    if (!s) return s;
  }
  if (max_worker_id > 0) {
    w.raise_mark.bind(1, std::string_view("last_worker_id")).bind(2, max_worker_id);
    Status s = run_row(w.raise_mark, marks, skipped);
    if (!s) return s;
  }
  counts.skipped += skipped;
  return txn->commit();
}

void Store::account_commit(const std::vector<Item>& batch, const Counts& counts, int64_t batch_ns) {
  wait_rows_.fetch_add(counts.wait);
  event_rows_.fetch_add(counts.event);
  worker_rows_.fetch_add(counts.worker);
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
