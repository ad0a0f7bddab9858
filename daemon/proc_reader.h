// ProcReader: one sample of the processes (and their threads) under a procfs
// root, "/proc" by default; tests point it at tests/fixtures/proc. A process
// or thread that vanishes mid-scan is skipped without noise.
//
// Cost model (issue 4; a syscall costs over 1 us on a PTI machine, so the
// count of syscalls is the cost): per process one read of PID/stat; its
// threads (task/TID/stat) only when it has more than one (a single-threaded
// process's thread is the process itself) and only when it ran since the last
// scan, told by its CPU clock in ns (one clock_gettime; no thread can change
// name, state or count without running); PID/cmdline once per (pid,
// starttime, comm). The stat files stay open between scans and are re-read
// with one pread, within a budget of descriptors (an fd of a process that has
// died fails with ESRCH, so a reused pid is never read through it).
//
// Not thread-safe: owned and called by one thread (the loop's sampler).
// The samples it returns are plain values that any thread may read.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "fd.h"
#include "sys_error.h"

namespace forkwatch {

struct ThreadInfo {
  pid_t tid = 0;
  std::string name;          // the thread's comm (pthread_setname_np)
  char state = '?';          // proc(5) state letter
  uint64_t utime = 0;        // clock ticks, this thread only
  uint64_t stime = 0;
  uint64_t starttime = 0;    // clock ticks after boot; (tid, starttime) names the thread
  double cpu_percent = 0;    // of one core; set by CpuTracker, 0 until then
  std::string wchan;         // the kernel function it sleeps in (task/TID/wchan); "" when running or unread
};

struct ProcessInfo {
  pid_t pid = 0;
  pid_t ppid = 0;            // 0 for pid 1 and kthreadd
  pid_t pgid = 0;
  pid_t sid = 0;
  std::string comm;
  std::vector<std::string> cmdline;  // empty for kernel threads and zombies
  char state = '?';
  uint64_t utime = 0;        // clock ticks, whole process (live and dead threads)
  uint64_t stime = 0;
  uint64_t starttime = 0;    // clock ticks after boot; (pid, starttime) names the process
  int64_t rss_bytes = 0;
  int64_t num_threads = 0;   // from stat; threads.size() may differ by a race
  bool kernel_thread = false;
  double cpu_percent = 0;    // of one core (may exceed 100); set by CpuTracker
  int64_t fd_count = -1;     // open descriptors; set by the sampler for supervised processes, else -1
  int64_t uid = -1;          // effective uid and gid from PID/status ("Uid:", "Gid:"); -1 unread
  int64_t gid = -1;
  std::vector<ThreadInfo> threads;  // sorted by tid; empty only when the scan skipped threads
};

struct ScanOptions {
  // > 0: return only this process and its descendants (by ppid). Every PID/stat
  // is still read to follow the chain, but threads and cmdline only for these.
  pid_t subtree_root = 0;
  // Non-empty: read exactly these pids (no directory listing); overrides subtree_root.
  std::vector<pid_t> only_pids;
  bool threads = true;
  bool cmdline = true;
  // Each sleeping thread's wait channel; re-read only for threads that ran
  // since the last scan (the same CPU-clock test as the threads themselves).
  bool wchan = true;
  // Each process's effective uid and gid (PID/status), re-read only when it
  // ran or exec'd since the last read, and every 64 scans (staggered).
  bool identity = true;
};

struct ScanStats {
  size_t processes = 0;   // returned
  size_t threads = 0;     // returned, over all processes
  size_t vanished = 0;    // processes or threads gone mid-scan (ENOENT/ESRCH), skipped
  size_t malformed = 0;   // files that did not parse, skipped
  size_t errors = 0;      // other read failures, skipped
  std::optional<SysError> first_error;
};

struct ProcSample {
  std::vector<ProcessInfo> processes;  // sorted by pid
  int64_t monotonic_ns = 0;            // CLOCK_MONOTONIC when the scan began
  ScanStats stats;
};

class ProcReader {
 public:
  // max_open_files: how many stat files may stay open between scans; past it
  // files are opened and closed per read. Default: a quarter of RLIMIT_NOFILE's
  // soft limit (raise that limit to keep a big machine's files open).
  explicit ProcReader(std::string root = "/proc", size_t max_open_files = default_open_files());
  ProcReader(const ProcReader&) = delete;
  ProcReader& operator=(const ProcReader&) = delete;

  // Fails only when the root directory cannot be opened or listed.
  Result<ProcSample> scan(const ScanOptions& options = {});

  // One process with its threads, or nullopt if it is gone or unreadable.
  std::optional<ProcessInfo> read_process(pid_t pid, bool threads = true);

  const std::string& root() const { return root_; }
  size_t open_files() const { return open_files_; }
  // Threads re-read (not reused) in the last scan; for benchmarks and tests.
  size_t threads_read() const { return threads_read_; }
  // Never skip unchanged threads (benchmarks measure the worst case with it).
  void set_always_read_threads(bool on) { always_read_threads_ = on; }

  static size_t default_open_files();

 private:
  // What the reader remembers of one live process between scans.
  struct Tracked {
    uint64_t starttime = 0;
    uint64_t seen_scan = 0;
    Fd stat;                      // PID/stat, kept open within the budget
    std::string cmdline_comm;     // comm when cmdline was read: an exec changes it
    std::vector<std::string> cmdline;
    bool have_cmdline = false;
    int64_t cpu_ns = -1;          // process CPU clock before threads were last read
    std::vector<ThreadInfo> threads;  // as last read, sorted by tid
    std::vector<Fd> thread_stats;     // task/TID/stat, parallel to threads (may be empty)
    int64_t wchan_ticks = -1;         // single-threaded: utime + stime when its wchan was read
    char wchan_state = '?';
    std::string wchan;
    int64_t ids_ticks = -1;           // utime + stime when uid and gid were read
    std::string ids_comm;             // comm then: an exec (setpriv, su) changes it
    int64_t uid = -1, gid = -1;
  };

  bool read_stat(int root_fd, pid_t pid, Tracked& tr, ProcessInfo& out, ScanStats& stats);
  // Fills out.threads; false if the process vanished or was replaced meanwhile.
  bool read_threads(int root_fd, ProcessInfo& out, Tracked& tr, ScanStats& stats);
  bool read_thread_list(int root_fd, ProcessInfo& out, Tracked& tr, ScanStats& stats);
  void fill_cmdline(int root_fd, ProcessInfo& out, Tracked& tr, ScanStats& stats);
  // Reads task/TID/wchan of each thread that is not running.
  void read_wchans(int root_fd, pid_t pid, std::vector<ThreadInfo>& threads);
  void fill_wchan(int root_fd, ProcessInfo& p, Tracked& tr);
  void fill_identity(int root_fd, ProcessInfo& p, Tracked& tr);
  void note_error(ScanStats& stats, int err, pid_t pid, const char* file);
  void forget(Tracked& tr);  // closes its files
  bool cpu_clock_usable(int root_fd);

  std::string root_;
  size_t max_open_files_;
  size_t open_files_ = 0;
  int64_t page_size_;
  uint64_t scan_count_ = 0;
  size_t threads_read_ = 0;
  bool always_read_threads_ = false;
  bool wchan_ = true;  // the current scan's ScanOptions::wchan
  int cpu_clock_ = -1;  // -1 unknown; 1 when root is the procfs of our pid namespace
  std::unordered_map<pid_t, Tracked> tracked_;
  std::vector<char> dirbuf_;  // getdents64 buffer for the root listing
};

}  // namespace forkwatch
