// Supervisor: owns every worker and runs their lifecycles on the loop thread.
// It spawns, reaps (its own children and adopted orphans), applies restart
// policies, stops process groups with escalation, answers commands from the
// API, and publishes snapshots. It reports through EventSinks and knows
// nothing of HTTP or SQLite. Every method runs on the loop thread.
#pragma once

#include <sys/types.h>

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "command.h"
#include "event.h"
#include "event_loop.h"
#include "fd.h"
#include "program_spec.h"
#include "snapshot.h"
#include "spawner.h"
#include "worker_state.h"

namespace forkwatch {

class Sampler;

struct SupervisorOptions {
  std::string workers_dir;   // where bare catalogue commands are found
  std::string logs_dir;      // worker output files; empty: memory only
  size_t max_workers = 1000;
  int64_t worker_nofile = -1;  // soft RLIMIT_NOFILE for workers; -1: inherit the daemon's
};

// A worker the store remembered (started through the API): recreated at start.
struct PersistedWorker {
  int64_t id = 0;
  std::string name, program;
  ProgramSpec spec;
  bool running = false;  // desired: running (true) or stopped
};

class Supervisor {
 public:
  static constexpr size_t kRecentExits = 20;
  // The built-in worker programs, always in the catalogue (CONTRACT.md).
  static const std::vector<std::string>& builtin_programs();

  Supervisor(EventLoop& loop, CommandQueue& commands, SnapshotBox& snapshots,
             SupervisorCounters& counters, SupervisorOptions options);
  ~Supervisor();

  // Blocks nothing; installs the signalfd (the caller has blocked the signals).
  Status init();
  void add_sink(EventSink* sink) { sinks_.push_back(sink); }
  void set_sampler(Sampler* sampler) { sampler_ = sampler; }
  // Continue numbering where the store left off.
  void set_last_ids(uint64_t event_id, int64_t worker_id);
  // Called when a worker's desired state changes (API workers only).
  void set_persist(std::function<void(const PersistedWorker&, bool removed)> fn) { persist_ = std::move(fn); }
  // Called on SIGHUP: returns the new config, or an error that keeps the old one.
  void set_reload(std::function<Result<Config>()> fn) { reload_ = std::move(fn); }
  // Called once after every worker stopped on SIGTERM/SIGINT, before the loop ends.
  void set_on_shutdown(std::function<void()> fn) { on_shutdown_ = std::move(fn); }
  void set_on_reload_done(std::function<void(bool ok)> fn) { on_reload_done_ = std::move(fn); }
  // Called first thing on SIGTERM/SIGINT, before any worker is told to stop.
  void set_on_stopping(std::function<void()> fn) { on_stopping_ = std::move(fn); }
  // Called on the loop thread with each snapshot just published.
  void set_on_publish(std::function<void(const Snapshot&)> fn) { on_publish_ = std::move(fn); }

  // Initial programs; starts the autostart ones.
  void apply_config(const Config& config);
  void restore(const std::vector<PersistedWorker>& workers);
  // Stop every worker, then end the loop (also what SIGTERM does).
  void shutdown();
  void publish_now() { dirty_ = true; publish_if_dirty(); }
  // Numbers an event (the sampler's events too) and queues it for the sinks,
  // which get it at the end of the loop round (publish_if_dirty), or sooner
  // once kDeliverAt are waiting.
  void emit(Event e);
  // For the sampler: pid -> (worker id, name) of every live worker process.
  std::vector<std::pair<pid_t, std::pair<int64_t, std::string>>> worker_pids() const;

 private:
  struct Worker;

  void on_signal();
  void on_sigchld();
  void reap_now();
  void start_due_restarts();
  void on_commands();
  void on_reaped(pid_t pid, int raw, const Rusage& ru, int64_t ts_ns, pid_t pgid);
  void start_once_running(std::vector<int64_t> ids);
  void on_output(int fd);
  CommandReply handle(Command& c);

  Worker* find(int64_t id);
  Worker& create_worker(ProgramSpec spec, std::string program, std::string name, bool persistent,
                        std::string config_program, int64_t id = 0);
  void input(Worker& w, WorkerInput in, const ExitFacts& facts = {});
  void start_process(Worker& w);
  void fail_fatal(Worker& w, const std::string& reason);
  void send_stop(Worker& w);
  void kill_family(int64_t worker_id, pid_t pgid);
  // Signals every family member of a worker through pidfds and remembers who
  // they belong to. `main_pid`/`pgid` -1 once the main process is reaped.
  void signal_family(int64_t worker_id, pid_t main_pid, pid_t pgid, int sig);
  void after_stopped(Worker& w);
  void remove_worker(int64_t id);
  void persist(const Worker& w, bool removed = false);
  void reload();
  void check_shutdown_done();
  void emit_state(const Worker& w);
  void deliver_events();  // hands undelivered_ to the sinks, in order
  WorkerView view(const Worker& w) const;
  void publish_if_dirty();
  std::vector<ProgramSpec> catalogue() const;

  EventLoop& loop_;
  CommandQueue& commands_;
  SnapshotBox& snapshots_;
  SupervisorCounters& counters_;
  const SupervisorOptions options_;
  std::vector<EventSink*> sinks_;
  std::vector<Event> undelivered_;  // emitted this round, not yet given to the sinks
  static constexpr size_t kDeliverAt = 1024;
  Sampler* sampler_ = nullptr;
  std::function<void(const PersistedWorker&, bool)> persist_;
  std::function<Result<Config>()> reload_;
  std::function<void()> on_shutdown_;
  std::function<void(bool)> on_reload_done_;
  std::function<void()> on_stopping_;
  std::function<void(const Snapshot&)> on_publish_;

  Fd signal_fd_;
  std::map<int64_t, std::unique_ptr<Worker>> workers_;
  std::unordered_map<pid_t, int64_t> pid_index_;   // live main pid -> worker id
  std::unordered_map<pid_t, int64_t> pgid_owner_;  // every group a worker led -> worker id
  // Descendants found outside their worker's group at stop time (setsid,
  // double fork) -> worker id, so their adopted exit is attributed too.
  std::unordered_map<pid_t, int64_t> orphan_owner_;
  struct Pipe {
    int64_t worker_id;
    Stream stream;
    Fd fd;
    std::shared_ptr<OutputLog> log;
  };
  std::unordered_map<int, Pipe> pipes_;  // by fd; outlive their process until EOF
  std::vector<ProgramSpec> config_programs_;
  // A changed program's new worker -> its old workers still stopping: it
  // starts once they are gone, so it never races them for a port or a file.
  std::map<int64_t, std::vector<int64_t>> start_after_;
  // Restarts whose backoff has elapsed: (worker id, its restart count then).
  // Started at the end of the loop round, with a reap before each, so a burst
  // of exits is all reaped and recorded before the first replacement forks.
  std::deque<std::pair<int64_t, int>> due_restarts_;
  std::vector<std::pair<SampleNow, std::promise<CommandReply>>> sample_waiters_;
  uint64_t last_event_id_ = 0;
  int64_t last_worker_id_ = 0;
  uint64_t seq_ = 0;
  bool dirty_ = true;
  bool shutting_down_ = false;
  std::mt19937_64 rng_{std::random_device{}()};
};

}  // namespace forkwatch
