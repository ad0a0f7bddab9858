// Supervisor: construction, signals, reaping, and carrying out what the
// state table decides. The other jobs are in supervisor_{spawn,stop,commands,
// workers,publish}.cpp; they share Supervisor::Worker (supervisor_worker.h).
#include "supervisor_worker.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "backoff.h"
#include "family.h"
#include "log.h"
#include "reaper.h"
#include "sampler.h"
#include "signals.h"

namespace forkwatch {

const std::vector<std::string>& Supervisor::builtin_programs() {
  static const std::vector<std::string> kPrograms = {
      "exit-with",  "orphan-maker", "thread-spawner", "echo-fork",  "echo-epoll",
      "echo-threads", "echo-client", "sem-accumulate", "ipc-pipe", "ipc-mqueue"};
  return kPrograms;
}

Supervisor::Supervisor(EventLoop& loop, CommandQueue& commands, SnapshotBox& snapshots,
                       SupervisorCounters& counters, SupervisorOptions options, ProcessHost* host)
    : loop_(loop), commands_(commands), snapshots_(snapshots), counters_(counters),
      options_(std::move(options)) {
  if (!host) {
    own_host_ = std::make_unique<ProcessGroupHost>();
    host = own_host_.get();
  }
  host_ = host;
}

Supervisor::~Supervisor() = default;

Status Supervisor::init() {
  sigset_t mask;
  sigemptyset(&mask);
  for (int sig : {SIGCHLD, SIGTERM, SIGINT, SIGHUP}) sigaddset(&mask, sig);
  signal_fd_ = Fd(signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!signal_fd_) return sys_error("signalfd");
  if (auto st = host_->prepare(); !st) return st;
  if (auto st = loop_.add(signal_fd_.get(), [this](uint32_t) { on_signal(); }); !st) return st;
  if (auto st = loop_.add(commands_.fd(), [this](uint32_t) { on_commands(); }); !st) return st;
  loop_.set_after_dispatch([this] {
    start_due_restarts();
    if (dependencies_dirty_) start_met_dependents();
    counters_.loop_wakeups = loop_.wakeups();
    publish_if_dirty();
    if (live_pids_changed_ && on_live_pids_) {
      live_pids_changed_ = false;
      std::vector<std::pair<int64_t, pid_t>> live;
      live.reserve(pid_index_.size());
      for (const auto& [pid, id] : pid_index_) live.emplace_back(id, pid);
      on_live_pids_(live);
    }
  });
  return Ok{};
}

void Supervisor::set_last_ids(uint64_t event_id, int64_t worker_id) {
  last_event_id_ = std::max(last_event_id_, event_id);
  last_worker_id_ = std::max(last_worker_id_, worker_id);
}

// ---- signals and reaping ----

void Supervisor::on_signal() {
  bool chld = false, term = false, hup = false;
  signalfd_siginfo info;
  while (::read(signal_fd_.get(), &info, sizeof info) == sizeof info) {
    if (info.ssi_signo == SIGCHLD) chld = true;
    else if (info.ssi_signo == SIGHUP) hup = true;
    else term = true;
  }
  if (chld) on_sigchld();
  if (hup) reload();
  // A second SIGTERM/SIGINT while stopping means "now": what users expect of Ctrl-C.
  if (term) shutting_down_ ? hurry_shutdown() : shutdown();
}

void Supervisor::on_sigchld() {
  ++counters_.sigchld_wakeups;
  reap_now();
}

void Supervisor::reap_now() {
  host_->reap([this](pid_t pid) { return pid_index_.contains(pid) || probe_children_.contains(pid); },
           [this](const Reaped& r) { on_reaped(r.pid, r.raw, r.rusage, r.ts_ns, r.pgid, r.owner); });
  // Only now: the members of a group reaped in the same drain were gone from
  // the kernel before the first of them was attributed, and each of them
  // must still find the group's owner.
  for (pid_t pgid : left_groups_) forget_group_if_empty(pgid);
  left_groups_.clear();
  check_shutdown_done();
}

void Supervisor::start_due_restarts() {
  // Only the restarts that were due when the round began. One that falls due
  // meanwhile (a replacement that died at once) waits for the next round, so
  // the loop is back in epoll_wait between any two, where signals, commands
  // and output are seen.
  for (size_t n = due_restarts_.size(); n > 0 && !due_restarts_.empty(); --n) {
    reap_now();  // children that died meanwhile first: their rows and restarts must not wait
    auto [id, restarts] = due_restarts_.front();
    due_restarts_.pop_front();
    // Skip a restart overtaken by a stop, a start or a later exit of the same worker.
    Worker* w = find(id);
    if (w && w->state == WorkerState::kBackoff && w->restarts == restarts)
      input(*w, WorkerInput::kBackoffElapsed);
  }
  // The deferred ones: the next epoll_wait must not sleep.
  if (!due_restarts_.empty()) loop_.add_timer(monotonic_ns(), [] {});
}

void Supervisor::on_reaped(pid_t pid, int raw, const Rusage& ru, int64_t ts_ns, pid_t pgid, int64_t owner) {
  WaitRecord rec;
  rec.ts_ns = ts_ns;
  rec.pid = pid;
  rec.status = decode_wait_status(raw);
  rec.rusage = ru;
  const WaitStatus& s = rec.status;
  if (on_probe_reaped(pid, s)) return;
  ++counters_.reaped;
  if (s.exited) ++counters_.exited;
  if (s.signaled) ++counters_.signaled;
  if (s.core_dumped) ++counters_.core_dumped;
  if (s.stopped) ++counters_.stopped;
  if (s.continued) ++counters_.continued;

  Event e;
  e.pid = pid;
  auto idx = pid_index_.find(pid);
  if (idx == pid_index_.end()) {
    // Not ours: an orphan re-parented to us as subreaper.
    rec.adopted = true;
    // Its cgroup says whose it was, whatever group or parent it had.
    if (owner > 0 && find(owner)) rec.worker_id = owner;
    if (auto owner = pgid_owner_.find(pgid); !rec.worker_id && pgid > 0 && owner != pgid_owner_.end())
      rec.worker_id = owner->second;
    if (auto owner = orphan_owner_.find(pid); owner != orphan_owner_.end()) {
      if (!rec.worker_id) rec.worker_id = owner->second;
      if (s.terminated()) orphan_owner_.erase(owner);
    }
    rec.cause = cause_of_status(s);
    if (rec.worker_id)
      if (Worker* owner = find(*rec.worker_id)) rec.cause = exit_cause(owner->state, s, owner->stop);
    if (s.terminated()) {
      ++counters_.adopted;
      if (pgid > 0) left_groups_.push_back(pgid);
    }
    e.kind = s.stopped ? EventKind::kStop : s.continued ? EventKind::kContinue : EventKind::kAdopt;
    e.worker_id = rec.worker_id;
    e.detail = describe(s);
    e.wait = rec;
    emit(std::move(e));
    return;
  }
  Worker& w = *workers_.at(idx->second);
  rec.worker_id = w.id;
  rec.cause = exit_cause(w.state, s, w.stop);
  // SIGKILL while memory.events' oom_kill grew: the kernel's OOM killer, not
  // us or someone else (where the memory controller is in the cgroup).
  if (s.signaled && s.term_sig == SIGKILL && rec.cause != ExitCause::kStopTimeoutKilled)
    if (auto oom = host_->oom_kills(w.id); oom && *oom > w.oom_kills_at_start) rec.cause = ExitCause::kOomKill;
  e.worker_id = w.id;
  e.wait = rec;
  e.detail = describe(s);
  if (!s.terminated()) {
    e.kind = s.stopped ? EventKind::kStop : EventKind::kContinue;
    emit(std::move(e));
    dirty_ = true;
    return;
  }
  // The main process is gone: its pid becomes invalid here and only here.
  pid_index_.erase(idx);
  w.pid = -1;
  end_readiness(w);
  live_pids_changed_ = true;
  left_groups_.push_back(pid);
  // A followed main process (MAINPID=) may have stayed in the group of the
  // one it replaced: that group may be empty now too.
  if (w.group > 0 && w.group != pid) left_groups_.push_back(w.group);
  e.kind = EventKind::kExit;
  emit(std::move(e));
  w.last_exit = rec;
  w.recent_exits.push_back(rec);
  if (w.recent_exits.size() > kRecentExits) w.recent_exits.pop_front();

  // A daemonizing program's first process exited 0: its main pid is in the
  // pid file (systemd's Type=forking); the worker keeps running meanwhile.
  if (!w.spec.pid_file.empty() && s.exited && s.exit_status == 0 &&
      (w.state == WorkerState::kRunning || w.state == WorkerState::kStarting) && w.pid_file_timer == 0 &&
      !w.following_pid_file) {
    w.following_pid_file = true;
    follow_pid_file(w.id, monotonic_ns() + kPidFileTimeoutMs * 1'000'000,
                    ExitFacts{w.spec.restart, true, w.consecutive_failures, w.spec.max_restarts});
    return;
  }
  const int64_t uptime_ms = (monotonic_ns() - w.started_mono_ns) / 1'000'000;
  if (uptime_ms >= kStableAfterMs) w.consecutive_failures = 0;
  ExitFacts facts{w.spec.restart, !(s.exited && s.exit_status == 0), w.consecutive_failures,
                  w.spec.max_restarts};
  input(w, WorkerInput::kExit, facts);
}

// ---- the state machine's actions ----

void Supervisor::input(Worker& w, WorkerInput in, const ExitFacts& given) {
  // What the table needs to know of readiness and order, from the worker.
  ExitFacts facts = given;
  facts.awaits_ready = w.spec.ready.kind != ProbeKind::kNone;
  facts.stopped_as_failed = stopped_as_failed(w.stop);
  if (in == WorkerInput::kStart) {
    w.waiting_for = unmet_dependency(w);
    facts.dependencies_met = w.waiting_for.empty();
  }
  const Transition t = transition(w.state, in, facts);
  if (t.action == WorkerAction::kRejected) return;
  const WorkerState before = w.state;
  w.state = t.next;
  if (t.stop_cause) w.stop.stop_cause = t.stop_cause;
  if (t.restart_after_stop) w.restart_after_stop = true;
  if (w.state != WorkerState::kWaiting) w.waiting_for.clear();
  if (t.publish) dependencies_dirty_ = true;
  if (w.state == WorkerState::kFatal && in == WorkerInput::kExit)
    w.fatal_reason = "gave up after " + std::to_string(w.consecutive_failures) +
                     " restarts (max_restarts); last: " + describe(w.last_exit->status);
  else if (w.state == WorkerState::kFatal && in == WorkerInput::kSpawnFailed && w.consecutive_failures > 0)
    w.fatal_reason = "gave up after " + std::to_string(w.consecutive_failures) +
                     " restarts (max_restarts); last: " + w.fatal_reason;
  if (t.publish) emit_state(w);
  dirty_ = true;
  const bool went_down = (before == WorkerState::kRunning || before == WorkerState::kStarting) &&
                         w.state != WorkerState::kRunning && w.state != WorkerState::kStarting;
  const std::string program = w.config_program;
  act(w, t.action);
  if (t.then != WorkerAction::kNone) act(w, t.then);  // may erase w
  if (went_down && !program.empty()) restart_part_of(program);
}

void Supervisor::act(Worker& w, WorkerAction action) {
  switch (action) {
    case WorkerAction::kSpawn:
      start_process(w);
      break;
    case WorkerAction::kScheduleRestart: {
      stop_leftovers(w);  // the replacement must not meet them
      ++w.consecutive_failures;
      ++w.restarts;
      ++counters_.restarts;
      std::uniform_real_distribution<double> uniform(0.0, 1.0);
      const int64_t delay = paced_restart_delay_ms(w.spec.restart_delay_ms, w.consecutive_failures, uniform(rng_));
      Event e;
      e.kind = EventKind::kRestart;
      e.worker_id = w.id;
      e.state = "backoff";
      e.detail = "restart " + std::to_string(w.consecutive_failures) + " in " + std::to_string(delay) + " ms";
      emit(std::move(e));
      if (delay == 0) {
        due_restarts_.emplace_back(w.id, w.restarts);
      } else {
        const int64_t id = w.id;
        w.restart_timer = loop_.add_timer(monotonic_ns() + delay * 1'000'000, [this, id] {
          if (Worker* x = find(id)) {
            x->restart_timer = 0;
            due_restarts_.emplace_back(id, x->restarts);
          }
        });
      }
      break;
    }
    case WorkerAction::kSendStopSignal:
      if (!w.stop.stop_cause) w.stop.stop_cause = shutting_down_ ? ExitCause::kShutdown : ExitCause::kStopRequested;
      if (w.pid <= 0 && w.pid_file_timer != 0) {
        // Still waiting for a pid file: no main process to wait for. What the
        // first process left is stopped, and the stop is done.
        loop_.cancel_timer(w.pid_file_timer);
        w.pid_file_timer = 0;
        stop_leftovers(w);
        input(w, WorkerInput::kExit);  // may erase w
        break;
      }
      send_stop(w);
      break;
    case WorkerAction::kKill:
      w.stop.killed = true;
      kill_family(w.id, w.pid > 0 ? w.pid : -1,
                  hurrying_ ? "shutting down now (second SIGTERM/SIGINT)" : "stop timeout passed");
      break;
    case WorkerAction::kCancelRestart:
      loop_.cancel_timer(w.restart_timer);
      w.restart_timer = 0;
      break;
    case WorkerAction::kFinishStop:
      after_stopped(w);  // may erase w
      break;
    case WorkerAction::kAwaitReady:
      await_ready(w);
      break;
    case WorkerAction::kMarkReady:
      mark_ready(w);
      break;
    case WorkerAction::kNone:
    case WorkerAction::kRejected:
      break;
  }
}

}  // namespace forkwatch
