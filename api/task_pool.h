// TaskPool: cpp-httplib's task queue, grown on demand. Debian's library fixes
// its own pool at 8 threads, and every open SSE stream or idle keep-alive
// connection holds one (FIELD-NOTES.md). This pool starts threads as requests
// need them, up to `max_threads`, and lets idle ones go after a while, so an
// unwatched daemon keeps few threads and a hundred SSE clients still fit.
#pragma once

#include <httplib.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace forkwatch {

class TaskPool : public httplib::TaskQueue {
 public:
  TaskPool(size_t max_threads, size_t keep_idle);
  ~TaskPool() override;

  void enqueue(std::function<void()> fn) override;
  void shutdown() override;

 private:
  void run();

  const size_t max_threads_, keep_idle_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;  // guarded by mu_
  size_t threads_ = 0, idle_ = 0;           // guarded by mu_
  bool shutdown_ = false;                   // guarded by mu_
  std::vector<std::thread> workers_;        // guarded by mu_; joined at shutdown
  std::vector<std::thread::id> finished_;   // guarded by mu_; threads that left, to join
};

}  // namespace forkwatch
