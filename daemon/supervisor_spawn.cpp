// Supervisor: starting a worker's process and reading its output.
#include "supervisor_worker.h"

#include <signal.h>
#include <sys/syscall.h>

#include <algorithm>

#include "family.h"
#include "parse_number.h"
#include "sampler.h"

extern char** environ;

namespace forkwatch {

void Supervisor::start_process(Worker& w) {
  w.start_failed = false;
  w.paused = false;
  w.following_pid_file = false;
  w.memory_samples_over = 0;
  if (!w.spec.pid_file.empty()) ::unlink(w.spec.pid_file.c_str());  // a stale one must not be followed
  w.stop = StopFacts{};
  if (!w.start_limit.admit(monotonic_ns())) {
    // Only an automatic restart can be refused (a person's start clears the
    // limit); it was counted when scheduled but never happened.
    if (w.restarts > 0) --w.restarts;
    fail_fatal(w, WorkerInput::kStartRefused, StartLimit::refusal());
    return;
  }
  auto path = resolve_command(w.spec.command[0], options_.workers_dir,
                              getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
  if (!path) {
    ++counters_.spawn_failures;
    fail_fatal(w, WorkerInput::kStartRefused, path.error().message());
    return;
  }
  // Names are resolved now, not at load only: the user database may have
  // changed since (the plan is built here, in the parent, before the clone).
  auto plan = plan_identity(w.spec, "worker " + w.name, self_);
  if (!plan) {
    ++counters_.spawn_failures;
    fail_fatal(w, WorkerInput::kStartRefused, plan.error().message());
    return;
  }
  // HOME, USER, LOGNAME, SHELL of `user`, then env_file, then env: the
  // config's own variables win.
  auto env = std::move(plan->env);
  for (const auto& [k, v] : w.spec.env) env[k] = v;
  env[kWorkerIdEnv] = std::to_string(w.id);
  // Closed once spawned: EOF on the read end must mean the worker's side
  // has closed it.
  Fd ready_write = prepare_readiness(w, env);
  w.request = SpawnRequest{*path, w.spec.command, build_environment(environ, env), w.spec.cwd,
                           options_.worker_nofile, w.spec.capture_output, std::move(*plan)};
  if (ready_write) {
    w.request.pass_fd = ready_write.get();
    w.request.pass_fd_as = w.spec.ready.fd;
  }
  w.request.memory_max = w.spec.memory_max;
  w.request.memory_high = w.spec.memory_high;
  w.request.pids_max = w.spec.pids_max;
  w.request.cpu_max = w.spec.cpu_max;
  kill_leftovers_now(w);
  auto child = host_->spawn(w.id, w.request);
  w.request.pass_fd = -1;  // borrowed for the spawn only
  ready_write.reset();
  if (!child) {
    // fork or pipe failed: resources, not the program. No process ran, so
    // there is no exit to record; the policy may retry.
    spawn_failed(w, "spawn failed: " + child.error().message());
    return;
  }
  ++counters_.spawns;
  w.oom_kills_at_start = host_->oom_kills(w.id).value_or(0);
  w.pid = w.group = child->pid;
  w.started_mono_ns = monotonic_ns();
  w.started_at_ns = realtime_ns();
  pid_index_[w.pid] = w.id;
  if (on_spawned_) on_spawned_(w.id, w.pid);
  if (w.spec.memory_restart > 0 && sampler_) sampler_->wake();
  pgid_owner_[w.pid] = w.id;
  live_pids_changed_ = true;
  std::string watch_error;
  for (auto [fd, stream] : {std::pair{&child->out, Stream::kStdout}, {&child->err, Stream::kStderr}}) {
    if (!*fd) continue;  // output discarded
    const int raw = fd->get();
    if (auto st = loop_.add(raw, [this, raw](uint32_t) { on_output(raw); }); !st) {
      watch_error = st.error().message();
      continue;  // the read end closes with `child`: the worker would block on a full pipe
    }
    pipes_.emplace(raw, Pipe{w.id, stream, std::move(*fd), w.output});
  }
  if (!watch_error.empty() && child->exec_error.empty()) {
    // A worker whose output nobody reads would block once the pipe fills:
    // it does not run. Its exit (SIGKILL) is recorded when reaped.
    ++counters_.spawn_failures;
    host_->signal_group(w.pid, SIGKILL);
    w.fatal_reason = "cannot watch its output: " + watch_error;
    log::error("worker " + w.name + " (id " + std::to_string(w.id) + "): " + w.fatal_reason);
    w.start_failed = true;
    return;
  }
  if (!child->exec_error.empty()) {
    ++counters_.spawn_failures;
    fail_fatal(w, WorkerInput::kExecFailed, child->exec_error);  // the child exits 127; its status is recorded when reaped
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
  w.fatal_reason.clear();
  input(w, WorkerInput::kExecOk);
}

namespace {
// The pid in a pid file ("1234\n"), or 0.
pid_t read_pid_file(const std::string& path) {
  std::string text = read_small(path);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  auto v = parse_decimal<int64_t>(text);
  return v && *v > 1 && *v < (1 << 22) ? static_cast<pid_t>(*v) : 0;
}
// proc(5) field 4 of /proc/PID/stat; 0 for a zombie or a process gone.
pid_t parent_of(pid_t pid) {
  const auto st = read_proc_stat(pid);
  return st && st->state != 'Z' ? st->ppid : 0;
}
}  // namespace

bool Supervisor::is_worker_process(const Worker& w, pid_t pid) const {
  if (pid <= 1 || pid == getpid()) return false;
  if (auto it = pid_index_.find(pid); it != pid_index_.end()) return it->second == w.id;  // someone's main
  // Only a process of this worker may become its main process: a stop
  // signal must never reach a stranger. One in its cgroup; or (process
  // groups) one in the live main process's tree, as for notify senders; or,
  // once the main process is gone, one the daemon adopted.
  if (!host_->place(w.id).empty()) {
    const std::vector<pid_t> members = host_->members(w.id);
    return std::find(members.begin(), members.end(), pid) != members.end();
  }
  return w.pid > 0 ? sender_in_tree(pid, w.pid, read_proc_stat) : parent_of(pid) == getpid();
}

void Supervisor::follow_main_pid(Worker& w, pid_t pid, const std::string& source) {
  // The one it replaces is from now on just one of the worker's processes:
  // its exit is recorded as such (adopted), not as the worker's.
  if (w.pid > 0) pid_index_.erase(w.pid);
  w.pid = pid;
  pid_index_[pid] = w.id;
  if (pid != w.group) pgid_owner_.erase(pid);  // the group it led stays the worker's
  live_pids_changed_ = true;
  dirty_ = true;
  Event e;
  e.kind = EventKind::kSpawn;
  e.worker_id = w.id;
  e.pid = pid;
  e.detail = "main pid " + std::to_string(pid) + " from " + source;
  emit(std::move(e));
  watch_foreign_main(w);
}

void Supervisor::watch_foreign_main(Worker& w) {
  if (w.main_pidfd) loop_.remove(w.main_pidfd.get());
  w.main_pidfd.reset();
  const auto st = read_proc_stat(w.pid);
  if (!st || st->ppid == getpid()) return;  // the daemon's child: the reaper sees its exit
  Fd fd(static_cast<int>(syscall(SYS_pidfd_open, w.pid, 0)));
  if (!fd) return;
  const int64_t id = w.id;
  const pid_t pid = w.pid, parent = st->ppid;
  const uint64_t started = st->starttime;
  if (!loop_.add(fd.get(), [this, id, pid, parent, started](uint32_t) { on_foreign_main_exit(id, pid, parent, started); }))
    return;
  w.main_pidfd = std::move(fd);
}

void Supervisor::on_foreign_main_exit(int64_t id, pid_t pid, pid_t parent_then, uint64_t started) {
  Worker* w = find(id);
  if (!w || !w->main_pidfd) return;
  loop_.remove(w->main_pidfd.get());
  w->main_pidfd.reset();
  if (w->pid != pid) return;  // no longer its main process
  // Who gets its status: its parent as the zombie still shows it, or, once
  // reaped, the parent it had. (A process of the worker is only ever
  // re-parented to the daemon, the subreaper, whose reaper moves w->pid.)
  const auto st = read_proc_stat(pid);
  const pid_t parent = st && st->starttime == started ? st->ppid : parent_then;
  if (parent == getpid()) return;  // the reaper records it
  // That parent is a process of the worker too (under process groups by the
  // reason above; in a cgroup, if it is in it): it is followed in its place,
  // and its own exit is the worker's.
  const bool ours = parent > 1 && !pid_index_.contains(parent) && ::kill(parent, 0) == 0 &&
                    (host_->place(id).empty() || is_worker_process(*w, parent));
  if (!ours) {
    log::error("worker " + w->name + " (id " + std::to_string(id) + "): main pid " + std::to_string(pid) +
               " exited and pid " + std::to_string(parent) + " took its status; nothing of the worker is left to follow");
    return;
  }
  log::notice("worker " + w->name + " (id " + std::to_string(id) + "): main pid " + std::to_string(pid) +
              " exited, reaped by its parent " + std::to_string(parent) + ", which is followed now");
  follow_main_pid(*w, parent, "the parent that reaped main pid " + std::to_string(pid));
}

void Supervisor::follow_pid_file(int64_t id, int64_t deadline_ns, ExitFacts facts) {
  Worker* w = find(id);
  if (!w) return;
  w->pid_file_timer = 0;
  if (w->state != WorkerState::kRunning && w->state != WorkerState::kStarting) return;  // stopped meanwhile
  const pid_t pid = read_pid_file(w->spec.pid_file);
  if (pid > 0 && is_worker_process(*w, pid)) {
    follow_main_pid(*w, pid, "pid_file " + w->spec.pid_file);
    return;
  }
  if (monotonic_ns() < deadline_ns) {
    w->pid_file_timer = loop_.add_timer(monotonic_ns() + 20'000'000,
                                        [this, id, deadline_ns, facts] { follow_pid_file(id, deadline_ns, facts); });
    return;
  }
  w->fatal_reason = pid > 0 ? "pid_file " + w->spec.pid_file + " names pid " + std::to_string(pid) +
                                  ", which is not a process of this worker"
                            : "pid_file " + w->spec.pid_file + " was not written within " +
                                  std::to_string(kPidFileTimeoutMs / 1000) + " s of its first process exiting 0";
  log::error("worker " + w->name + " (id " + std::to_string(id) + "): start failed: " + w->fatal_reason);
  w->start_failed = true;
  ++counters_.spawn_failures;
  input(*w, WorkerInput::kExit, facts);
}

void Supervisor::spawn_failed(Worker& w, const std::string& reason) {
  ++counters_.spawn_failures;
  log::error("worker " + w.name + " (id " + std::to_string(w.id) + "): " + reason);
  w.fatal_reason = reason;
  w.start_failed = true;
  w.started_mono_ns = monotonic_ns();
  input(w, WorkerInput::kSpawnFailed,
        ExitFacts{w.spec.restart, true, w.consecutive_failures, w.spec.max_restarts});
  check_shutdown_done();
}

void Supervisor::fail_fatal(Worker& w, WorkerInput why, const std::string& reason) {
  log::error("worker " + w.name + " (id " + std::to_string(w.id) + "): " + reason);
  w.fatal_reason = reason;
  input(w, why);
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
      if (Worker* w = find(p.worker_id); w && w->ready_pattern && w->state == WorkerState::kStarting)
        match_ready_log(*w, std::string_view(buf, static_cast<size_t>(n)));
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

}  // namespace forkwatch
