#include "task_pool.h"

#include <pthread.h>
#include <algorithm>
#include <chrono>

namespace forkwatch {

TaskPool::TaskPool(size_t max_threads, size_t keep_idle)
    : max_threads_(max_threads), keep_idle_(keep_idle) {}

TaskPool::~TaskPool() { shutdown(); }

void TaskPool::enqueue(std::function<void()> fn) {
  std::unique_lock lock(mu_);
  if (shutdown_) return;
  tasks_.push_back(std::move(fn));
  // Reap threads that retired, then start one if nobody idle can take the task.
  for (auto id : finished_) {
    auto it = std::find_if(workers_.begin(), workers_.end(), [&](auto& t) { return t.get_id() == id; });
    if (it != workers_.end()) {
      it->join();
      workers_.erase(it);
    }
  }
  finished_.clear();
  if (idle_ < tasks_.size() && threads_ < max_threads_) {
    ++threads_;
    workers_.emplace_back([this] {
      pthread_setname_np(pthread_self(), "fw-http");  // so the tree shows what each thread is
      run();
    });
  }
  lock.unlock();
  cv_.notify_one();
}

void TaskPool::run() {
  std::unique_lock lock(mu_);
  for (;;) {
    ++idle_;
    bool got = cv_.wait_for(lock, std::chrono::seconds(30), [&] { return shutdown_ || !tasks_.empty(); });
    --idle_;
    if (tasks_.empty()) {
      // Timed out idle (or shutting down with nothing left): retire beyond the keep.
      if (shutdown_ || (!got && threads_ > keep_idle_)) {
        --threads_;
        if (!shutdown_) finished_.push_back(std::this_thread::get_id());
        return;
      }
      continue;
    }
    auto fn = std::move(tasks_.front());
    tasks_.pop_front();
    lock.unlock();
    fn();
    lock.lock();
  }
}

void TaskPool::shutdown() {
  std::vector<std::thread> workers;
  {
    std::lock_guard lock(mu_);
    if (shutdown_ && workers_.empty()) return;
    shutdown_ = true;
    workers.swap(workers_);
  }
  cv_.notify_all();
  for (auto& t : workers)
    if (t.joinable()) t.join();
}

}  // namespace forkwatch
