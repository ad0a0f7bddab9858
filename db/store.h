// Store: the daemon's EventSink that records into SQLite (forkwatch.db).
// publish() and save_worker() only enqueue (the loop thread never waits for
// the disk). One writer thread owns the write connection and commits all that
// is queued as one transaction per batch. A batch that fails (full disk, I/O,
// a lock) is logged, counted and retried, never dropped; a single row the
// database refuses (a constraint: a bug upstream) is logged, counted, skipped.
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
#include "sys_error.h"
#include "worker_row.h"

namespace forkwatch::db {

struct StoreOptions {
  int busy_timeout_ms = 5000;  // how long a write waits for another connection's lock
  int close_retry_ms = 10000;  // how long close() retries a failing batch before giving up
};

// Counters for /metrics; a copy, taken without stopping the writer.
struct StoreStats {
  uint64_t wait_rows = 0;      // wait_status rows committed
  uint64_t event_rows = 0;     // events rows committed
  uint64_t worker_rows = 0;    // workers upserts committed
  uint64_t batches = 0;        // transactions committed
  uint64_t queue_depth = 0;    // items enqueued and not yet committed
  uint64_t write_errors = 0;   // failed batch attempts; each is retried
  uint64_t rows_skipped = 0;   // rows refused by a constraint
  uint64_t items_dropped = 0;  // abandoned by close() after close_retry_ms of failures
  int64_t last_batch_ns = 0;   // BEGIN to COMMIT of the last committed batch
  uint64_t last_batch_items = 0;
  LatencyHistogram::Snapshot reap_to_record;  // WaitRecord::ts_ns to its commit
};

class Store : public EventSink {
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
  std::vector<WorkerRow> load_workers() const { return workers_; }  // desired != removed

  StoreStats stats() const;
  const std::string& path() const { return path_; }

 private:
  struct Writer;                  // the write connection and its statements
  struct SampleMark { uint64_t id; };  // a sample's id, for last_event_id only
  using Item = std::variant<Event, WorkerRow, SampleMark>;
  struct Counts;

  Store(std::string path, const StoreOptions& options, std::unique_ptr<Writer> writer);
  void enqueue(Item item);
  void run();  // the writer thread
  Status write_batch(std::vector<Item>& batch, Counts& counts);
  void account_commit(const std::vector<Item>& batch, const Counts& counts, int64_t batch_ns);

  const std::string path_;
  const StoreOptions options_;
  uint64_t last_event_id_ = 0;
  int64_t last_worker_id_ = 0;
  std::vector<WorkerRow> workers_;
  std::unique_ptr<Writer> writer_;  // used only by the writer thread once it runs

  mutable std::mutex mu_;
  std::condition_variable wake_writer_;  // queue_ grew or stopping_ was set
  std::condition_variable committed_;    // committed_items_ grew
  std::vector<Item> queue_;              // guarded by mu_
  bool stopping_ = false;                // guarded by mu_
  bool closed_ = false;                  // guarded by mu_; refuses new items
  // Written under mu_ (flush waits on them), read lock-free by stats().
  std::atomic<uint64_t> enqueued_items_{0};
  std::atomic<uint64_t> committed_items_{0};

  std::atomic<uint64_t> wait_rows_{0}, event_rows_{0}, worker_rows_{0}, batches_{0};
  std::atomic<uint64_t> write_errors_{0}, rows_skipped_{0}, items_dropped_{0};
  std::atomic<int64_t> last_batch_ns_{0};
  std::atomic<uint64_t> last_batch_items_{0};
  LatencyHistogram reap_to_record_;

  std::thread thread_;  // last: started once everything above exists
};

}  // namespace forkwatch::db
