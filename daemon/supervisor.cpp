#include "supervisor.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "backoff.h"
#include "family.h"
#include "log.h"
#include "reaper.h"
#include "sampler.h"
#include "signals.h"

extern char** environ;

namespace forkwatch {

struct Supervisor::Worker {
  int64_t id = 0;
  std::string name, program;
  std::string config_program;  // the config program it is an instance of; "" for API workers
  ProgramSpec spec;
  bool persistent = false;
  WorkerState state = WorkerState::kStopped;
  pid_t pid = -1;         // main process; -1 once reaped (set back exactly once, in on_reaped)
  SpawnRequest request;   // what the current process was started with
  int64_t started_mono_ns = 0, started_at_ns = 0;
  int restarts = 0, consecutive_failures = 0;
  std::optional<WaitRecord> last_exit;
  std::deque<WaitRecord> recent_exits;
  EventLoop::TimerId restart_timer = 0, kill_timer = 0;
  bool restart_after_stop = false, remove_after_stop = false;
  std::string fatal_reason;
  std::shared_ptr<OutputLog> output;
};

const std::vector<std::string>& Supervisor::builtin_programs() {
  static const std::vector<std::string> kPrograms = {
      "exit-with",  "orphan-maker", "thread-spawner", "echo-fork",  "echo-epoll",
      "echo-threads", "echo-client", "sem-accumulate", "ipc-pipe", "ipc-mqueue"};
  return kPrograms;
}

Supervisor::Supervisor(EventLoop& loop, CommandQueue& commands, SnapshotBox& snapshots,
                       SupervisorCounters& counters, SupervisorOptions options)
    : loop_(loop), commands_(commands), snapshots_(snapshots), counters_(counters),
      options_(std::move(options)) {}

Supervisor::~Supervisor() = default;

Status Supervisor::init() {
  sigset_t mask;
  sigemptyset(&mask);
  for (int sig : {SIGCHLD, SIGTERM, SIGINT, SIGHUP}) sigaddset(&mask, sig);
  signal_fd_ = Fd(signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!signal_fd_) return sys_error("signalfd");
  if (auto st = spawn_prepare(); !st) return st;
  if (auto st = loop_.add(signal_fd_.get(), [this](uint32_t) { on_signal(); }); !st) return st;
  if (auto st = loop_.add(commands_.fd(), [this](uint32_t) { on_commands(); }); !st) return st;
  loop_.set_after_dispatch([this] {
    start_due_restarts();
    counters_.loop_wakeups = loop_.wakeups();
    publish_if_dirty();
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
  if (term) shutdown();
}

void Supervisor::on_sigchld() {
  ++counters_.sigchld_wakeups;
  reap_now();
}

void Supervisor::reap_now() {
  reap_all([this](pid_t pid) { return pid_index_.contains(pid); },
           [this](const Reaped& r) { on_reaped(r.pid, r.raw, r.rusage, r.ts_ns, r.pgid); });
  check_shutdown_done();
}

void Supervisor::start_due_restarts() {
  while (!due_restarts_.empty()) {
    reap_now();  // children that died meanwhile first: their rows and restarts must not wait
    auto [id, restarts] = due_restarts_.front();
    due_restarts_.pop_front();
    // Skip a restart overtaken by a stop, a start or a later exit of the same worker.
    Worker* w = find(id);
    if (w && w->state == WorkerState::kBackoff && w->restarts == restarts)
      input(*w, WorkerInput::kBackoffElapsed);
  }
}

void Supervisor::on_reaped(pid_t pid, int raw, const Rusage& ru, int64_t ts_ns, pid_t pgid) {
  WaitRecord rec;
  rec.ts_ns = ts_ns;
  rec.pid = pid;
  rec.status = decode_wait_status(raw);
  rec.rusage = ru;
  const WaitStatus& s = rec.status;
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
    if (auto owner = pgid_owner_.find(pgid); pgid > 0 && owner != pgid_owner_.end())
      rec.worker_id = owner->second;
    if (auto owner = orphan_owner_.find(pid); owner != orphan_owner_.end()) {
      if (!rec.worker_id) rec.worker_id = owner->second;
      if (s.terminated()) orphan_owner_.erase(owner);
    }
    if (s.terminated()) ++counters_.adopted;
    e.kind = s.stopped ? EventKind::kStop : s.continued ? EventKind::kContinue : EventKind::kAdopt;
    e.worker_id = rec.worker_id;
    e.detail = describe(s);
    e.wait = rec;
    emit(std::move(e));
    return;
  }
  Worker& w = *workers_.at(idx->second);
  rec.worker_id = w.id;
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
  e.kind = EventKind::kExit;
  emit(std::move(e));
  w.last_exit = rec;
  w.recent_exits.push_back(rec);
  if (w.recent_exits.size() > kRecentExits) w.recent_exits.pop_front();

  const int64_t uptime_ms = (monotonic_ns() - w.started_mono_ns) / 1'000'000;
  if (uptime_ms >= kStableAfterMs) w.consecutive_failures = 0;
  ExitFacts facts{w.spec.restart, !(s.exited && s.exit_status == 0), w.consecutive_failures,
                  w.spec.max_restarts};
  input(w, WorkerInput::kExit, facts);
}

// ---- the state machine's actions ----

void Supervisor::input(Worker& w, WorkerInput in, const ExitFacts& facts) {
  const WorkerState before = w.state;
  const Transition t = transition(w.state, in, facts);
  if (t.action == WorkerAction::kRejected) return;
  w.state = t.next;
  if (w.state == WorkerState::kFatal && in == WorkerInput::kExit)
    w.fatal_reason = "gave up after " + std::to_string(w.consecutive_failures) +
                     " restarts (max_restarts); last: " + describe(w.last_exit->status);
  if (w.state != before) emit_state(w);
  dirty_ = true;
  switch (t.action) {
    case WorkerAction::kSpawn:
      start_process(w);
      break;
    case WorkerAction::kScheduleRestart: {
      ++w.consecutive_failures;
      ++w.restarts;
      ++counters_.restarts;
      std::uniform_real_distribution<double> uniform(0.0, 1.0);
      const int64_t delay = restart_delay_ms(w.spec.restart_delay_ms, w.consecutive_failures, uniform(rng_));
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
      send_stop(w);
      break;
    case WorkerAction::kKill:
      kill_family(w.id, w.pid > 0 ? w.pid : -1);
      break;
    case WorkerAction::kCancelRestart:
      loop_.cancel_timer(w.restart_timer);
      w.restart_timer = 0;
      break;
    case WorkerAction::kNone:
    case WorkerAction::kRejected:
      break;
  }
  if (before != w.state && (w.state == WorkerState::kStopped))
    after_stopped(w);  // may erase w
}

void Supervisor::start_process(Worker& w) {
  auto path = resolve_command(w.spec.command[0], options_.workers_dir,
                              getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
  if (!path) {
    ++counters_.spawn_failures;
    fail_fatal(w, path.error().message());
    return;
  }
  auto env = w.spec.env;
  env[kWorkerIdEnv] = std::to_string(w.id);
  w.request = SpawnRequest{*path, w.spec.command, build_environment(environ, env), w.spec.cwd,
                           options_.worker_nofile, w.spec.capture_output};
  auto child = spawn(w.request);
  if (!child) {
    // fork or pipe failed: resources, not the program. Let the policy retry.
    ++counters_.spawn_failures;
    log::error("worker " + w.name + ": " + child.error().message());
    w.started_mono_ns = monotonic_ns();
    WaitRecord none;
    w.last_exit = none;
    input(w, WorkerInput::kExit, ExitFacts{w.spec.restart, true, w.consecutive_failures, w.spec.max_restarts});
    return;
  }
  ++counters_.spawns;
  w.pid = child->pid;
  w.started_mono_ns = monotonic_ns();
  w.started_at_ns = realtime_ns();
  pid_index_[w.pid] = w.id;
  pgid_owner_[w.pid] = w.id;
  for (auto [fd, stream] : {std::pair{&child->out, Stream::kStdout}, {&child->err, Stream::kStderr}}) {
    if (!*fd) continue;  // output discarded
    const int raw = fd->get();
    pipes_.emplace(raw, Pipe{w.id, stream, std::move(*fd), w.output});
    loop_.add(raw, [this, raw](uint32_t) { on_output(raw); });
  }
  if (!child->exec_error.empty()) {
    ++counters_.spawn_failures;
    fail_fatal(w, child->exec_error);  // the child exits 127; its status is recorded when reaped
    return;
  }
  // spawn() returns once execve has passed its point of no return: the
  // replacement is exec'd, and the event carries that moment.
  Event e;
  e.kind = EventKind::kSpawn;
  e.ts_ns = w.started_at_ns;
  e.worker_id = w.id;
  e.pid = w.pid;
  e.detail = w.request.path;
  emit(std::move(e));
  input(w, WorkerInput::kExecOk);
}

void Supervisor::fail_fatal(Worker& w, const std::string& reason) {
  log::error("worker " + w.name + " (id " + std::to_string(w.id) + "): " + reason);
  w.fatal_reason = reason;
  w.state = WorkerState::kFatal;
  emit_state(w);
  dirty_ = true;
  check_shutdown_done();
}

void Supervisor::on_output(int fd) {
  auto it = pipes_.find(fd);
  if (it == pipes_.end()) return;
  Pipe& p = it->second;
  char buf[65536];
  // Bounded per wake-up so one chatty worker cannot starve the loop; epoll
  // reports the rest on the next round.
  for (int round = 0; round < 16; ++round) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      p.log->append(p.stream, std::string_view(buf, static_cast<size_t>(n)), realtime_ns());
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    // EOF (every writer gone, grandchildren included) or an error: done with it.
    p.log->finish(p.stream, realtime_ns());
    loop_.remove(fd);
    pipes_.erase(it);
    return;
  }
}

void Supervisor::send_stop(Worker& w) {
  const int sig = w.spec.stop_signal;
  if (w.pid > 0) {
    kill(-w.pid, sig);
    // A stopped group cannot act on SIGTERM until it is continued.
    if (sig != SIGKILL && sig != SIGCONT) kill(-w.pid, SIGCONT);
  }
  signal_family(w.id, w.pid, w.pid, sig);
  const int64_t id = w.id;
  loop_.cancel_timer(w.kill_timer);
  w.kill_timer = loop_.add_timer(monotonic_ns() + w.spec.stop_timeout_ms * 1'000'000, [this, id] {
    Worker* x = find(id);
    if (!x) return;
    x->kill_timer = 0;
    if (x->state == WorkerState::kStopping) {
      input(*x, WorkerInput::kStopTimeout);
    }
  });
}

void Supervisor::kill_family(int64_t worker_id, pid_t pgid) {
  log::warning("worker id " + std::to_string(worker_id) + ": stop timeout passed, sending SIGKILL");
  // The group number stays ours while its leader is unreaped (pid > 0 here):
  // even as a zombie the leader holds the number, and only we reap it.
  if (pgid > 0) kill(-pgid, SIGKILL);
  signal_family(worker_id, pgid, pgid, SIGKILL);
}

void Supervisor::signal_family(int64_t worker_id, pid_t main_pid, pid_t pgid, int sig) {
  FamilyQuery q{getpid(), main_pid, pgid, worker_id,
                [this](pid_t pid) { return pid_index_.contains(pid); }};
  for (FamilyMember& m : family_pidfds(q)) {
    if (!pid_index_.contains(m.pid)) orphan_owner_[m.pid] = worker_id;
    syscall(SYS_pidfd_send_signal, m.pidfd.get(), sig, nullptr, 0);
    // A stopped process cannot act on SIGTERM until it is continued.
    if (sig != SIGKILL && sig != SIGCONT) syscall(SYS_pidfd_send_signal, m.pidfd.get(), SIGCONT, nullptr, 0);
  }
}

void Supervisor::after_stopped(Worker& w) {
  // Leftovers that outlived the main process get SIGKILL now, not at the
  // timeout: the stop signal already reached them.
  signal_family(w.id, -1, -1, SIGKILL);
  loop_.cancel_timer(w.kill_timer);
  w.kill_timer = 0;
  if (w.remove_after_stop) {
    remove_worker(w.id);
  } else if (w.restart_after_stop && !shutting_down_) {
    w.restart_after_stop = false;
    ++w.restarts;
    ++counters_.restarts;
    input(w, WorkerInput::kStart);
  }
}

// ---- commands from the API ----

void Supervisor::on_commands() {
  for (auto& p : commands_.take()) {
    if (auto* s = std::get_if<SampleNow>(&p.command)) {
      if (sampler_) {
        sampler_->request(s->all);
        sample_waiters_.emplace_back(*s, std::move(p.reply));
        continue;
      }
      p.reply.set_value(CommandReply{ReplyCode::kFailed, "no sampler", {}});
      continue;
    }
    CommandReply reply = handle(p.command);
    // The caller reads the snapshot next: publish before answering.
    publish_if_dirty();
    p.reply.set_value(std::move(reply));
  }
}

CommandReply Supervisor::handle(Command& c) {
  auto not_found = [](int64_t id) {
    return CommandReply{ReplyCode::kNotFound, "no worker with id " + std::to_string(id), {}};
  };
  if (auto* s = std::get_if<StartWorker>(&c)) {
    if (shutting_down_) return {ReplyCode::kConflict, "the daemon is shutting down", {}};
    if (workers_.size() >= options_.max_workers)
      return {ReplyCode::kLimit, "already " + std::to_string(workers_.size()) + " workers (the limit)", {}};
    std::string name = s->spec.name.empty() ? (s->program.empty() ? s->spec.command[0] : s->program) : s->spec.name;
    Worker& w = create_worker(s->spec, s->program, name, s->persistent, "");
    input(w, WorkerInput::kStart);
    persist(w);
    return {ReplyCode::kOk, "", view(w)};
  }
  int64_t id = std::visit([](auto& x) -> int64_t {
    if constexpr (requires { x.id; }) return x.id; else return 0;
  }, c);
  Worker* w = find(id);
  if (!w) return not_found(id);
  if (std::holds_alternative<StopWorker>(c)) {
    w->restart_after_stop = false;
    input(*w, WorkerInput::kStop);
    persist(*w);
  } else if (std::holds_alternative<RestartWorker>(c)) {
    if (shutting_down_) return {ReplyCode::kConflict, "the daemon is shutting down", {}};
    if (w->state == WorkerState::kRunning || w->state == WorkerState::kStarting ||
        w->state == WorkerState::kStopping) {
      w->restart_after_stop = true;
      input(*w, WorkerInput::kStop);
    } else {
      if (w->state == WorkerState::kBackoff) input(*w, WorkerInput::kStop);
      ++w->restarts;
      ++counters_.restarts;
      w->consecutive_failures = 0;
      input(*w, WorkerInput::kStart);
    }
    persist(*w);
  } else if (std::holds_alternative<RemoveWorker>(c)) {
    WorkerView v = view(*w);
    persist(*w, /*removed=*/true);
    if (w->state == WorkerState::kRunning || w->state == WorkerState::kStarting ||
        w->state == WorkerState::kStopping) {
      w->remove_after_stop = true;
      input(*w, WorkerInput::kStop);
    } else {
      if (w->state == WorkerState::kBackoff) input(*w, WorkerInput::kStop);
      remove_worker(id);
    }
    return {ReplyCode::kOk, "", v};
  } else if (auto* sig = std::get_if<SignalWorker>(&c)) {
    if (w->pid <= 0)
      return {ReplyCode::kConflict, "worker " + std::to_string(id) + " has no running process (state " +
                                        std::string(worker_state_name(w->state)) + ")", view(*w)};
    if (kill(-w->pid, sig->signal) != 0)
      return {ReplyCode::kFailed, "kill(-" + std::to_string(w->pid) + ", " + signal_name(sig->signal) +
                                      "): " + strerror(errno), view(*w)};
  }
  return {ReplyCode::kOk, "", view(*w)};
}

// ---- workers ----

Supervisor::Worker* Supervisor::find(int64_t id) {
  auto it = workers_.find(id);
  return it == workers_.end() ? nullptr : it->second.get();
}

Supervisor::Worker& Supervisor::create_worker(ProgramSpec spec, std::string program, std::string name,
                                              bool persistent, std::string config_program, int64_t id) {
  auto w = std::make_unique<Worker>();
  w->id = id > 0 ? id : ++last_worker_id_;
  last_worker_id_ = std::max(last_worker_id_, w->id);
  w->name = std::move(name);
  w->program = std::move(program);
  w->config_program = std::move(config_program);
  w->spec = std::move(spec);
  w->persistent = persistent;
  w->output = std::make_shared<OutputLog>(
      options_.logs_dir.empty() ? "" : options_.logs_dir + "/worker-" + std::to_string(w->id) + ".log");
  Worker& ref = *w;
  workers_.emplace(ref.id, std::move(w));
  dirty_ = true;
  return ref;
}

void Supervisor::remove_worker(int64_t id) {
  Worker* w = find(id);
  if (!w) return;
  loop_.cancel_timer(w->restart_timer);
  loop_.cancel_timer(w->kill_timer);
  // Pipes stay until EOF: late output of the last process still gets logged.
  workers_.erase(id);
  dirty_ = true;
  // Replacements waiting for this worker (a reload changed their program).
  start_after_.erase(id);
  std::vector<int64_t> ready;
  for (auto it = start_after_.begin(); it != start_after_.end();) {
    std::erase(it->second, id);
    if (it->second.empty()) {
      ready.push_back(it->first);
      it = start_after_.erase(it);
    } else {
      ++it;
    }
  }
  for (int64_t next : ready)
    if (Worker* n = find(next); n && !shutting_down_) input(*n, WorkerInput::kStart);
  check_shutdown_done();
}

void Supervisor::persist(const Worker& w, bool removed) {
  if (!w.persistent || !persist_) return;
  PersistedWorker p{w.id, w.name, w.program, w.spec,
                    w.state != WorkerState::kStopped && w.state != WorkerState::kStopping};
  persist_(p, removed);
}

void Supervisor::apply_config(const Config& config) {
  config_programs_ = config.programs;
  std::vector<int64_t> to_start;
  for (const ProgramSpec& p : config.programs) {
    for (int i = 0; i < p.instances; ++i) {
      std::string name = p.instances == 1 ? p.name : p.name + ":" + std::to_string(i);
      Worker& w = create_worker(p, p.name, name, false, p.name);
      if (p.autostart) to_start.push_back(w.id);
    }
  }
  start_once_running(std::move(to_start));
}

void Supervisor::restore(const std::vector<PersistedWorker>& workers) {
  std::vector<int64_t> to_start;
  for (const PersistedWorker& p : workers) {
    Worker& w = create_worker(p.spec, p.program, p.name, true, "", p.id);
    if (p.running) to_start.push_back(w.id);
  }
  start_once_running(std::move(to_start));
}

// The workers exist (and show in the API) at once; their processes start on
// the loop's first round, so a thousand forks never delay the daemon's
// announcement that it serves.
void Supervisor::start_once_running(std::vector<int64_t> ids) {
  if (ids.empty()) return;
  loop_.add_timer(monotonic_ns(), [this, ids = std::move(ids)] {
    for (int64_t id : ids)
      if (Worker* w = find(id); w && w->state == WorkerState::kStopped && !shutting_down_)
        input(*w, WorkerInput::kStart);
  });
}

void Supervisor::reload() {
  if (!reload_) return;
  auto config = reload_();
  if (!config) {
    log::error("reload refused, keeping the running config: " + config.error().message());
    if (on_reload_done_) on_reload_done_(false);
    return;
  }
  std::map<std::string, const ProgramSpec*> next;
  for (const auto& p : config->programs) next[p.name] = &p;
  std::map<std::string, const ProgramSpec*> prev;
  for (const auto& p : config_programs_) prev[p.name] = &p;
  int added = 0, removed = 0, changed = 0;
  // Removed or changed programs: their workers stop (and go away).
  std::vector<int64_t> doomed;
  for (auto& [id, w] : workers_) {
    if (w->config_program.empty()) continue;
    auto n = next.find(w->config_program);
    if (n == next.end() || !(*n->second == w->spec)) doomed.push_back(id);
  }
  std::map<std::string, std::vector<int64_t>> still_stopping;  // program -> its old workers
  for (int64_t id : doomed) {
    Worker* w = find(id);
    if (!w) continue;
    if (w->state == WorkerState::kRunning || w->state == WorkerState::kStarting ||
        w->state == WorkerState::kStopping) {
      w->remove_after_stop = true;
      still_stopping[w->config_program].push_back(id);
      input(*w, WorkerInput::kStop);
    } else {
      remove_worker(id);
    }
  }
  // Stopping may have finished at once (a worker already gone).
  for (auto& [name, ids] : still_stopping) std::erase_if(ids, [this](int64_t id) { return !find(id); });
  for (const auto& [name, p] : next) {
    auto old = prev.find(name);
    const bool same = old != prev.end() && *old->second == *p;
    if (same) continue;
    (old == prev.end() ? added : changed)++;
    for (int i = 0; i < p->instances; ++i) {
      std::string wname = p->instances == 1 ? p->name : p->name + ":" + std::to_string(i);
      Worker& w = create_worker(*p, p->name, wname, false, p->name);
      if (!p->autostart) continue;
      if (auto s = still_stopping.find(name); s != still_stopping.end() && !s->second.empty())
        start_after_[w.id] = s->second;  // starts in remove_worker once they are gone
      else
        input(w, WorkerInput::kStart);
    }
  }
  for (const auto& [name, p] : prev)
    if (!next.contains(name)) ++removed;
  config_programs_ = config->programs;
  dirty_ = true;
  log::notice("reloaded config: " + std::to_string(added) + " added, " + std::to_string(changed) +
              " changed, " + std::to_string(removed) + " removed");
  if (on_reload_done_) on_reload_done_(true);
}

void Supervisor::shutdown() {
  if (shutting_down_) return;
  shutting_down_ = true;
  if (on_stopping_) on_stopping_();
  log::notice("stopping " + std::to_string(workers_.size()) + " workers");
  std::vector<Worker*> all;
  for (auto& [id, w] : workers_) all.push_back(w.get());
  for (Worker* w : all) {
    w->restart_after_stop = false;
    input(*w, WorkerInput::kStop);
  }
  check_shutdown_done();
}

void Supervisor::check_shutdown_done() {
  if (!shutting_down_) return;
  for (auto& [id, w] : workers_)
    if (w->pid > 0) return;
  publish_if_dirty();
  if (on_shutdown_) on_shutdown_();
  loop_.stop();
}

std::vector<std::pair<pid_t, std::pair<int64_t, std::string>>> Supervisor::worker_pids() const {
  std::vector<std::pair<pid_t, std::pair<int64_t, std::string>>> out;
  for (const auto& [pid, id] : pid_index_) out.push_back({pid, {id, workers_.at(id)->name}});
  return out;
}

// ---- events and snapshots ----

void Supervisor::emit(Event e) {
  e.id = ++last_event_id_;
  if (e.ts_ns == 0) e.ts_ns = e.wait ? e.wait->ts_ns : realtime_ns();
  undelivered_.push_back(std::move(e));
  // A long round (a reload starting thousands, a storm reaped at once) hands
  // its events over as it goes: bounded memory, and the stream and the store
  // keep up with it.
  if (undelivered_.size() >= kDeliverAt) deliver_events();
}

void Supervisor::deliver_events() {
  for (const Event& e : undelivered_)
    for (EventSink* sink : sinks_) sink->publish(e);
  undelivered_.clear();
}

void Supervisor::emit_state(const Worker& w) {
  Event e;
  e.kind = EventKind::kState;
  e.worker_id = w.id;
  e.pid = w.pid > 0 ? w.pid : 0;
  e.state = std::string(worker_state_name(w.state));
  if (w.state == WorkerState::kFatal) e.detail = w.fatal_reason;
  emit(std::move(e));
}

WorkerView Supervisor::view(const Worker& w) const {
  WorkerView v;
  v.id = w.id;
  v.name = w.name;
  v.program = w.program;
  v.state = std::string(worker_state_name(w.state));
  v.pid = w.pid;
  v.restarts = w.restarts;
  v.started_at_ns = w.started_at_ns;
  v.last_exit = w.last_exit;
  v.recent_exits.assign(w.recent_exits.begin(), w.recent_exits.end());
  v.spec = w.spec;
  v.fatal_reason = w.fatal_reason;
  v.persistent = w.persistent;
  v.output = w.output;
  return v;
}

std::vector<ProgramSpec> Supervisor::catalogue() const {
  std::vector<ProgramSpec> out = config_programs_;
  for (const std::string& name : builtin_programs()) {
    ProgramSpec p;
    p.name = name;
    p.command = {name};
    p.builtin = true;
    p.restart = RestartPolicy::kNo;
    out.push_back(std::move(p));
  }
  return out;
}

void Supervisor::publish_if_dirty() {
  // The round's events go out together, after its work: a sink's first event
  // wakes a thread (the SQLite writer, SSE clients), and woken in the middle
  // of a restart that thread takes the core the replacement child needs for
  // its exec (measured: reap -> exec'd 0.45 ms with a wake per event, 0.21 ms
  // with one per round; bench/RESULTS.md).
  deliver_events();
  if (sampler_ && sampler_->take_new_sample()) dirty_ = true;
  if (!dirty_) return;
  dirty_ = false;
  auto s = std::make_shared<Snapshot>();
  s->seq = ++seq_;
  s->published_ns = monotonic_ns();
  s->workers.reserve(workers_.size());
  for (const auto& [id, w] : workers_) s->workers.push_back(view(*w));
  s->catalogue = catalogue();
  if (sampler_) s->tree = sampler_->latest();
  if (on_publish_) on_publish_(*s);
  snapshots_.publish(std::move(s));
  // Sample requests are answered once a snapshot holds a sample that fits.
  if (!sample_waiters_.empty() && sampler_) {
    auto tree = sampler_->latest();
    auto it = std::remove_if(sample_waiters_.begin(), sample_waiters_.end(), [&](auto& wt) {
      if (!tree || (wt.first.all && !tree->all_scope)) return false;
      wt.second.set_value(CommandReply{});
      return true;
    });
    sample_waiters_.erase(it, sample_waiters_.end());
  }
}

}  // namespace forkwatch
