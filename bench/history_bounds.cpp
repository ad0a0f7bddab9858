// bench-history-bounds: the store's bounds under a day of crash loops and a
// full disk (issue 20). Feeds Store directly, as the loop thread would.
//   bench-history-bounds day [--exits 288000] [--max-mib 16] [--no-limit]
//     A day of 100 workers crash-looping at the default backoff (30 s cap:
//     100 * 86400 / 30 = 288,000 exits), time compressed: each exit is five
//     events (exit with its wait status, state, restart, spawn, state) with
//     timestamps spread over 24 h. Prints bytes per exit, the largest size
//     forkwatch.db (+ its WAL) reached on disk, and the final size.
//   bench-history-bounds full-disk [--seconds 60] [--rate 100] [--queue 60000]
//     As root: forkwatch.db on a tmpfs of 8 MiB, filled to the last byte,
//     then `rate` exits a second for `seconds`; then the filler is removed.
//     Prints the queue's peak depth, what was dropped, the VmRSS it cost and
//     the catch-up time. Bounded: it stops by itself.
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "store.h"

using namespace forkwatch;
using namespace forkwatch::db;

namespace {

int64_t file_size(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0 ? st.st_size : 0;
}

int64_t vm_rss_kb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::atoll(line.c_str() + 6);
  return 0;
}

Event event(uint64_t id, EventKind kind, int64_t ts_ns, int worker) {
  Event e;
  e.id = id;
  e.kind = kind;
  e.ts_ns = ts_ns;
  e.worker_id = worker;
  e.pid = static_cast<pid_t>(100'000 + id % 400'000);
  if (kind == EventKind::kState) e.state = "backoff";
  if (kind == EventKind::kRestart) e.detail = "restarting in 30000 ms";
  if (kind == EventKind::kExit) {
    WaitRecord w;
    w.ts_ns = ts_ns;
    w.pid = e.pid;
    w.worker_id = worker;
    w.status = decode_wait_status(W_EXITCODE(1, 0));
    w.rusage = Rusage{1'200, 800, 3'456, 130, 0, 2, 1};
    e.wait = w;
  }
  return e;
}

void publish_exit(Store& store, uint64_t& id, int64_t ts_ns, int worker) {
  for (EventKind k : {EventKind::kExit, EventKind::kState, EventKind::kRestart, EventKind::kSpawn, EventKind::kState})
    store.publish(event(++id, k, ts_ns, worker));
}

std::unique_ptr<Store> open_or_die(const std::string& path, const StoreOptions& o) {
  auto store = Store::open(path, o);
  if (!store) {
    std::fprintf(stderr, "bench-history-bounds: %s\n", store.error().message().c_str());
    std::exit(1);
  }
  return std::move(*store);
}

std::string temp_dir() {
  std::string t = (std::filesystem::temp_directory_path() / "fw-bench-XXXXXX").string();
  if (!mkdtemp(t.data())) std::exit(1);
  return t;
}

int day(long exits, long max_mib) {
  const std::string dir = temp_dir();
  const std::string path = dir + "/forkwatch.db";
  StoreOptions o;
  o.retention.max_bytes = max_mib << 20;
  o.retention.max_age_ns = 30LL * 86'400 * 1'000'000'000;
  auto store = open_or_die(path, o);
  const int64_t start_ns = realtime_ns() - 86'400'000'000'000;
  uint64_t id = 0;
  int64_t peak = 0, peak_wal = 0, used_at_10k = 0;
  auto t0 = std::chrono::steady_clock::now();
  for (long i = 0; i < exits; ++i) {
    publish_exit(*store, id, start_ns + i * (86'400'000'000'000 / exits), static_cast<int>(1 + i % 100));
    if (i % 2'000 == 1'999) {
      // At about the day's pace for the writer: let it commit and prune.
      store->flush();
      peak = std::max(peak, file_size(path));
      peak_wal = std::max(peak_wal, file_size(path + "-wal"));
      if (i == 9'999) used_at_10k = file_size(path) + file_size(path + "-wal");
    }
  }
  store->flush();
  // Let retention reach its low mark (it runs between batches, once a second when within bounds).
  for (int i = 0; i < 50 && store->stats().db_bytes > (max_mib << 20) / 10 * 8 && max_mib > 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  StoreStats s = store->stats();
  store->close();
  std::printf("exits %ld (%lu events) in %.1f s; limit %ld MiB\n", exits, static_cast<unsigned long>(id), secs, max_mib);
  std::printf("db+wal after 10,000 exits: %ld bytes = %.0f bytes per exit\n", static_cast<long>(used_at_10k),
              used_at_10k / 10'000.0);
  std::printf("peak on disk: forkwatch.db %.2f MiB, -wal %.2f MiB; final db %.2f MiB, wal %.2f MiB\n",
              peak / 1048576.0, peak_wal / 1048576.0,
              file_size(path) / 1048576.0, file_size(path + "-wal") / 1048576.0);
  std::printf("retention deleted %lu wait rows, %lu event rows\n",
              static_cast<unsigned long>(s.retention_wait_rows), static_cast<unsigned long>(s.retention_event_rows));
  std::filesystem::remove_all(dir);
  return 0;
}

void fill_up(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  static const std::string chunk(64 * 1024, 'f');
  while (::write(fd, chunk.data(), chunk.size()) > 0) {
  }
  while (::write(fd, "f", 1) == 1) {
  }
  ::close(fd);
}

int full_disk(int seconds, int rate, long queue) {
  const std::string dir = temp_dir();
  if (::mount("tmpfs", dir.c_str(), "tmpfs", 0, "size=8m") != 0) {
    std::perror("bench-history-bounds: mount tmpfs (needs root)");
    return 1;
  }
  const std::string path = dir + "/forkwatch.db";
  StoreOptions o;
  o.max_queue_items = static_cast<size_t>(queue);
  auto store = open_or_die(path, o);
  uint64_t id = 0;
  for (int i = 0; i < 1000; ++i) publish_exit(*store, id, realtime_ns(), 1 + i % 100);
  store->flush();
  const int64_t rss0 = vm_rss_kb();
  fill_up(dir + "/filler");
  uint64_t peak_depth = 0;
  auto next = std::chrono::steady_clock::now();
  const auto step = std::chrono::nanoseconds(1'000'000'000 / rate);
  for (long i = 0; i < static_cast<long>(seconds) * rate; ++i) {
    publish_exit(*store, id, realtime_ns(), static_cast<int>(1 + i % 100));
    peak_depth = std::max(peak_depth, store->stats().queue_depth);
    next += step;
    std::this_thread::sleep_until(next);
  }
  StoreStats during = store->stats();
  const int64_t rss1 = vm_rss_kb();
  ::unlink((dir + "/filler").c_str());
  const auto freed = std::chrono::steady_clock::now();
  // Still 100 exits a second while it catches up, as a live daemon would.
  while (store->stats().degraded && std::chrono::steady_clock::now() - freed < std::chrono::seconds(30)) {
    publish_exit(*store, id, realtime_ns(), 1);
    next += step;
    std::this_thread::sleep_until(next);
  }
  const double caught_up_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - freed).count();
  store->flush();
  StoreStats s = store->stats();
  store->close();
  std::printf("full disk %d s at %d exits/s (%d items/s), queue limit %ld\n", seconds, rate, rate * 5, queue);
  std::printf("during: degraded %d, peak queue depth %lu, write errors %lu, dropped %lu (%lu wait statuses)\n",
              during.degraded ? 1 : 0, static_cast<unsigned long>(peak_depth),
              static_cast<unsigned long>(during.write_errors), static_cast<unsigned long>(s.items_dropped),
              static_cast<unsigned long>(s.wait_rows_dropped));
  std::printf("VmRSS %ld -> %ld KiB (+%ld KiB for the queue)\n", static_cast<long>(rss0), static_cast<long>(rss1),
              static_cast<long>(rss1 - rss0));
  std::printf("space back -> healthy: %.3f s; store: outage %.3f s, catch-up (first good write to drained) %.3f s\n",
              caught_up_s, s.last_outage_ns / 1e9, s.last_catch_up_ns / 1e9);
  std::printf("rows in the file: %lu wait statuses committed this run\n", static_cast<unsigned long>(s.wait_rows));
  ::umount2(dir.c_str(), MNT_DETACH);
  std::filesystem::remove_all(dir);
  return 0;
}

long arg(int argc, char** argv, const char* name, long fallback) {
  for (int i = 2; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], name) == 0) return std::atol(argv[i + 1]);
  return fallback;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "day") return day(arg(argc, argv, "--exits", 288'000), arg(argc, argv, "--max-mib", 16));
  if (mode == "full-disk")
    return full_disk(static_cast<int>(arg(argc, argv, "--seconds", 60)), static_cast<int>(arg(argc, argv, "--rate", 100)),
                     arg(argc, argv, "--queue", 60'000));
  std::fprintf(stderr, "usage: bench-history-bounds day [--exits N] [--max-mib N] | full-disk [--seconds S] [--rate R] [--queue N]\n");
  return 2;
}
