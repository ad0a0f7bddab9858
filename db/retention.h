// Retention: keeps the history tables (wait_status, events, lifetimes and
// process_gaps) within an age and
// a size, oldest rows first, in small steps so that the store's writer thread
// can interleave them with its inserts (each step is one short transaction
// deleting at most batch_rows rows per table). Size is the database's pages in
// use; on a file with auto_vacuum=INCREMENTAL the free pages are also handed
// back to the file system once the file is over the bound, so the file itself
// stays within it. Owned and called by the store's writer thread only.
#pragma once

#include <cstdint>

#include "database.h"
#include "sys_error.h"

namespace forkwatch::db {

struct RetentionLimits {
  int64_t max_age_ns = 0;  // 0: no limit by age
  int64_t max_bytes = 0;   // 0: no limit by size
  int batch_rows = 500;    // per table per step
  int64_t age_interval_ns = 1'000'000'000;  // how often the age limit is looked at
};

struct RetentionStep {
  uint64_t wait_rows = 0;   // deleted from wait_status
  uint64_t event_rows = 0;  // deleted from events
  uint64_t lifetime_rows = 0;  // deleted from lifetimes (finished ones only: a live process stays)
  uint64_t gap_rows = 0;       // deleted from process_gaps
  int64_t db_bytes = 0;     // page_count * page_size after the step
  bool more = false;        // a limit is still exceeded: step again soon
};

class Retention {
 public:
  // Prepares its statements on the writer's connection, which must outlive it.
  static Result<Retention> prepare(Database& db, const RetentionLimits& limits);

  // One step as of `now_ns` (CLOCK_REALTIME). While over the size limit a
  // step deletes up to batch_rows more than was inserted into each table
  // since the last step (`added_wait`, `added_events`), so it keeps pace
  // with any insert rate at a cost proportional to the inserts.
  Result<RetentionStep> step(int64_t now_ns, uint64_t added_wait = 0, uint64_t added_events = 0,
                             uint64_t added_lifetimes = 0);
  bool enabled() const { return limits_.max_age_ns > 0 || limits_.max_bytes > 0; }

  // The size (pages in use, or the whole file) at which pruning starts, and
  // the lower mark it prunes down to, so that it does not run on every insert.
  static int64_t high_mark(int64_t max_bytes) { return max_bytes / 10 * 9; }
  static int64_t low_mark(int64_t max_bytes) { return max_bytes / 10 * 8; }

 private:
  Retention() = default;
  Result<int64_t> used_bytes(int64_t& file_bytes);
  Result<RetentionStep> delete_through(int64_t cut_ts_ns, int64_t wait_limit, int64_t event_limit,
                                       int64_t lifetime_limit);

  Database* db_ = nullptr;
  RetentionLimits limits_;
  bool incremental_ = false;  // auto_vacuum=INCREMENTAL: free pages can be released
  bool shrinking_ = false;    // over the high mark; pruning until the low mark
  bool aging_ = false;        // the last age step found more to delete
  int64_t next_age_ns_ = 0;   // CLOCK_REALTIME of the next age step
  Statement oldest_wait_ts_;  // ts_ns of the limit-th oldest row (or the newest)
  Statement oldest_event_ts_;
  Statement delete_wait_;     // among the limit oldest rows, those with ts_ns <= ?
  Statement delete_events_;
  Statement span_wait_, span_events_;  // max(id) - min(id) + 1: the row count, near enough
  Statement oldest_lifetime_ts_;  // by exited_ns, among finished lifetimes
  Statement delete_lifetimes_;
  Statement delete_gaps_;
  Statement span_lifetimes_;
};

}  // namespace forkwatch::db
