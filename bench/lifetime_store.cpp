// bench-lifetime-store: the lifetimes table's figures (issue 15), feeding the
// Store directly as the loop thread would, on a real file in a temp dir.
//   bench-lifetime-store [--rows 200000] [--day-rows 864000] [--alive 1000] [--queries 200]
//     1. Store throughput: `rows` short lifetimes (fork to exit, argv of
//        four words) recorded as fast as the queue takes them; prints
//        lifetimes committed per second.
//     2. /api/tree?at= server time: `alive` processes alive all day plus
//        `day-rows` lifetimes spread over 24 h (10 a second, lasting 1 ms to
//        10 min, log-uniform), with forkwatchd's default retention on
//        (30 days, 256 MiB). Then `queries` instants across the day, each
//        History::alive_at + tree_at_json, as the route does; prints p50,
//        p99 and max in ms and the rows each tree held.
// Bounded: a fixed amount of work, then it stops and removes its files.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "history.h"
#include "lifetime_api.h"
#include "store.h"

using namespace forkwatch;
using namespace forkwatch::db;

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

Lifetime short_life(int64_t id, int64_t forked, int64_t exited) {
  Lifetime l;
  l.id = id;
  l.pid = static_cast<pid_t>(1000 + id % 4000000);
  l.ppid = 999;
  l.worker_id = 1 + id % 8;
  l.comm = "true";
  l.argv = {"/bin/sh", "-c", "true", "now"};
  l.forked_ns = forked;
  l.exited_ns = exited;
  if (exited) l.raw_status = 0;
  return l;
}

long arg(int argc, char** argv, const char* name, long def) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], name) == 0) return std::atol(argv[i + 1]);
  return def;
}

}  // namespace

int main(int argc, char** argv) {
  const long rows = arg(argc, argv, "--rows", 200000);
  const long day_rows = arg(argc, argv, "--day-rows", 864000);
  const long alive = arg(argc, argv, "--alive", 1000);
  const long queries = arg(argc, argv, "--queries", 200);
  char templ[] = "/tmp/fw-lifetime-store-XXXXXX";
  if (!mkdtemp(templ)) return 1;
  const std::string dir = templ;
  const int64_t now = realtime_ns();
  {
    StoreOptions opts;
    opts.max_queue_items = 1'000'000;
    auto store = Store::open(dir + "/t.db", opts);
    if (!store) return std::fprintf(stderr, "%s\n", store.error().message().c_str()), 1;
    const double t0 = now_s();
    for (long i = 1; i <= rows; ++i) (*store)->record_lifetime(short_life(i, now + i * 1000, now + i * 1000 + 500));
    (*store)->flush();
    const double t = now_s() - t0;
    std::printf("store: %ld lifetimes in %.2f s = %.0f lifetimes/s committed\n", rows, t, rows / t);
  }
  {
    StoreOptions opts;
    opts.max_queue_items = 2'000'000;
    opts.retention.max_age_ns = 30LL * 86'400 * 1'000'000'000;
    opts.retention.max_bytes = 256LL << 20;
    const std::string path = dir + "/day.db";
    auto store = Store::open(path, opts);
    if (!store) return 1;
    const int64_t day = 86'400LL * 1'000'000'000;
    const int64_t start = now - day;
    std::mt19937_64 rng(15);
    std::uniform_real_distribution<double> u(0, 1);
    int64_t id = 0;
    for (long i = 0; i < alive; ++i) {
      Lifetime l = short_life(++id, start - 1'000'000'000, 0);
      l.pid = static_cast<pid_t>(100 + i);
      l.ppid = i == 0 ? 1 : 100 + static_cast<pid_t>(i / 10);
      (*store)->record_lifetime(l);
    }
    for (long i = 0; i < day_rows; ++i) {
      const int64_t forked = start + static_cast<int64_t>(u(rng) * static_cast<double>(day));
      const double secs = std::pow(10.0, -3 + u(rng) * (std::log10(600.0) + 3));  // 1 ms .. 10 min
      Lifetime l = short_life(++id, forked, forked + static_cast<int64_t>(secs * 1e9));
      l.ppid = 100 + static_cast<pid_t>(i % alive);
      (*store)->record_lifetime(l);
    }
    (*store)->flush();
    auto history = History::open(path);
    if (!history) return 1;
    std::vector<double> ms, query_ms;
    size_t held = 0;
    for (long q = 0; q < queries; ++q) {
      const int64_t t = start + static_cast<int64_t>(u(rng) * static_cast<double>(day));
      const double t0 = now_s();
      auto r = (*history)->alive_at(t);
      if (!r) return std::fprintf(stderr, "%s\n", r.error().message().c_str()), 1;
      const double t1 = now_s();
      std::string body = tree_at_json(*r);
      ms.push_back((now_s() - t0) * 1000);
      query_ms.push_back((t1 - t0) * 1000);
      held = std::max(held, r->size());
    }
    std::sort(ms.begin(), ms.end());
    std::sort(query_ms.begin(), query_ms.end());
    std::printf("tree?at: the SQL alone p50 %.2f ms, p99 %.2f ms\n", query_ms[query_ms.size() / 2],
                query_ms[query_ms.size() * 99 / 100]);
    std::printf("tree?at: %ld alive + %ld lifetimes over 24 h, file %.1f MiB: p50 %.2f ms, p99 %.2f ms, max %.2f ms "
                "(up to %zu processes per tree)\n",
                alive, day_rows, static_cast<double>(std::filesystem::file_size(path)) / (1 << 20), ms[ms.size() / 2],
                ms[ms.size() * 99 / 100], ms.back(), held);
  }
  std::filesystem::remove_all(dir);
  return 0;
}
