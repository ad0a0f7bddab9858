// TaskPool: the threads that serve the API's requests, grown on demand.
// HttpGate enqueues one task per whole request; an open SSE stream holds its
// thread for the stream's life. The pool starts threads as requests need
// them, up to `max_threads`, and lets idle ones go after a while, so an
// unwatched daemon keeps few threads and a hundred SSE clients still fit.
// enqueue() and shutdown() may be called from any thread.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace forkwatch {

class TaskPool {
 public:
  TaskPool(size_t max_threads, size_t keep_idle);
  ~TaskPool();

  // Runs `fn` on a pool thread; dropped once shutdown() began.
  void enqueue(std::function<void()> fn);
  // Waits for every task taken; no new ones run.
  void shutdown();

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
