// LifetimeTracker: turns the kernel's process events into one Lifetime per
// process of every supervised tree (fork to exit, argv at each exec, the raw
// exit status), hands each finished or long-enough-lived one to a
// LifetimeSink (the store), and reports them as coalesced `process` events.
// Which worker a process belongs to is decided in one place, attribute(), by
// ancestry from a worker's main pid today; cgroup membership can replace it
// through set_attribution(). Events that arrive before the fork they follow
// (another CPU's, or after an overrun) wait a short while for it.
// Owned and called by the loop thread only; ProcessEventStats is read by any.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "event.h"
#include "proc_connector.h"
#include "proc_reader.h"

namespace forkwatch {

struct Lifetime {
  int64_t id = 0;  // assigned at fork; strictly increasing, also across daemon restarts
  pid_t pid = 0;
  pid_t ppid = 0;
  int64_t worker_id = 0;
  std::string comm;                // at the last exec (or the parent's, before any exec)
  std::vector<std::string> argv;   // at the last exec, read from /proc at the exec event
  bool argv_lost = false;          // the process was gone (or had exec'd again) when argv was read
  int64_t forked_ns = 0;           // CLOCK_REALTIME, from the kernel's timestamp
  int64_t exec_ns = 0;             // the last exec; 0 if none
  int execs = 0;
  int64_t exited_ns = 0;           // 0 while alive
  std::optional<int> raw_status;   // as the kernel gave it (wait status format); nullopt while alive or unknown
  bool reaped_by_daemon = false;   // its parent at exit was forkwatchd: a wait_status row exists
  bool core_dumped = false;        // a coredump event came
  bool from_scan = false;          // found by a /proc re-read after a loss: times are the sample's
  int threads = 0;                 // threads started besides the main one
  int live_threads = 1;            // threads alive now (main included)
  int64_t mono_forked_ns = 0;      // the kernel's timestamp, for identity checks against /proc
};

// One thread (besides the main one) of a supervised process, from its
// creation (a fork event with CLONE_THREAD) to its exit.
struct ThreadLifetime {
  int64_t id = 0;           // assigned at creation; strictly increasing, also across daemon restarts
  int64_t lifetime_id = 0;  // its process's Lifetime::id
  pid_t tid = 0;
  pid_t pid = 0;            // its process (tgid)
  std::string first_name;   // at creation: the creating thread's name
  std::string name;         // the last one a comm event gave (pthread_setname_np, prctl)
  int64_t created_ns = 0;   // CLOCK_REALTIME, from the kernel's timestamp
  int64_t exited_ns = 0;    // 0 while alive
  int64_t mono_created_ns = 0;
};

// One place where events were lost.
struct ProcessGap {
  int64_t ts_ns = 0;    // CLOCK_REALTIME when the loss was noticed
  uint64_t lost = 0;    // events the sequence numbers say are missing (0: an overrun before any was counted)
  std::string reason;   // "overrun" (ENOBUFS) or "sequence"
};

class LifetimeSink {
 public:
  virtual ~LifetimeSink() = default;
  // Upsert by id; a later call for the same id supersedes the earlier one.
  virtual void record_lifetime(const Lifetime& l) = 0;
  virtual void record_gap(const ProcessGap& g) = 0;
  // Upsert by id, like record_lifetime.
  virtual void record_thread(const ThreadLifetime& t) = 0;
};

// Counters for /api/health and /metrics; written by the loop, read anywhere.
struct ProcessEventStats {
  std::string mode = "sampling";  // "proc_connector" or "sampling"; set before the API starts
  std::string reason;             // why sampling; empty otherwise
  std::atomic<uint64_t> events{0}, lost{0}, gaps{0}, overruns{0}, malformed{0};
  std::atomic<uint64_t> lifetimes{0};  // finished lifetimes recorded
  std::atomic<uint64_t> thread_lifetimes{0};  // finished thread lifetimes recorded
  std::atomic<uint64_t> argv_lost{0};  // execs whose argv was gone when read
  std::atomic<int64_t> exec_lag_ns_max{0};  // exec event to its /proc read, the worst seen
  std::atomic<int> rcvbuf{0};
};

class LifetimeTracker {
 public:
  // The worker a new process belongs to: (its pid, its parent's pid, the
  // parent's worker if the parent is tracked). nullopt: not supervised.
  using Attribution = std::function<std::optional<int64_t>(pid_t pid, pid_t ppid, std::optional<int64_t> parent)>;
  static constexpr int64_t kPendingNs = 500'000'000;     // an early exec/exit waits this long for its fork
  static constexpr size_t kPendingMax = 4096;
  static constexpr int64_t kAliveWriteNs = 100'000'000;  // alive this long: written before its exit
  static constexpr int64_t kWindowNs = 100'000'000;      // SSE coalescing window
  static constexpr int kPerWindow = 20;                  // per worker per window, sent one by one

  LifetimeTracker(LifetimeSink& sink, ProcessEventStats& stats, std::function<void(Event)> emit,
                  pid_t daemon_pid, std::string proc_root = "/proc");

  void set_attribution(Attribution fn) { attribution_ = std::move(fn); }
  // Told of every fork, exec and exit of a supervised process ("fork",
  // "exec", "exit"), before SSE coalescing: the live tree (Sampler::note_change).
  using ChangeHook = std::function<void(std::string_view op, const Lifetime& l)>;
  void set_on_change(ChangeHook fn) { on_change_ = std::move(fn); }
  void set_last_id(int64_t id) { next_id_ = id + 1; }
  void set_last_thread_id(int64_t id) { next_thread_id_ = id + 1; }
  // The supervisor spawned `pid` as worker `worker_id`'s main process.
  void note_spawn(int64_t worker_id, pid_t pid);

  // Events in the order received. Sorted by kernel time within the batch.
  // `mono_to_real_ns` converts the kernel's CLOCK_MONOTONIC stamps.
  void apply(std::vector<ProcEvent>& batch, int64_t mono_to_real_ns);
  // Events were lost (ENOBUFS or a sequence gap): reconcile with /proc.
  void resync(std::span<const ProcessInfo> procs, int64_t now_real_ns, int64_t boot_to_mono_ns, long ticks_per_s);
  void record_gap(ProcessGap g);
  // Writes alive lifetimes old enough, sends the SSE window's counts and
  // drops stale pending events. Call every kWindowNs or so.
  void tick(int64_t now_mono_ns, int64_t mono_to_real_ns);

  const std::unordered_map<pid_t, Lifetime>& live() const { return live_; }
  // The live threads of process `pid` (main thread excluded), by tid; nullptr if none.
  const std::unordered_map<pid_t, ThreadLifetime>* live_threads(pid_t pid) const;
  size_t pending() const { return pending_.size(); }
  // Something is left for tick(): alive rows to write, counts to send, pending events.
  bool busy() const {
    return !unwritten_.empty() || !unwritten_threads_.empty() || !window_.empty() || !pending_.empty();
  }

  // The attribution by ancestry: a worker's main pid is its worker's; any
  // other process is its parent's.
  std::optional<int64_t> attribute(pid_t pid, pid_t ppid, std::optional<int64_t> parent) const;

 private:
  void on_fork(const ProcEvent& e, int64_t to_real);
  void on_exec(Lifetime& l, const ProcEvent& e, int64_t to_real);
  void on_exit(pid_t tgid, const ProcEvent& e, int64_t to_real);
  bool apply_one(const ProcEvent& e, int64_t to_real);  // false: its process is not known (yet)
  void finish(Lifetime& l);
  bool on_thread_fork(const ProcEvent& e, int64_t to_real);
  bool on_thread_exit(Lifetime& l, const ProcEvent& e, int64_t to_real);
  // Every thread still alive when its process ends (or is found gone) ends with it.
  void finish_threads(pid_t pid, int64_t exited_ns);
  void notify(const char* op, const Lifetime& l);
  void read_exec(Lifetime& l);
  void hold(const ProcEvent& e, int64_t to_real);
  void unhold(pid_t tgid);

  LifetimeSink& sink_;
  ProcessEventStats& stats_;
  std::function<void(Event)> emit_;
  const pid_t daemon_pid_;
  const std::string proc_root_;
  Attribution attribution_;
  ChangeHook on_change_;
  int64_t next_id_ = 1;
  int64_t next_thread_id_ = 1;
  std::unordered_map<pid_t, int64_t> main_pids_;  // worker main pid -> worker, until its exit event
  std::unordered_map<pid_t, Lifetime> live_;      // by tgid
  std::unordered_map<pid_t, int64_t> unwritten_;  // alive, not yet written (or changed since) -> mono forked
  // Threads of live processes: tgid -> tid -> thread; an entry only while the
  // process is in live_, so the map is bounded by what runs.
  std::unordered_map<pid_t, std::unordered_map<pid_t, ThreadLifetime>> threads_;
  std::unordered_map<pid_t, pid_t> unwritten_threads_;  // tid -> tgid: alive, not yet written (or renamed since)
  struct Pending {
    ProcEvent event;
    int64_t to_real;
  };
  std::deque<Pending> pending_;  // events for processes not (yet) known, oldest first
  std::unordered_map<pid_t, int> pending_tgids_;  // tgid -> its events in pending_
  struct Window {
    int sent = 0;
    uint64_t fork = 0, exec = 0, exit = 0;  // folded beyond kPerWindow
  };
  std::map<int64_t, Window> window_;  // by worker
};

// Renders one lifetime as the JSON object of /api/lifetimes and `process`
// events: {"id","pid","ppid","worker_id","comm","argv","argv_lost","forked_ns",
// "exec_ns","exited_ns","raw_status","description","reaped_by_daemon",
// "core_dumped","from_scan","threads"}. Invalid UTF-8 becomes U+FFFD.
std::string lifetime_json(const Lifetime& l, std::optional<int64_t> wait_id = std::nullopt);
// The fields both that object and a past tree's node (lifetime_api.h) open
// with, "pid" to "description", without braces.
void put_lifetime_fields(std::string& out, const Lifetime& l);
// One thread lifetime as GET /api/lifetimes/{id}/threads lists it:
// {"id","lifetime_id","pid","tid","first_name","name","created_ns","exited_ns"}.
std::string thread_lifetime_json(const ThreadLifetime& t);
// "running", "exited 0", "killed by SIGKILL", "unknown (events lost)".
std::string lifetime_description(const Lifetime& l);

}  // namespace forkwatch
