// Supervisor: readiness (sd_notify sockets, the start timeout, the watchdog)
// and order (depends_on: waiting, starting when met, stopping in reverse).
// What each input leads to is the state table's (worker_state.h); this file
// turns sockets and timers into those inputs.
#include "supervisor_worker.h"

#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <unordered_set>

#include "family.h"
#include "notify_message.h"
#include "untrusted_text.h"

extern char** environ;

namespace forkwatch {

Fd Supervisor::prepare_readiness(Worker& w, std::map<std::string, std::string>& env) {
  w.ready = false;
  w.ready_at_ns = 0;
  w.healthy.reset();
  w.status_text.clear();
  w.watchdog_usec = w.spec.watchdog_ms * 1000;
  w.log_carry.clear();
  if (w.spec.ready.kind == ProbeKind::kLog && !w.ready_pattern) {
    try {
      w.ready_pattern = std::make_shared<const std::regex>(w.spec.ready.pattern, std::regex::ECMAScript);
    } catch (const std::regex_error&) {
      // Checked at load; a worker restored from an older store may still hold one.
      log::error("worker " + w.name + ": ready.log is not a valid regular expression");
    }
  }
  if (w.spec.ready.kind == ProbeKind::kFd) {
    // A fresh pipe for each run: a writer left from an earlier run cannot
    // make this one ready.
    close_ready_fd(w);
    w.ready_fd_text.clear();
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
      // The worker still starts; it will never be ready, and start_timeout says so.
      log::error("worker " + w.name + ": no pipe for ready fd " + std::to_string(w.spec.ready.fd) + ": " +
                 std::strerror(errno));
      return {};
    }
    Fd read_end(p[0]), write_end(p[1]);
    fcntl(read_end.get(), F_SETFL, O_NONBLOCK);
    const int64_t id = w.id;
    if (auto st = loop_.add(read_end.get(), [this, id](uint32_t) { on_ready_fd(id); }); !st) {
      log::error("worker " + w.name + ": cannot watch its ready fd: " + st.error().message());
      return {};
    }
    w.ready_fd = std::move(read_end);
    return write_end;
  }
  if (w.spec.ready.kind != ProbeKind::kNotify) return {};
  if (!w.notify) {
    auto sock = NotifySocket::open(w.id);
    if (!sock) {
      // The worker still starts; it will never be ready, and start_timeout says so.
      log::error("worker " + w.name + ": no notify socket: " + sock.error().message());
      return {};
    }
    const int fd = sock->fd();
    const int64_t id = w.id;
    if (auto st = loop_.add(fd, [this, id](uint32_t) { on_notify(id); }); !st) {
      log::error("worker " + w.name + ": cannot watch its notify socket: " + st.error().message());
      return {};
    }
    w.notify = std::move(*sock);
  }
  env["NOTIFY_SOCKET"] = w.notify->address();
  if (w.watchdog_usec > 0) env["WATCHDOG_USEC"] = std::to_string(w.watchdog_usec);
  return {};
}

void Supervisor::close_ready_fd(Worker& w) {
  if (!w.ready_fd) return;
  loop_.remove(w.ready_fd.get());
  w.ready_fd.reset();
}

void Supervisor::on_ready_fd(int64_t worker_id) {
  Worker* w = find(worker_id);
  if (!w || !w->ready_fd) return;
  const std::string which = "fd " + std::to_string(w->spec.ready.fd);
  char buf[512];
  // Bounded per wake-up, like output pipes: epoll reports the rest next round.
  for (int round = 0; round < 16; ++round) {
    const ssize_t n = ::read(w->ready_fd.get(), buf, sizeof buf);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    const std::string_view got = n > 0 ? std::string_view(buf, static_cast<size_t>(n)) : std::string_view{};
    const size_t nl = got.find('\n');
    if (n > 0 && nl == std::string_view::npos) {
      // Text before the newline means nothing (s6); a little is kept for the log.
      w->ready_fd_text.append(got.substr(0, kMaxReadyFdText - std::min(kMaxReadyFdText, w->ready_fd_text.size())));
      continue;
    }
    // A newline, EOF or an error: either way this pipe has said all it will.
    close_ready_fd(*w);
    // Only this run's process can write here (a fresh pipe each run); once
    // it is gone, or stopping, what the pipe said no longer matters.
    if (w->pid <= 0 || w->state != WorkerState::kStarting) return;
    w->probe_at_ns = realtime_ns();
    dirty_ = true;
    if (n > 0) {
      w->probe_detail = "newline on " + which;
      input(*w, WorkerInput::kReady);
      return;
    }
    w->probe_detail = which + " closed without a newline";
    log::warning("worker " + w->name + ": " + w->probe_detail +
                 (w->ready_fd_text.empty() ? "" : " (it wrote \"" + escape_control(w->ready_fd_text) + "\")") +
                 "; not ready, start_timeout_ms decides");
    return;
  }
}

void Supervisor::close_notify(Worker& w) {
  if (!w.notify) return;
  loop_.remove(w.notify->fd());
  w.notify.reset();
}

void Supervisor::on_notify(int64_t worker_id) {
  Worker* w = find(worker_id);
  if (!w || !w->notify) return;
  // Parsed first, acted on after the drain: an input may change the worker.
  std::vector<NotifyMessage> accepted;
  const auto counts = w->notify->drain([&](const NotifySocket::Datagram& d) {
    if (!sender_in_tree(d.sender, w->pid, read_proc_stat)) {
      ++counters_.notify_dropped;
      return;
    }
    accepted.push_back(parse_notify_message(d.text));
  });
  counters_.notify_datagrams += counts.read;
  counters_.notify_oversized += counts.oversized;
  counters_.notify_dropped += counts.oversized;
  for (const NotifyMessage& m : accepted) {
    w = find(worker_id);
    if (!w || w->pid <= 0) return;
    // MAINPID= first, as systemd reads it: the rest of the datagram may be
    // about the new main process (READY=1 from it).
    if (m.main_pid && *m.main_pid != w->pid) {
      if (is_worker_process(*w, *m.main_pid)) {
        follow_main_pid(*w, *m.main_pid, "MAINPID=");
      } else {
        ++counters_.notify_mainpid_refused;
        log::warning("worker " + w->name + ": MAINPID=" + std::to_string(*m.main_pid) +
                     " refused: not a process of this worker");
      }
    }
    // ERRNO=: no field of the worker holds it (CONTRACT.md); the log does.
    if (m.errno_value)
      log::notice("worker " + w->name + ": ERRNO=" + std::to_string(*m.errno_value) + " (" +
                  std::strerror(*m.errno_value) + ")");
    if (m.status && *m.status != w->status_text) {
      w->status_text = *m.status;
      dirty_ = true;
    }
    if (m.watchdog_usec) w->watchdog_usec = static_cast<int64_t>(*m.watchdog_usec);
    if (m.extend_timeout_usec && w->state == WorkerState::kStarting && w->start_timer) {
      // EXTEND_TIMEOUT_USEC: the start may take that much longer from now,
      // never less than what was left (sd_notify(3)).
      loop_.cancel_timer(w->start_timer);
      w->start_timer = 0;
      const int64_t id = w->id;
      w->start_timer = loop_.add_timer(monotonic_ns() + static_cast<int64_t>(*m.extend_timeout_usec) * 1000, [this, id] {
        if (Worker* x = find(id)) {
          x->start_timer = 0;
          input(*x, WorkerInput::kStartTimeout);
        }
      });
    }
    if (m.reloading || m.stopping) {
      // Not ready while reloading (until READY=1 again) or on its way out.
      if (w->ready) dependencies_dirty_ = dirty_ = true;
      w->ready = false;
    }
    if (m.ready && !m.reloading) input(*w, WorkerInput::kReady);
    if (m.watchdog_trigger) {
      input(*w, WorkerInput::kWatchdogTimeout);
    } else if (m.watchdog_ping || (m.watchdog_usec && w->watchdog_timer)) {
      if (w->ready) arm_watchdog(*w);
    }
  }
}

void Supervisor::await_ready(Worker& w) {
  const ProbeKind k = w.spec.ready.kind;
  if (k == ProbeKind::kTcp || k == ProbeKind::kHttp || k == ProbeKind::kExec) schedule_probe(w, 0);
  if (w.spec.start_timeout_ms <= 0) return;
  const int64_t id = w.id;
  loop_.cancel_timer(w.start_timer);
  w.start_timer = loop_.add_timer(monotonic_ns() + w.spec.start_timeout_ms * 1'000'000, [this, id] {
    if (Worker* x = find(id)) {
      x->start_timer = 0;
      input(*x, WorkerInput::kStartTimeout);
    }
  });
}

void Supervisor::mark_ready(Worker& w) {
  loop_.cancel_timer(w.start_timer);
  w.start_timer = 0;
  if (!w.ready) {
    w.ready = true;
    w.ready_at_ns = realtime_ns();
    w.ready_mono_ns = monotonic_ns();
    dependencies_dirty_ = true;
  }
  arm_watchdog(w);
  const ProbeKind health = w.spec.health.probe.kind;
  if (health != ProbeKind::kNone && !w.probe_timer) {
    w.health_failures = 0;
    schedule_probe(w, w.spec.health.interval_ms);
  }
}

void Supervisor::schedule_probe(Worker& w, int64_t delay_ms) {
  loop_.cancel_timer(w.probe_timer);
  const int64_t id = w.id;
  w.probe_timer = loop_.add_timer(monotonic_ns() + delay_ms * 1'000'000, [this, id] {
    Worker* x = find(id);
    if (!x) return;
    x->probe_timer = 0;
    const bool health = x->state == WorkerState::kRunning && x->ready;
    if (!health && x->state != WorkerState::kStarting) return;
    const ProbeSpec& spec = health ? x->spec.health.probe : x->spec.ready;
    // A readiness try may take up to a second; a health probe its timeout_ms.
    const int64_t timeout = health ? x->spec.health.timeout_ms : 1000;
    if (spec.kind == ProbeKind::kExec) return start_exec_probe(*x, spec, timeout);
    probes_.start(id, spec, timeout, [this, id](bool passed, std::string detail) {
      on_probe_result(id, passed, std::move(detail));
    });
  });
}

void Supervisor::match_ready_log(Worker& w, std::string_view chunk) {
  // Whole lines only: a line split across reads is carried (capped, so a
  // worker that never ends a line cannot grow it).
  constexpr size_t kMaxCarry = 4096;
  while (!chunk.empty()) {
    const size_t nl = chunk.find('\n');
    const std::string_view part = chunk.substr(0, nl);
    if (w.log_carry.size() < kMaxCarry) w.log_carry.append(part.substr(0, kMaxCarry - w.log_carry.size()));
    if (nl == std::string_view::npos) return;
    chunk.remove_prefix(nl + 1);
    const bool hit = std::regex_search(w.log_carry, *w.ready_pattern);
    w.log_carry.clear();
    if (hit) {
      w.probe_at_ns = realtime_ns();
      w.probe_detail = "log line matched";
      input(w, WorkerInput::kReady);
      return;
    }
  }
}

void Supervisor::start_exec_probe(Worker& w, const ProbeSpec& spec, int64_t timeout_ms) {
  auto path = resolve_command(spec.argv[0], options_.workers_dir, getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
  if (!path) return on_probe_result(w.id, false, path.error().message());
  auto env = w.spec.env;
  env[kWorkerIdEnv] = std::to_string(w.id);
  SpawnRequest req{*path, spec.argv, build_environment(environ, env), w.spec.cwd, -1, /*capture_output=*/false};
  auto child = forkwatch::spawn(req);
  if (!child) return on_probe_result(w.id, false, "spawn failed: " + child.error().message());
  if (!child->exec_error.empty()) {
    // It exits 127 and is reaped; its status gives the result.
    log::warning("worker " + w.name + ": exec probe: " + child->exec_error);
  }
  const pid_t pid = child->pid;
  ProbeChild pc{w.id, w.started_mono_ns, timeout_ms};
  pc.deadline = loop_.add_timer(monotonic_ns() + timeout_ms * 1'000'000, [this, pid] {
    auto it = probe_children_.find(pid);
    if (it == probe_children_.end()) return;
    it->second.deadline = 0;
    it->second.timed_out = true;
    ::kill(-pid, SIGKILL);  // it leads its own group; the reap reports it
  });
  probe_children_[pid] = pc;
}

bool Supervisor::on_probe_reaped(pid_t pid, const WaitStatus& s) {
  auto it = probe_children_.find(pid);
  if (it == probe_children_.end()) return false;
  if (!s.terminated()) return true;
  const ProbeChild pc = it->second;
  probe_children_.erase(it);
  loop_.cancel_timer(pc.deadline);
  Worker* w = find(pc.worker_id);
  if (!w || w->started_mono_ns != pc.run_started_ns) return true;  // for a run that is over
  const bool passed = s.exited && s.exit_status == 0;
  on_probe_result(pc.worker_id, passed,
                  pc.timed_out ? "timed out after " + std::to_string(pc.timeout_ms) + " ms" : describe(s));
  return true;
}

void Supervisor::on_probe_result(int64_t worker_id, bool passed, std::string detail) {
  Worker* w = find(worker_id);
  if (!w || w->pid <= 0) return;
  w->probe_at_ns = realtime_ns();
  if (detail != w->probe_detail) dirty_ = true;
  w->probe_detail = std::move(detail);
  if (w->state == WorkerState::kStarting) {
    if (passed) input(*w, WorkerInput::kReady);
    else schedule_probe(*w, kReadyProbeIntervalMs);
    return;
  }
  if (w->state != WorkerState::kRunning) return;
  const HealthSpec& h = w->spec.health;
  if (passed) {
    w->health_failures = 0;
    if (w->healthy != true) dependencies_dirty_ = dirty_ = true;
    w->healthy = true;
  } else if (monotonic_ns() - w->ready_mono_ns >= h.start_period_ms * 1'000'000) {
    // Docker's start period: failures before it ends do not count.
    ++w->health_failures;
  }
  if (w->health_failures >= h.failures) {
    w->healthy = false;
    dirty_ = true;
    log::warning("worker " + w->name + ": unhealthy after " + std::to_string(w->health_failures) +
                 " failed health checks (last: " + escape_control(w->probe_detail) + "), restarting");
    input(*w, WorkerInput::kHealthFailed);
    return;
  }
  schedule_probe(*w, h.interval_ms);
}

void Supervisor::arm_watchdog(Worker& w) {
  loop_.cancel_timer(w.watchdog_timer);
  w.watchdog_timer = 0;
  if (w.watchdog_usec <= 0 || w.spec.ready.kind != ProbeKind::kNotify) return;
  const int64_t id = w.id;
  w.watchdog_timer = loop_.add_timer(monotonic_ns() + w.watchdog_usec * 1000, [this, id] {
    if (Worker* x = find(id)) {
      x->watchdog_timer = 0;
      log::warning("worker " + x->name + ": no WATCHDOG=1 within " + std::to_string(x->watchdog_usec / 1000) + " ms");
      input(*x, WorkerInput::kWatchdogTimeout);
    }
  });
}

void Supervisor::end_readiness(Worker& w) {
  loop_.cancel_timer(w.start_timer);
  loop_.cancel_timer(w.watchdog_timer);
  loop_.cancel_timer(w.probe_timer);
  probes_.cancel(w.id);
  w.start_timer = w.watchdog_timer = w.probe_timer = 0;
  w.health_failures = 0;
  w.healthy.reset();
  if (w.ready) dependencies_dirty_ = true;
  w.ready = false;
}

namespace {

std::string_view condition_words(DependencyCondition c) {
  switch (c) {
    case DependencyCondition::kStarted: return "to be started";
    case DependencyCondition::kReady: return "to be ready";
    case DependencyCondition::kHealthy: return "to be healthy";
    case DependencyCondition::kCompleted: return "to complete";
  }
  return "";
}

}  // namespace

std::string Supervisor::unmet_dependency(const Worker& w) const {
  if (w.config_program.empty()) return "";
  for (const Dependency& d : w.spec.depends_on) {
    bool any = false, met = true;
    for (const auto& [id, x] : workers_) {
      // One that is going away (removed, or held to stop after its own
      // dependents) meets nothing: a dependent restarting meanwhile waits.
      if (x->config_program != d.program || x->remove_after_stop || is_held(id)) continue;
      any = true;
      const bool live = x->pid > 0 && (x->state == WorkerState::kStarting || x->state == WorkerState::kRunning);
      const bool completed = x->state == WorkerState::kExited && x->last_exit && x->last_exit->status.exited &&
                             x->last_exit->status.exit_status == 0;
      switch (d.condition) {
        case DependencyCondition::kStarted: met = met && (live || completed); break;
        case DependencyCondition::kReady: met = met && live && x->ready && x->state == WorkerState::kRunning; break;
        case DependencyCondition::kHealthy:
          met = met && live && x->ready && x->state == WorkerState::kRunning &&
                (x->spec.health.probe.kind == ProbeKind::kNone || x->healthy == true);
          break;
        case DependencyCondition::kCompleted: met = met && completed; break;
      }
    }
    if (!any || !met) return "waiting for " + d.program + " " + std::string(condition_words(d.condition));
  }
  return "";
}

void Supervisor::start_met_dependents() {
  // Each start may meet another's condition (`started`): go round until
  // nothing changes; every pass starts at least one worker or ends.
  for (size_t pass = 0; pass <= workers_.size(); ++pass) {
    dependencies_dirty_ = false;
    std::vector<int64_t> met;
    for (auto& [id, w] : workers_) {
      if (w->state != WorkerState::kWaiting) continue;
      std::string why = unmet_dependency(*w);
      if (why.empty()) {
        met.push_back(id);
      } else if (why != w->waiting_for) {
        w->waiting_for = std::move(why);
        emit_state(*w);
        dirty_ = true;
      }
    }
    if (shutting_down_) return;
    for (int64_t id : met)
      if (Worker* w = find(id); w && w->state == WorkerState::kWaiting) input(*w, WorkerInput::kDependenciesMet);
    if (met.empty() && !dependencies_dirty_) return;
  }
}

void Supervisor::restart_part_of(const std::string& program) {
  if (shutting_down_) return;
  std::vector<int64_t> dependents;
  for (auto& [id, w] : workers_)
    for (const Dependency& d : w->spec.depends_on)
      if (d.part_of && d.program == program && !w->config_program.empty()) dependents.push_back(id);
  for (int64_t id : dependents) {
    Worker* w = find(id);
    if (!w) continue;
    if (w->state == WorkerState::kRunning || w->state == WorkerState::kStarting) {
      log::notice("worker " + w->name + ": restarting with " + program + " (part_of)");
      // Its starts follow the dependency's, which its own start limit paces.
      w->start_limit.reset();
      w->restart_after_stop = true;
      input(*w, WorkerInput::kStop);
    } else if (w->state == WorkerState::kBackoff) {
      // Its restart waits for the dependency again.
      input(*w, WorkerInput::kStop);
      if (Worker* x = find(id)) input(*x, WorkerInput::kStart);
    }
  }
}

void Supervisor::stop_after_part_of(Worker& w) {
  const int64_t id = w.id;
  const std::string program = w.config_program;
  if (!program.empty() && w.pid > 0 && !is_held(id)) {
    restart_part_of(program);
    for (const auto& [xid, x] : workers_)
      if (x->state == WorkerState::kStopping && x->pid > 0)
        for (const Dependency& d : x->spec.depends_on)
          if (d.part_of && d.program == program) {
            held_for_dependents_.push_back(id);
            stop_in_reverse();  // its dependents may have ended already
            return;
          }
  }
  input(w, WorkerInput::kStop);
}

bool Supervisor::is_held(int64_t id) const {
  return std::find(held_for_dependents_.begin(), held_for_dependents_.end(), id) != held_for_dependents_.end();
}

void Supervisor::stop_in_reverse() {
  // input() below may come back here through check_shutdown_done().
  if (stopping_in_reverse_) return;
  stopping_in_reverse_ = true;
  for (bool progress = true; progress && !held_for_dependents_.empty();) {
    progress = false;
    std::vector<int64_t> now;
    const std::unordered_set<int64_t> held(held_for_dependents_.begin(), held_for_dependents_.end());
    // Programs that a live worker going away too (held or stopping) depends
    // on, from the workers' own specs: on a reload the old workers' edges
    // hold while they stop, and a reload that changes db but keeps api
    // stops the old db at once.
    std::unordered_set<std::string> needed;
    for (const auto& [xid, x] : workers_)
      if (x->pid > 0 && !x->spec.depends_on.empty() && (x->state == WorkerState::kStopping || held.contains(xid)))
        for (const Dependency& d : x->spec.depends_on)
          if (d.program != x->config_program) needed.insert(d.program);
    for (int64_t id : held_for_dependents_) {
      const Worker* w = find(id);
      if (!w) continue;
      if (w->config_program.empty() || !needed.contains(w->config_program)) now.push_back(id);
    }
    std::erase_if(held_for_dependents_, [&](int64_t id) {
      return !find(id) || std::find(now.begin(), now.end(), id) != now.end();
    });
    for (int64_t id : now)
      if (Worker* w = find(id)) {
        input(*w, WorkerInput::kStop);
        progress = true;
      }
  }
  stopping_in_reverse_ = false;
}

}  // namespace forkwatch
