// History: read-only queries over forkwatch.db for the API threads.
// Each call borrows one of a few read connections of its own (never the
// store's writer connection); WAL lets them read while the writer commits.
// Thread-safe: any number of threads may call at once; beyond
// max_connections they wait for a free connection. Must outlive its calls.
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "event.h"
#include "lifetime_query.h"
#include "sys_error.h"

namespace forkwatch::db {

class Database;

struct HistoryFilter {
  std::optional<int64_t> worker_id;
  std::optional<pid_t> pid;
  int limit = 100;                   // 1..History::kMaxLimit
  std::optional<int64_t> before_id;  // only rows with id < before_id (paging)
};

// One stored event, for Last-Event-ID replay.
struct EventRow {
  uint64_t id = 0;
  std::string kind;  // "spawn", "exit", ... as event_kind_name()
  std::string data;  // event_json() of the event, wait.id filled in
};

class History {
 public:
  static constexpr int kMaxLimit = 1000;

  // The file must exist and be migrated (open the Store first). ":memory:" is
  // refused: an in-memory database is private to the connection that made it.
  static Result<std::unique_ptr<History>> open(const std::string& path,
                                               size_t max_connections = 4);
  ~History();

  // wait_status rows newest first (id descending). A limit outside
  // 1..kMaxLimit is an error: the API validates before asking.
  Result<std::vector<WaitRecord>> wait_status(const HistoryFilter& filter);
  // Events with id > after_id, oldest first, at most min(limit, kMaxLimit).
  Result<std::vector<EventRow>> events_after(uint64_t after_id, size_t limit);
  // A worker's last n exits (exited or killed; not stops), newest first.
  Result<std::vector<WaitRecord>> recent_exits(int64_t worker_id, size_t n);
  // Process lifetimes (lifetime_query.h): a page, what was alive at an
  // instant, gap markers, and where the record starts.
  Result<std::vector<LifetimeRecord>> lifetimes(const LifetimeFilter& filter);
  Result<std::vector<LifetimeRecord>> alive_at(int64_t t_ns);
  Result<std::vector<ProcessGap>> gaps(int64_t since_ns, int64_t until_ns, int limit);
  Result<std::optional<int64_t>> oldest_lifetime_ns();
  Result<std::optional<std::vector<ThreadLifetime>>> threads(const ThreadFilter& filter);

 private:
  struct Reader;  // one connection and its prepared statements
  class Lease;    // returns a Reader to the pool when it goes out of scope

  History(std::string path, size_t max_connections);
  Result<std::unique_ptr<Reader>> open_reader();
  Result<Lease> acquire();
  template <typename Fn>
  auto with_reader(Fn fn) -> decltype(fn(std::declval<Database&>()));
  void release(std::unique_ptr<Reader> reader);

  const std::string path_;
  const size_t max_connections_;
  std::mutex mu_;
  std::condition_variable reader_free_;
  std::vector<std::unique_ptr<Reader>> idle_;  // guarded by mu_
  size_t open_count_ = 0;                      // guarded by mu_; idle and lent out
};

}  // namespace forkwatch::db
