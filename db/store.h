// Store: the daemon's EventSink that records into SQLite (forkwatch.db).
// publish() and save_worker() only enqueue (the loop thread never waits for
// the disk). One writer thread owns the write connection and commits all that
// is queued as one transaction per batch. A batch that fails (full disk, I/O,
// a lock) is logged, counted and retried with a bounded backoff, and the store
// says it is degraded until it has caught up. The queue is bounded: beyond
// max_queue_items new events are dropped and counted (never silently), so an
// unwritable disk costs records, not the daemon's memory. A single row the
// database refuses (a constraint: a bug upstream) is logged, counted, skipped.
// Between batches the writer applies retention in small steps.
// Threads: open(), the at-open readers and close() on the owner's thread;
// publish(), save_worker(), flush() and stats() from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "event.h"
#include "latency_histogram.h"
#include "lifetime.h"
#include "retention.h"
#include "sys_error.h"
#include "worker_row.h"

namespace forkwatch::db {

struct StoreOptions {
  int busy_timeout_ms = 5000;  // how long a write waits for another connection's lock
  int close_retry_ms = 10000;  // how long close() retries a failing batch before giving up
  // Items waiting for the writer, at most: about 19 MiB (about 330 bytes an
  // item, bench/RESULTS.md), 120 s of 100 exits a second (each exit is five
  // events). Worker rows always go in.
  size_t max_queue_items = 60000;
  RetentionLimits retention;        // none by default; forkwatchd passes its flags
  int retention_interval_ms = 1000;  // between steps while within the limits
};

// Counters for /metrics; a copy, taken without stopping the writer.
struct StoreStats {
  uint64_t wait_rows = 0;      // wait_status rows committed
  uint64_t event_rows = 0;     // events rows committed
  uint64_t worker_rows = 0;    // workers upserts committed
  uint64_t lifetime_rows = 0;  // lifetimes upserts committed
  uint64_t gap_rows = 0;       // process_gaps rows committed
  uint64_t thread_rows = 0;    // thread_lifetimes upserts committed
  uint64_t retention_lifetime_rows = 0;
  uint64_t batches = 0;        // transactions committed
  uint64_t queue_depth = 0;    // items enqueued and not yet committed
  uint64_t write_errors = 0;   // failed batch attempts; each is retried
  uint64_t rows_skipped = 0;   // rows refused by a constraint
  uint64_t items_dropped = 0;  // lost: refused by a full queue, or abandoned by close()
  uint64_t wait_rows_dropped = 0;  // wait statuses among them
  uint64_t max_queue_items = 0;
  bool degraded = false;         // a write failed and the queue has not been drained since
  int64_t degraded_for_ns = 0;   // since the first failed write of this outage; 0 if not degraded
  std::string last_error;        // of the last failed write; empty if none yet
  int64_t last_outage_ns = 0;    // first failed write to queue drained, of the last outage
  int64_t last_catch_up_ns = 0;  // first good write to queue drained, of the last outage
  uint64_t retention_wait_rows = 0;   // deleted by retention
  uint64_t retention_event_rows = 0;
  int64_t db_bytes = 0;          // the database's pages, at the last retention step
  int64_t last_batch_ns = 0;   // BEGIN to COMMIT of the last committed batch
  uint64_t last_batch_items = 0;
  LatencyHistogram::Snapshot reap_to_record;  // WaitRecord::ts_ns to its commit
};

class Store : public EventSink, public LifetimeSink {
 public:
  // Creates or migrates the file; ":memory:" gives a private database (tests).
  static Result<std::unique_ptr<Store>> open(const std::string& path,
                                             const StoreOptions& options = {});
  ~Store() override;  // close()

  // Queues one wait_status row if event.wait is set, and one events row unless
  // it is a sample (samples only advance the stored last event id).
  void publish(const Event& event) override;
  // Queues an upsert by row.id, in order with the events around it.
  void save_worker(const WorkerRow& row);
  // Queue an upsert of a process lifetime (by id) or a gap marker (issue 15).
  // Beyond max_queue_items they are dropped and counted like events.
  void record_lifetime(const Lifetime& l) override;
  void record_gap(const ProcessGap& g) override;
  void record_thread(const ThreadLifetime& t) override;
  // Blocks until everything queued before the call is committed.
  void flush();
  // flush() with a deadline; false if it passed first.
  bool flush_for(std::chrono::milliseconds timeout);
  // Commits what is queued, stops the writer, closes the database. Idempotent.
  // Events published afterwards are refused with a logged error.
  void close();

  // As found at open(), for the loop to continue numbering and to restore
  // API-started workers. last_event_id counts samples too.
  uint64_t last_event_id() const { return last_event_id_; }
  int64_t last_worker_id() const { return last_worker_id_; }
  int64_t last_lifetime_id() const { return last_lifetime_id_; }
  int64_t last_thread_id() const { return last_thread_id_; }
  std::vector<WorkerRow> load_workers() const { return workers_; }  // desired != removed

  StoreStats stats() const;
  const std::string& path() const { return path_; }

 private:
  struct Writer;                  // the write connection and its statements
  struct SampleMark { uint64_t id; };  // a sample's id, for last_event_id only
  using Item = std::variant<Event, WorkerRow, SampleMark, Lifetime, ProcessGap, ThreadLifetime>;
  struct Counts;
  struct Marks {  // ids of items never queued (dropped, folded samples): not to be reused
    uint64_t event_id = 0;
    int64_t worker_id = 0;
    int64_t lifetime_id = 0;
    int64_t thread_id = 0;
  };

  Store(std::string path, const StoreOptions& options, std::unique_ptr<Writer> writer);
  void enqueue(Item item);
  void run();  // the writer thread
  Status write_batch(std::vector<Item>& batch, const Marks& marks, Counts& counts);
  Status contained_write(std::vector<Item>& batch, const Marks& marks, Counts& counts);
  void on_commit(size_t items, int64_t attempt_start_ns);  // writer thread
  void on_failure(const SysError& e);  // writer thread
  void retention_step();                      // writer thread
  int64_t next_retention_after_step() const;  // writer thread: monotonic ns
  void account_commit(const std::vector<Item>& batch, const Counts& counts, int64_t batch_ns);

  const std::string path_;
  const StoreOptions options_;
  uint64_t last_event_id_ = 0;
  int64_t last_worker_id_ = 0;
  int64_t last_lifetime_id_ = 0;
  int64_t last_thread_id_ = 0;
  std::vector<WorkerRow> workers_;
  std::unique_ptr<Writer> writer_;  // used only by the writer thread once it runs
  bool retention_more_ = false;     // writer thread: the last step left work to do
  uint64_t retention_seen_wait_ = 0, retention_seen_events_ = 0, retention_seen_lifetimes_ = 0;  // writer thread: rows at the last step

  mutable std::mutex mu_;
  std::condition_variable wake_writer_;  // queue_ grew or stopping_ was set
  std::condition_variable committed_;    // committed_items_ grew
  std::vector<Item> queue_;              // guarded by mu_
  Marks pending_marks_;                  // guarded by mu_
  bool dropping_logged_ = false;         // guarded by mu_; once per outage
  bool stopping_ = false;                // guarded by mu_
  bool closed_ = false;                  // guarded by mu_; refuses new items
  // Written under mu_ (flush waits on them), read lock-free by stats().
  std::atomic<uint64_t> enqueued_items_{0};
  std::atomic<uint64_t> committed_items_{0};

  std::atomic<uint64_t> wait_rows_{0}, event_rows_{0}, worker_rows_{0}, batches_{0};
  std::atomic<uint64_t> lifetime_rows_{0}, gap_rows_{0}, thread_rows_{0}, retention_lifetime_rows_{0};
  std::atomic<uint64_t> write_errors_{0}, rows_skipped_{0}, items_dropped_{0}, wait_rows_dropped_{0};
  std::atomic<uint64_t> retention_wait_rows_{0}, retention_event_rows_{0};
  std::atomic<int64_t> db_bytes_{0};
  // Outage bookkeeping, monotonic ns; written by the writer, read by stats().
  std::atomic<int64_t> outage_start_ns_{0};  // 0: not degraded
  std::atomic<int64_t> recovered_ns_{0};     // the first good write of this outage, 0 if none yet
  std::atomic<int64_t> last_outage_ns_{0}, last_catch_up_ns_{0};
  std::atomic<uint64_t> dropped_reported_{0};  // items_dropped_ when the last catch-up was logged
  mutable std::mutex error_mu_;
  std::string last_error_;  // guarded by error_mu_
  std::atomic<int64_t> last_batch_ns_{0};
  std::atomic<uint64_t> last_batch_items_{0};
  LatencyHistogram reap_to_record_;

  std::thread thread_;  // last: started once everything above exists
};

}  // namespace forkwatch::db
