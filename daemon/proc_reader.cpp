#include "proc_reader.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>

#include "dir_entries.h"
#include "proc_parse.h"
#include "process_tree.h"

namespace forkwatch {
namespace {

// Every cmdline is re-read once per this many scans (staggered by pid), to
// catch processes that rewrite their argv (setproctitle) without an exec.
constexpr uint64_t kCmdlineRefreshScans = 64;
// The same for uid and gid: a process can change them within one clock tick
// of CPU, which the tick test below would miss.
constexpr uint64_t kIdentityRefreshScans = 64;
// Longer command lines are cut here; the dashboard shows no more.
constexpr size_t kCmdlineMax = 64 * 1024;
// One stat line is well under 1 KiB (52 numbers and a comm of at most 64 bytes).
constexpr size_t kStatBuf = 2048;
constexpr size_t kDirBuf = 64 * 1024;

// A process or thread that ended between listing and reading.
bool vanished(int err) { return err == ENOENT || err == ESRCH; }

// "123/stat" and friends into buf, NUL-terminated; no allocation.
const char* path_of(char* buf, size_t cap, long id, const char* tail) {
  char* end = buf + cap;
  char* p = std::to_chars(buf, end, id).ptr;
  size_t n = std::strlen(tail);
  if (static_cast<size_t>(end - p) <= n) return "";
  std::memcpy(p, tail, n + 1);
  return buf;
}

// A directory entry name that is all digits, as a pid; 0 otherwise.
pid_t numeric_name(const char* name) {
  pid_t v = 0;
  const char* end = name + std::strlen(name);
  auto [ptr, ec] = std::from_chars(name, end, v);
  if (ec != std::errc() || ptr != end || ptr == name) return 0;
  return v;
}

// Reads a record that ends in '\n' (stat) from offset 0 of an open file.
// pread from 0 makes procfs generate the record afresh, so a kept fd serves
// every scan. Returns the length, or -errno.
ssize_t pread_record(int fd, char* buf, size_t cap) {
  size_t len = 0;
  while (len < cap) {
    ssize_t n = ::pread(fd, buf + len, cap - len, static_cast<off_t>(len));
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (n == 0) break;
    len += static_cast<size_t>(n);
    if (buf[len - 1] == '\n') break;  // complete: spare the read that returns 0
  }
  return static_cast<ssize_t>(len);
}

// Reads a file of any length, up to `cap` bytes, into out. Returns 0 or -errno.
int read_whole(int dirfd, const char* path, std::string& out, size_t cap) {
  out.clear();
  int fd = ::openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return -errno;
  char buf[4096];
  int result = 0;
  while (out.size() < cap) {
    ssize_t n = ::read(fd, buf, std::min(sizeof buf, cap - out.size()));
    if (n < 0) {
      if (errno == EINTR) continue;
      result = -errno;
      break;
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return result;
}

// Appends the numeric entries of an open directory. Returns 0 or -errno.
int list_numeric(int dirfd, char* buf, size_t cap, std::vector<pid_t>& out) {
  return for_each_dirent(dirfd, buf, cap, [&](const char* name) {
    if (name[0] < '1' || name[0] > '9') return;
    if (pid_t v = numeric_name(name); v > 0) out.push_back(v);
  });
}

// The CPU time of a whole process in ns, from its process CPU clock; -1 if
// unreadable. The clock id encoding is the kernel's MAKE_PROCESS_CPUCLOCK(pid,
// CPUCLOCK_SCHED) (include/linux/posix-timers.h); glibc's clock_getcpuclockid
// would add a clock_getres call per pid to validate it.
int64_t process_cpu_ns(pid_t pid) {
  auto id = static_cast<clockid_t>((~static_cast<unsigned>(pid) << 3) | 2u);
  timespec ts{};
  if (::clock_gettime(id, &ts) != 0) return -1;
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// Reads dirfd/path through `slot`: pread on the kept fd if there is one,
// else open (and keep the fd in `slot` when `keep`). A kept fd that fails
// (its process died, maybe its pid is reused) is dropped and the path opened
// anew. Returns the length, or -errno. Counts kept fds in `open_files`.
ssize_t read_through(int dirfd, const char* path, Fd& slot, bool keep, char* buf,
                            size_t cap, size_t& open_files) {
  if (slot) {
    ssize_t n = pread_record(slot.get(), buf, cap);
    if (n >= 0) return n;
    slot.reset();
    --open_files;
  }
  int fd = ::openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return -errno;
  ssize_t n = pread_record(fd, buf, cap);
  if (n >= 0 && keep) {
    slot.reset(fd);
    ++open_files;
  } else {
    ::close(fd);
  }
  return n;
}

int64_t monotonic_now_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace

size_t ProcReader::default_open_files() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return 512;
  return static_cast<size_t>(rl.rlim_cur / 2);
}

ProcReader::ProcReader(std::string root, size_t max_open_files)
    : root_(std::move(root)), max_open_files_(max_open_files) {
  long ps = ::sysconf(_SC_PAGESIZE);
  page_size_ = ps > 0 ? ps : 4096;
}

void ProcReader::note_error(ScanStats& stats, int err, pid_t pid, const char* file) {
  ++stats.errors;
  if (!stats.first_error)
    stats.first_error =
        SysError{"read(" + root_ + "/" + std::to_string(pid) + "/" + file + ")", err};
}

void ProcReader::forget(Tracked& tr) {
  if (tr.stat) {
    tr.stat.reset();
    --open_files_;
  }
  for (Fd& f : tr.thread_stats)
    if (f) {
      f.reset();
      --open_files_;
    }
  tr.thread_stats.clear();
}

bool ProcReader::cpu_clock_usable(int root_fd) {
  // The clock is looked up by pid in our pid namespace: only valid when the
  // root is the procfs of that namespace (its "self" is our pid).
  if (cpu_clock_ < 0) {
    char link[32] = {};
    ssize_t n = ::readlinkat(root_fd, "self", link, sizeof link - 1);
    cpu_clock_ = n > 0 && numeric_name(link) == ::getpid() ? 1 : 0;
  }
  return cpu_clock_ == 1;
}

bool ProcReader::read_stat(int root_fd, pid_t pid, Tracked& tr, ProcessInfo& out,
                           ScanStats& stats) {
  char path[32];
  char buf[kStatBuf];
  ssize_t n = read_through(root_fd, path_of(path, sizeof path, pid, "/stat"), tr.stat,
                           open_files_ < max_open_files_, buf, sizeof buf, open_files_);
  if (n < 0) {
    if (vanished(static_cast<int>(-n)))
      ++stats.vanished;
    else
      note_error(stats, static_cast<int>(-n), pid, "stat");
    return false;
  }
  auto st = parse_proc_stat(std::string_view(buf, static_cast<size_t>(n)));
  if (!st || st->pid != pid) {
    ++stats.malformed;
    return false;
  }
  if (tr.starttime != st->starttime) {
    // A new process under this pid: nothing remembered of the old one applies.
    for (Fd& f : tr.thread_stats)
      if (f) {
        f.reset();
        --open_files_;
      }
    Fd stat = std::move(tr.stat);
    tr = Tracked{};
    tr.stat = std::move(stat);
    tr.starttime = st->starttime;
  }
  out.pid = st->pid;
  out.ppid = st->ppid;
  out.pgid = st->pgrp;
  out.sid = st->session;
  out.comm = std::move(st->comm);
  out.state = st->state;
  out.utime = st->utime;
  out.stime = st->stime;
  out.starttime = st->starttime;
  out.rss_bytes = st->rss_pages * page_size_;
  out.num_threads = st->num_threads;
  out.kernel_thread = st->kernel_thread();
  return true;
}

bool ProcReader::read_threads(int root_fd, ProcessInfo& p, Tracked& tr, ScanStats& stats) {
  if (p.num_threads <= 1) {
    // The only thread is the process itself: no task/ reads needed.
    p.threads.assign(1, ThreadInfo{p.pid, p.comm, p.state, p.utime, p.stime, p.starttime, 0});
    for (Fd& f : tr.thread_stats)
      if (f) {
        f.reset();
        --open_files_;
      }
    tr.thread_stats.clear();
    tr.threads.clear();
    tr.cpu_ns = -1;
    if (wchan_) fill_wchan(root_fd, p, tr);
    return true;
  }
  // Read the clock before the threads: whatever runs after this read shows
  // up as a difference next scan.
  const int64_t cpu = cpu_clock_ == 1 ? process_cpu_ns(p.pid) : -1;
  if (!always_read_threads_ && cpu >= 0 && cpu == tr.cpu_ns &&
      static_cast<int64_t>(tr.threads.size()) == p.num_threads) {
    p.threads = tr.threads;  // not one thread ran since they were read
    return true;
  }

  // Same count and every thread file still open: re-read them in place.
  bool done = false;
  if (static_cast<int64_t>(tr.threads.size()) == p.num_threads &&
      tr.thread_stats.size() == tr.threads.size() &&
      std::all_of(tr.thread_stats.begin(), tr.thread_stats.end(),
                  [](const Fd& f) { return f.valid(); })) {
    std::vector<ThreadInfo> fresh;
    fresh.reserve(tr.threads.size());
    char buf[kStatBuf];
    done = true;
    for (size_t i = 0; i < tr.threads.size() && done; ++i) {
      ssize_t n = pread_record(tr.thread_stats[i].get(), buf, sizeof buf);
      auto st = n > 0 ? parse_proc_stat(std::string_view(buf, static_cast<size_t>(n)))
                      : std::nullopt;
      // A failed read is a thread that exited: list task/ to see who is left.
      if (!st || st->pid != tr.threads[i].tid) {
        done = false;
        break;
      }
      fresh.push_back(ThreadInfo{st->pid, std::move(st->comm), st->state, st->utime, st->stime,
                                 st->starttime, 0});
    }
    if (done) {
      if (wchan_) read_wchans(root_fd, p.pid, fresh);
      threads_read_ += fresh.size();
      tr.threads = fresh;
      p.threads = std::move(fresh);
    }
  }
  if (!done && !read_thread_list(root_fd, p, tr, stats)) return false;
  tr.cpu_ns = cpu;
  return true;
}

bool ProcReader::read_thread_list(int root_fd, ProcessInfo& p, Tracked& tr, ScanStats& stats) {
  char path[48];
  Fd task(::openat(root_fd, path_of(path, sizeof path, p.pid, "/task"),
                   O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  std::vector<pid_t> tids;
  tids.reserve(static_cast<size_t>(std::max<int64_t>(p.num_threads, 1)) + 4);
  int err = task ? 0 : -errno;
  if (task) {
    char dirbuf[8192];
    err = list_numeric(task.get(), dirbuf, sizeof dirbuf, tids);
  }
  if (err < 0) {
    if (vanished(-err))
      ++stats.vanished;
    else
      note_error(stats, -err, p.pid, "task");
    return false;
  }
  std::sort(tids.begin(), tids.end());

  std::vector<ThreadInfo> fresh;
  std::vector<Fd> fds;
  fresh.reserve(tids.size());
  fds.reserve(tids.size());
  char buf[kStatBuf];
  size_t old = 0;  // walks tr.threads (sorted by tid) alongside tids
  bool replaced = false;
  for (pid_t tid : tids) {
    while (old < tr.threads.size() && tr.threads[old].tid < tid) ++old;
    Fd slot;
    if (old < tr.threads.size() && tr.threads[old].tid == tid && old < tr.thread_stats.size())
      slot = std::move(tr.thread_stats[old]);
    ssize_t n = read_through(task.get(), path_of(path, sizeof path, tid, "/stat"), slot,
                             open_files_ < max_open_files_, buf, sizeof buf, open_files_);
    if (n < 0) {
      if (vanished(static_cast<int>(-n)))
        ++stats.vanished;
      else
        note_error(stats, static_cast<int>(-n), p.pid, "task/stat");
    } else if (auto st = parse_proc_stat(std::string_view(buf, static_cast<size_t>(n)));
               !st || st->pid != tid) {
      ++stats.malformed;
    } else if (tid == p.pid && st->starttime != p.starttime) {
      // The main thread's start time is the process's: if they differ, the pid
      // was reused between our reads and these threads belong to a newer process.
      replaced = true;
    } else {
      fresh.push_back(ThreadInfo{tid, std::move(st->comm), st->state, st->utime, st->stime,
                                 st->starttime, 0});
      fds.push_back(std::move(slot));
      continue;
    }
    if (slot) {
      slot.reset();
      --open_files_;
    }
    if (replaced) break;
  }
  // Files of threads that are gone, and of a replaced process, are closed.
  for (Fd& f : tr.thread_stats)
    if (f) {
      f.reset();
      --open_files_;
    }
  if (replaced) {
    for (Fd& f : fds)
      if (f) {
        f.reset();
        --open_files_;
      }
    tr.thread_stats.clear();
    tr.threads.clear();
    ++stats.vanished;
    return false;
  }
  if (wchan_) read_wchans(root_fd, p.pid, fresh);
  threads_read_ += fresh.size();
  tr.thread_stats = std::move(fds);
  tr.threads = fresh;
  p.threads = std::move(fresh);
  return true;
}

void ProcReader::read_wchans(int root_fd, pid_t pid, std::vector<ThreadInfo>& threads) {
  char path[64];
  std::string text;
  for (ThreadInfo& t : threads) {
    t.wchan.clear();
    if (t.state == 'R') continue;  // a running thread waits on nothing ("0")
    std::snprintf(path, sizeof path, "%d/task/%d/wchan", static_cast<int>(pid), static_cast<int>(t.tid));
    // "0" when it does not sleep, or when the kernel hides the symbol from us.
    if (read_whole(root_fd, path, text, 128) == 0 && text != "0") t.wchan = text;
  }
}

void ProcReader::fill_wchan(int root_fd, ProcessInfo& p, Tracked& tr) {
  // Same state and not one more tick of CPU: it still waits where it waited.
  // Told from stat alone, so an idle single-threaded process costs no extra
  // syscall; one that ran under a tick and now waits elsewhere shows its old
  // channel until it next runs a tick or changes state.
  const int64_t ticks = static_cast<int64_t>(p.utime + p.stime);
  if (!always_read_threads_ && ticks == tr.wchan_ticks && p.state == tr.wchan_state) {
    p.threads[0].wchan = tr.wchan;
    return;
  }
  read_wchans(root_fd, p.pid, p.threads);
  tr.wchan = p.threads[0].wchan;
  tr.wchan_ticks = ticks;
  tr.wchan_state = p.state;
}

void ProcReader::fill_identity(int root_fd, ProcessInfo& p, Tracked& tr) {
  // Changing uid or gid takes a syscall, so a process that has not run a
  // tick, nor exec'd, since the last read still has the ids we read: an
  // idle process costs nothing here, a busy one one read of PID/status.
  const int64_t ticks = static_cast<int64_t>(p.utime + p.stime);
  const bool refresh = (scan_count_ + static_cast<uint64_t>(p.pid) * 7) % kIdentityRefreshScans == 0;
  if (tr.uid >= 0 && ticks == tr.ids_ticks && tr.ids_comm == p.comm && !refresh) {
    p.uid = tr.uid;
    p.gid = tr.gid;
    return;
  }
  char path[32];
  std::string text;
  if (read_whole(root_fd, path_of(path, sizeof path, p.pid, "/status"), text, 8192) != 0) return;
  auto st = parse_proc_status(text);
  if (!st) return;
  p.uid = tr.uid = st->uid_effective;
  p.gid = tr.gid = st->gid_effective;
  tr.ids_ticks = ticks;
  tr.ids_comm = p.comm;
}

void ProcReader::fill_cmdline(int root_fd, ProcessInfo& p, Tracked& tr, ScanStats& stats) {
  bool refresh = (scan_count_ + static_cast<uint64_t>(p.pid)) % kCmdlineRefreshScans == 0;
  if (tr.have_cmdline && tr.cmdline_comm == p.comm && !refresh) {
    p.cmdline = tr.cmdline;
    return;
  }
  char path[32];
  std::string text;
  int err = read_whole(root_fd, path_of(path, sizeof path, p.pid, "/cmdline"), text, kCmdlineMax);
  if (err < 0) {
    // A vanished process is dropped at its next stat read; an unreadable
    // cmdline just stays empty.
    if (!vanished(-err)) note_error(stats, -err, p.pid, "cmdline");
    return;
  }
  p.cmdline = parse_cmdline(text);
  tr.cmdline = p.cmdline;
  tr.cmdline_comm = p.comm;
  tr.have_cmdline = true;
}

Result<ProcSample> ProcReader::scan(const ScanOptions& options) {
  ++scan_count_;
  threads_read_ = 0;
  wchan_ = options.wchan;
  ProcSample sample;
  sample.monotonic_ns = monotonic_now_ns();
  ScanStats& stats = sample.stats;

  Fd root(::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root) return sys_error("open(" + root_ + ")");
  cpu_clock_usable(root.get());

  std::vector<pid_t> pids;
  if (!options.only_pids.empty()) {
    pids = options.only_pids;
    std::sort(pids.begin(), pids.end());
    pids.erase(std::unique(pids.begin(), pids.end()), pids.end());
  } else {
    if (dirbuf_.empty()) dirbuf_.resize(kDirBuf);
    pids.reserve(tracked_.size() + 64);
    if (int err = list_numeric(root.get(), dirbuf_.data(), dirbuf_.size(), pids); err < 0) {
      errno = -err;
      return sys_error("getdents64(" + root_ + ")");
    }
    // procfs lists pids in ascending order; a fixture directory may not.
    if (!std::is_sorted(pids.begin(), pids.end())) std::sort(pids.begin(), pids.end());
  }

  std::vector<ProcessInfo>& procs = sample.processes;
  std::vector<Tracked*> tracked;  // parallel to procs; unordered_map nodes do not move
  procs.reserve(pids.size());
  tracked.reserve(pids.size());
  for (pid_t pid : pids) {
    Tracked& tr = tracked_[pid];
    procs.emplace_back();
    if (read_stat(root.get(), pid, tr, procs.back(), stats)) {
      tr.seen_scan = scan_count_;
      tracked.push_back(&tr);
    } else {
      procs.pop_back();
      forget(tr);
      tracked_.erase(pid);
    }
  }

  if (options.only_pids.empty() && options.subtree_root > 0) {
    std::vector<int32_t> parents = parent_links(procs);
    std::vector<uint32_t> keep = subtree_indices(procs, parents, options.subtree_root);
    std::sort(keep.begin(), keep.end());
    std::vector<ProcessInfo> kept;
    std::vector<Tracked*> kept_tracked;
    kept.reserve(keep.size());
    kept_tracked.reserve(keep.size());
    for (uint32_t i : keep) {
      kept.push_back(std::move(procs[i]));
      kept_tracked.push_back(tracked[i]);
    }
    procs = std::move(kept);
    tracked = std::move(kept_tracked);
  }

  size_t out = 0;
  for (size_t i = 0; i < procs.size(); ++i) {
    ProcessInfo& p = procs[i];
    if (options.threads && !read_threads(root.get(), p, *tracked[i], stats)) continue;
    if (options.cmdline) fill_cmdline(root.get(), p, *tracked[i], stats);
    if (options.identity && !p.kernel_thread) fill_identity(root.get(), p, *tracked[i]);
    stats.threads += p.threads.size();
    if (out != i) procs[out] = std::move(p);
    ++out;
  }
  procs.resize(out);
  stats.processes = procs.size();

  // Forget processes a full listing did not show. A scan of a few pids keeps
  // the rest: it says nothing about them.
  if (options.only_pids.empty()) {
    for (auto it = tracked_.begin(); it != tracked_.end();) {
      if (it->second.seen_scan != scan_count_) {
        forget(it->second);
        it = tracked_.erase(it);
      } else {
        ++it;
      }
    }
  }
  return sample;
}

std::optional<ProcessInfo> ProcReader::read_process(pid_t pid, bool threads) {
  ScanOptions options;
  options.only_pids = {pid};
  options.threads = threads;
  auto sample = scan(options);
  if (!sample || sample->processes.empty()) return std::nullopt;
  return std::move(sample->processes.front());
}

}  // namespace forkwatch
