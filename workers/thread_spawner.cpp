// thread-spawner: N named threads (pthread_setname_np, "spawn-1".."spawn-N")
// that share one counter behind a mutex. Idle threads add 1 every 100 ms;
// with --busy they also burn CPU between additions, so the process tree shows
// per-thread CPU. The main thread only waits for SIGTERM/SIGINT, then stops
// and joins every thread and prints the counter.

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <latch>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common.h"

using namespace forkwatch::workers;

namespace {

constexpr const char* kUsage =
    "usage: thread-spawner --threads N [--busy] [--busy-threads K]\n"
    "\n"
    "  --threads N       start N named threads (spawn-1 .. spawn-N), 1..1000\n"
    "  --busy            every thread burns CPU between counter additions\n"
    "  --busy-threads K  only the first K threads burn CPU (implies --busy)\n"
    "  --help            show this text\n"
    "Runs until SIGTERM or SIGINT, then joins its threads, prints\n"
    "'counter N' and exits 0.\n";

constexpr int kMaxThreads = 1000;
constexpr auto kIdlePeriod = std::chrono::milliseconds(100);

class SharedCounter {
 public:
  void add(std::uint64_t n) {
    std::lock_guard<std::mutex> lock(mutex_);
    value_ += n;
  }
  std::uint64_t value() {
    std::lock_guard<std::mutex> lock(mutex_);
    return value_;
  }

 private:
  std::mutex mutex_;
  std::uint64_t value_ = 0;  // guarded by mutex_
};

// Wakes idle threads at once on shutdown instead of after their next period.
class StopFlag {
 public:
  void set() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopped_ = true;
    }
    fast_.store(true, std::memory_order_relaxed);
    cv_.notify_all();
  }
  bool is_set() const { return fast_.load(std::memory_order_relaxed); }
  // True if stopped during the wait.
  bool wait_for(std::chrono::milliseconds period) {
    std::unique_lock<std::mutex> lock(mutex_);
    return cv_.wait_for(lock, period, [this] { return stopped_; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stopped_ = false;  // guarded by mutex_
  std::atomic<bool> fast_{false};
};

volatile std::uint64_t burn_sink = 0;

// A few hundred microseconds of arithmetic the optimiser cannot drop.
std::uint64_t burn(std::uint64_t seed) {
  for (int i = 0; i < 200000; ++i) {
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
  }
  return seed;
}

void run_thread(int index, bool busy, SharedCounter& counter, StopFlag& stop, std::latch& named) {
  std::string name = "spawn-" + std::to_string(index);
  pthread_setname_np(pthread_self(), name.c_str());  // at most 15 chars: fits up to 1000
  named.count_down();
  if (busy) {
    std::uint64_t seed = 0x9e3779b97f4a7c15ULL + static_cast<std::uint64_t>(index);
    while (!stop.is_set()) {
      seed = burn(seed);
      counter.add(1);
    }
    burn_sink = seed;  // an observed result, so the burning cannot be optimised away
  } else {
    while (!stop.wait_for(kIdlePeriod)) counter.add(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  program_name = "thread-spawner";
  long threads = 0;
  bool busy = false;
  std::optional<long> busy_threads;
  for (ArgReader args(argc, argv, kUsage); args.next();) {
    if (args.is("--threads")) {
      threads = args.number(1, kMaxThreads, "a count 1.." + std::to_string(kMaxThreads));
    } else if (args.is("--busy")) {
      busy = true;
    } else if (args.is("--busy-threads")) {
      busy_threads = args.number(0, kMaxThreads, "a count 0.." + std::to_string(kMaxThreads));
    } else {
      args.unknown();
    }
  }
  if (threads == 0) usage_error("--threads N is required");
  long busy_count = busy_threads ? std::min(*busy_threads, threads) : (busy ? threads : 0);

  // Block before any thread starts so that every thread inherits the mask and
  // only the main thread's sigwait ever takes SIGTERM/SIGINT.
  sigset_t stop_signals = block_stop_signals();

  SharedCounter counter;
  StopFlag stop;
  std::latch named(threads);  // "started" promises that every thread has its name
  std::vector<std::thread> pool;
  pool.reserve(static_cast<size_t>(threads));
  for (long i = 1; i <= threads; ++i) {
    pool.emplace_back(run_thread, static_cast<int>(i), i <= busy_count, std::ref(counter),
                      std::ref(stop), std::ref(named));
  }
  named.wait();
  std::printf("started %ld threads (%ld busy)\n", threads, busy_count);
  std::fflush(stdout);

  int sig = 0;
  while (sigwait(&stop_signals, &sig) != 0) {
  }
  stop.set();
  for (auto& t : pool) t.join();
  std::printf("counter %llu\n", static_cast<unsigned long long>(counter.value()));
  return 0;
}
