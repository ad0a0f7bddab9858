// Queries over the lifetimes and process_gaps tables (schema v4) for
// History's read connections: pages of lifetimes, the processes alive at an
// instant, gap markers. Pure SQL over a Database; the caller owns the
// connection and its thread (History lends one per call).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "database.h"
#include "lifetime.h"

namespace forkwatch::db {

struct LifetimeFilter {
  std::optional<int64_t> worker_id;
  std::optional<pid_t> pid;
  std::optional<int64_t> since_ns;   // alive at some point at or after it
  std::optional<int64_t> until_ns;   // forked at or before it
  std::optional<bool> alive;         // true: still running; false: ended
  int limit = 100;                   // 1..1000
  std::optional<int64_t> before_id;  // paging: only ids below it
};

// A stored lifetime and, for the daemon's own children, its wait_status row.
struct LifetimeRecord {
  Lifetime life;
  std::optional<int64_t> wait_id;
};

// Newest first (id descending).
Result<std::vector<LifetimeRecord>> query_lifetimes(Database& db, const LifetimeFilter& f);
// Every lifetime with forked_ns <= t and (alive or exited_ns > t), by pid.
// One index range per span class (lifetime_row.h): the cost follows what was
// alive near t, not the size of the table.
Result<std::vector<LifetimeRecord>> query_alive_at(Database& db, int64_t t_ns);
// Gaps with since <= ts_ns <= until, oldest first, at most limit.
Result<std::vector<ProcessGap>> query_gaps(Database& db, int64_t since_ns, int64_t until_ns, int limit);
// One lifetime's threads, newest first (id descending), at most limit
// (1..1000), only ids below before_id when given. nullopt: no lifetime `id`
// is stored (a process younger than LifetimeTracker::kAliveWriteNs is not yet).
struct ThreadFilter {
  int64_t lifetime_id = 0;
  int limit = 100;
  std::optional<int64_t> before_id;
};
Result<std::optional<std::vector<ThreadLifetime>>> query_threads(Database& db, const ThreadFilter& f);
// forked_ns of the oldest lifetime kept, nullopt when there is none.
Result<std::optional<int64_t>> query_oldest_lifetime(Database& db);

}  // namespace forkwatch::db
