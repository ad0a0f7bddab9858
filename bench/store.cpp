// bench-store: wait-status rows per second through Store into a WAL file in a
// temp dir, and how long the last row waits for its commit.
//   bench-store [--n 200000] [--paced-rate 10000] [--paced-n 20000]
// Phase 1 publishes N exit events (each with a wait record) as fast as the
// caller can, then flushes. Phase 2 publishes at a steady rate, as a busy
// daemon would, and reports the reap-to-record latency histogram.
#include <sys/wait.h>
#include <time.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>

#include "store.h"

using namespace forkwatch;
using namespace forkwatch::db;

namespace {

Event exit_event(uint64_t id) {
  Event e;
  e.id = id;
  e.kind = EventKind::kExit;
  e.ts_ns = realtime_ns();
  e.worker_id = static_cast<int64_t>(id % 16);
  e.pid = static_cast<pid_t>(100000 + id % 400000);
  WaitRecord w;
  w.ts_ns = e.ts_ns;
  w.pid = e.pid;
  w.worker_id = e.worker_id;
  w.status = decode_wait_status(W_EXITCODE(static_cast<int>(id % 3), 0));
  w.rusage.utime_us = 1200;
  w.rusage.stime_us = 800;
  w.rusage.maxrss_kb = 3400;
  w.rusage.minflt = 140;
  w.rusage.nvcsw = 2;
  e.wait = w;
  return e;
}

std::unique_ptr<Store> open_store(const std::string& path) {
  Result<std::unique_ptr<Store>> store = Store::open(path);
  if (!store) {
    std::fprintf(stderr, "bench-store: %s\n", store.error().message().c_str());
    std::exit(1);
  }
  return std::move(*store);
}

void print_histogram(const LatencyHistogram::Snapshot& h) {
  auto ms = [](double s) { return s < 0 ? std::string(">10000") : std::to_string(s * 1000); };
  std::printf("  reap-to-record: count %llu, mean %.3f ms, p50 <= %s ms, p99 <= %s ms, max bucket <= %s ms\n",
              static_cast<unsigned long long>(h.count),
              h.count ? h.sum_seconds() * 1000 / static_cast<double>(h.count) : 0.0,
              ms(h.quantile_bound(0.50)).c_str(), ms(h.quantile_bound(0.99)).c_str(),
              ms(h.quantile_bound(1.0)).c_str());
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t n = 200'000, paced_rate = 10'000, paced_n = 20'000;
  for (int i = 1; i + 1 < argc; i += 2) {
    uint64_t v = std::strtoull(argv[i + 1], nullptr, 10);
    if (!std::strcmp(argv[i], "--n")) n = v;
    else if (!std::strcmp(argv[i], "--paced-rate")) paced_rate = v;
    else if (!std::strcmp(argv[i], "--paced-n")) paced_n = v;
    else {
      std::fprintf(stderr, "usage: bench-store [--n N] [--paced-rate R] [--paced-n N]\n");
      return 2;
    }
  }
  if (n == 0 || paced_rate == 0) return 2;
  std::string templ = (std::filesystem::temp_directory_path() / "bench-store-XXXXXX").string();
  if (!mkdtemp(templ.data())) {
    std::perror("mkdtemp");
    return 1;
  }
  const std::string dir = templ;

  {
    std::unique_ptr<Store> store = open_store(dir + "/burst.db");
    int64_t start = monotonic_ns();
    for (uint64_t i = 1; i <= n; ++i) store->publish(exit_event(i));
    int64_t last_publish = monotonic_ns();
    store->flush();
    int64_t done = monotonic_ns();
    StoreStats s = store->stats();
    double total_s = static_cast<double>(done - start) / 1e9;
    std::printf("burst: %llu wait-status rows (+ %llu events rows) in %.3f s = %.0f rows/s\n",
                static_cast<unsigned long long>(s.wait_rows),
                static_cast<unsigned long long>(s.event_rows), total_s,
                static_cast<double>(s.wait_rows) / total_s);
    std::printf("  publish (loop thread): %.0f ns per event\n",
                static_cast<double>(last_publish - start) / static_cast<double>(n));
    std::printf("  last publish to its commit: %.2f ms\n",
                static_cast<double>(done - last_publish) / 1e6);
    std::printf("  batches %llu (mean %.0f items), last batch %.2f ms, write errors %llu\n",
                static_cast<unsigned long long>(s.batches),
                static_cast<double>(n) / static_cast<double>(s.batches ? s.batches : 1),
                static_cast<double>(s.last_batch_ns) / 1e6,
                static_cast<unsigned long long>(s.write_errors));
    print_histogram(s.reap_to_record);
    store->close();
    std::printf("  file: %.1f MB (db + wal)\n",
                static_cast<double>(std::filesystem::file_size(dir + "/burst.db") +
                                    (std::filesystem::exists(dir + "/burst.db-wal")
                                         ? std::filesystem::file_size(dir + "/burst.db-wal")
                                         : 0)) / 1e6);
  }

  if (paced_n > 0) {
    std::unique_ptr<Store> store = open_store(dir + "/paced.db");
    const int64_t interval = 1'000'000'000 / static_cast<int64_t>(paced_rate);
    int64_t next = monotonic_ns();
    for (uint64_t i = 1; i <= paced_n; ++i) {
      next += interval;
      timespec ts{static_cast<time_t>(next / 1'000'000'000), static_cast<long>(next % 1'000'000'000)};
      clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr);
      store->publish(exit_event(i));
    }
    int64_t last_publish = monotonic_ns();
    store->flush();
    int64_t done = monotonic_ns();
    StoreStats s = store->stats();
    std::printf("paced: %llu rows at %llu/s, %llu batches (mean %.1f items)\n",
                static_cast<unsigned long long>(s.wait_rows),
                static_cast<unsigned long long>(paced_rate),
                static_cast<unsigned long long>(s.batches),
                static_cast<double>(paced_n) / static_cast<double>(s.batches ? s.batches : 1));
    std::printf("  last publish to its commit: %.3f ms\n",
                static_cast<double>(done - last_publish) / 1e6);
    print_histogram(s.reap_to_record);
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return 0;
}
