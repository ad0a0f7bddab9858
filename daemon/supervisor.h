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
#include "probe.h"
#include "process_host.h"
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
  // How long shutdown waits for a cgroup's processes to die after cgroup.kill.
  static constexpr int64_t kLeftoverGraceNs = 1'000'000'000;
  // The built-in worker programs, always in the catalogue (CONTRACT.md).
  static const std::vector<std::string>& builtin_programs();

  Supervisor(EventLoop& loop, CommandQueue& commands, SnapshotBox& snapshots,
             SupervisorCounters& counters, SupervisorOptions options, ProcessHost* host = nullptr);
  ~Supervisor();

  // Blocks nothing; installs the signalfd (the caller has blocked the signals).
  Status init();
  void add_sink(EventSink* sink) { sinks_.push_back(sink); }
  // Also asks it for the samples memory_restart needs (supervisor_memory.cpp).
  void set_sampler(Sampler* sampler);
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
  // Called at the end of a loop round in which a worker's main process came
  // or went, with every live (worker id, main pid): what a daemon starting
  // after a crash must find (live_pids.h).
  using LivePidsFn = std::function<void(const std::vector<std::pair<int64_t, pid_t>>&)>;
  void set_on_live_pids(LivePidsFn fn) { on_live_pids_ = std::move(fn); }
  // Called as each worker's main process is spawned (worker id, pid): the
  // kernel's process events are attributed from it (lifetime.h).
  void set_on_spawned(std::function<void(int64_t, pid_t)> fn) { on_spawned_ = std::move(fn); }
  // Process groups still attributed to a worker (tests: it must not only grow).
  size_t tracked_groups() const { return pgid_owner_.size(); }

  // Drains every wait status now (the loop does on SIGCHLD; a test over a
  // fake host does after making a fake process exit).
  void reap_now();
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
  void start_due_restarts();
  void on_commands();
  void on_reaped(pid_t pid, int raw, const Rusage& ru, int64_t ts_ns, pid_t pgid, int64_t owner = 0);
  void start_once_running(std::vector<int64_t> ids);
  void on_output(int fd);
  CommandReply handle(Command& c);

  Worker* find(int64_t id);
  Worker& create_worker(ProgramSpec spec, std::string program, std::string name, bool persistent,
                        std::string config_program, int64_t id = 0);
  // Asks the state table and carries out what it returns.
  void input(Worker& w, WorkerInput in, const ExitFacts& facts = {});
  void act(Worker& w, WorkerAction action);
  void start_process(Worker& w);
  // No process came to be: says why (never a made-up exit), lets the policy decide.
  void spawn_failed(Worker& w, const std::string& reason);
  // The start was refused or the exec failed: the table makes it fatal.
  void fail_fatal(Worker& w, WorkerInput why, const std::string& reason);
  void send_stop(Worker& w);
  void kill_family(int64_t worker_id, pid_t pgid, const char* why);
  // The second SIGTERM/SIGINT: every stop timeout is cut short.
  void hurry_shutdown();
  // Signals every family member of a worker through pidfds and remembers who
  // they belong to. `main_pid`/`pgid` -1 once the main process is reaped.
  void signal_family(int64_t worker_id, pid_t main_pid, pid_t pgid, int sig);
  void after_stopped(Worker& w);
  // What is left in a worker's place once its main process is gone: the stop
  // signal now, cgroup.kill after the stop timeout (KillMode=control-group).
  void stop_leftovers(Worker& w);
  // pid_file: looks for the daemonized main pid until `deadline_ns`; follows it
  // or fails the start with the reason.
  void follow_pid_file(int64_t id, int64_t deadline_ns, ExitFacts facts);
  // Whether `pid` is one of worker `w`'s processes, so it may become its main.
  bool is_worker_process(const Worker& w, pid_t pid) const;
  // `pid` is the worker's main process from now on (pid_file, MAINPID=);
  // `source` says who said so, for the event.
  void follow_main_pid(Worker& w, pid_t pid, const std::string& source);
  // A main process whose parent is not the daemon (MAINPID= naming a child
  // of a process that lives on) gives its status to that parent: its exit is
  // watched through a pidfd, and the parent that reaped it is followed next.
  void watch_foreign_main(Worker& w);
  void on_foreign_main_exit(int64_t id, pid_t pid, pid_t parent_then, uint64_t started);
  // Before a new main process: nothing of the previous one may remain.
  void kill_leftovers_now(Worker& w);
  void forget_group_if_empty(pid_t pgid);
  void remove_worker(int64_t id);
  void persist(const Worker& w, bool removed = false);
  void reload();
  void check_shutdown_done();
  void emit_state(const Worker& w);
  void deliver_events();  // hands undelivered_ to the sinks, in order
  WorkerView view(const Worker& w) const;
  // memory_restart (supervisor_memory.cpp): some live worker has one.
  bool watches_memory() const;
  // After each /proc sample: a worker over its memory_restart for the
  // second sample in a row is restarted.
  void check_memory(const TreeSample& sample);
  // Readiness, health, order (supervisor_readiness.cpp).
  // Returns the write end of a `ready: {"fd": N}` pipe for the spawn to pass
  // as fd N (the caller closes it once spawned), or none.
  Fd prepare_readiness(Worker& w, std::map<std::string, std::string>& env);
  void on_notify(int64_t worker_id);
  // `ready: {"fd": N}`: a newline is READY; EOF before it leaves it starting.
  void on_ready_fd(int64_t worker_id);
  void close_ready_fd(Worker& w);
  void await_ready(Worker& w);
  void mark_ready(Worker& w);
  void arm_watchdog(Worker& w);
  void end_readiness(Worker& w);  // the process is gone, or the worker goes: timers off
  void close_notify(Worker& w);
  // "waiting for db to be ready", or "" when every depends_on condition holds.
  std::string unmet_dependency(const Worker& w) const;
  // Starts the waiting workers whose conditions now hold, and refreshes the others' waiting_for.
  void start_met_dependents();
  // A worker of config program `program` went down: its part_of dependents restart with it.
  void restart_part_of(const std::string& program);
  // Shutdown and reload: stops each held worker once no live worker depends on it.
  void stop_in_reverse();
  // A stop, restart or removal asked of `w` over the API: its part_of
  // dependents stop first, and `w` is held until they have exited.
  void stop_after_part_of(Worker& w);
  bool is_held(int64_t id) const;  // in held_for_dependents_
  // tcp/http probes: until ready every kReadyProbeIntervalMs, then health every interval_ms.
  void schedule_probe(Worker& w, int64_t delay_ms);
  void on_probe_result(int64_t worker_id, bool passed, std::string detail);
  // exec probes: a short child of the daemon, reaped like any other.
  void start_exec_probe(Worker& w, const ProbeSpec& spec, int64_t timeout_ms);
  // Its status, if `pid` was an exec probe: true when handled.
  bool on_probe_reaped(pid_t pid, const WaitStatus& s);
  // `ready: {"log": …}`: matches the worker's output lines while it starts.
  void match_ready_log(Worker& w, std::string_view chunk);
  void publish_if_dirty();
  std::vector<ProgramSpec> catalogue() const;

  EventLoop& loop_;
  CommandQueue& commands_;
  SnapshotBox& snapshots_;
  SupervisorCounters& counters_;
  const SupervisorOptions options_;
  const Credentials self_ = Credentials::current();  // never changes: the daemon keeps its ids
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
  LivePidsFn on_live_pids_;
  std::function<void(int64_t, pid_t)> on_spawned_;

  std::unique_ptr<ProcessHost> own_host_;  // when the caller gave none
  ProcessHost* host_;                      // never null
  Fd signal_fd_;
  std::map<int64_t, std::unique_ptr<Worker>> workers_;
  std::unordered_map<pid_t, int64_t> pid_index_;   // live main pid -> worker id
  std::unordered_map<pid_t, int64_t> pgid_owner_;  // live groups a worker led -> worker id
  std::vector<pid_t> left_groups_;  // groups a process left in this drain: forgotten after it if empty
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
  bool dependencies_dirty_ = false;  // a state or readiness changed: waiting workers re-checked
  // Shutdown, or a reload's removals: not told to stop yet, since a live
  // worker depends on them (stop_in_reverse).
  std::vector<int64_t> held_for_dependents_;
  bool stopping_in_reverse_ = false;
  ProbeRunner probes_{loop_};
  struct ProbeChild {
    int64_t worker_id;
    int64_t run_started_ns;  // the worker run it probes (started_mono_ns): a late result of an old run is ignored
    int64_t timeout_ms;
    EventLoop::TimerId deadline = 0;
    bool timed_out = false;
  };
  std::unordered_map<pid_t, ProbeChild> probe_children_;
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
  bool hurrying_ = false;         // a second SIGTERM/SIGINT came during shutdown
  bool live_pids_changed_ = true;  // the recorded live pids are behind
  std::mt19937_64 rng_{std::random_device{}()};
};

}  // namespace forkwatch
