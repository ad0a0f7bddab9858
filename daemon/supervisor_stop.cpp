// Supervisor: stopping a worker's whole tree, with escalation.
#include "supervisor_worker.h"

namespace forkwatch {

void Supervisor::send_stop(Worker& w) {
  const int sig = w.spec.stop_signal;
  // A frozen tree cannot act on its stop signal: thaw it first.
  if (w.paused && host_->freeze(w.id, false)) w.paused = false;
  if (w.pid > 0) {
    host_->signal_group(w.pid, sig);
    // A stopped group cannot act on SIGTERM until it is continued.
    if (sig != SIGKILL && sig != SIGCONT) host_->signal_group(w.pid, SIGCONT);
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

void Supervisor::kill_family(int64_t worker_id, pid_t pgid, const char* why) {
  log::warning("worker id " + std::to_string(worker_id) + ": " + why + ", sending SIGKILL");
  if (host_->kill_all(worker_id))  // cgroup.kill: the whole tree at once, respawners included
    if (Worker* w = find(worker_id)) w->leftovers_killed_ns = monotonic_ns();
  // The group number stays ours while its leader is unreaped (pid > 0 here):
  // even as a zombie the leader holds the number, and only we reap it.
  if (pgid > 0) host_->signal_group(pgid, SIGKILL);
  signal_family(worker_id, pgid, pgid, SIGKILL);
}

void Supervisor::signal_family(int64_t worker_id, pid_t main_pid, pid_t pgid, int sig) {
  FamilyQuery q{getpid(), main_pid, pgid, worker_id,
                [this](pid_t pid) { return pid_index_.contains(pid); }};
  for (FamilyMember& m : host_->list_tree(q)) {
    if (!pid_index_.contains(m.pid)) orphan_owner_[m.pid] = worker_id;
    host_->signal_member(m, sig);
    // A stopped process cannot act on SIGTERM until it is continued.
    if (sig != SIGKILL && sig != SIGCONT) host_->signal_member(m, SIGCONT);
  }
}

// A group number is a worker's only while some process is in it: once the
// last member is reaped the kernel may give the number to anyone, so it is
// forgotten (else pgid_owner_ grows with every spawn).
void Supervisor::forget_group_if_empty(pid_t pgid) {
  auto it = pgid_owner_.find(pgid);
  if (it == pgid_owner_.end()) return;
  if (host_->group_empty(pgid)) pgid_owner_.erase(it);
}

void Supervisor::after_stopped(Worker& w) {
  // Leftovers that outlived the main process get SIGKILL now, not at the
  // timeout: the stop signal already reached them.
  if (host_->kill_all(w.id)) w.leftovers_killed_ns = monotonic_ns();
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

void Supervisor::stop_leftovers(Worker& w) {
  if (w.spec.kill_mode != KillMode::kControlGroup || host_->members(w.id).empty()) return;
  // A frozen tree cannot act on its stop signal.
  if (w.paused) {
    host_->freeze(w.id, false);
    w.paused = false;
  }
  if (!w.stop.stop_cause && shutting_down_) w.stop.stop_cause = ExitCause::kShutdown;
  signal_family(w.id, -1, -1, w.spec.stop_signal);
  const int64_t id = w.id;
  loop_.cancel_timer(w.leftover_timer);
  w.leftover_timer = loop_.add_timer(monotonic_ns() + w.spec.stop_timeout_ms * 1'000'000, [this, id] {
    Worker* x = find(id);
    if (!x) return;
    x->leftover_timer = 0;
    if (host_->members(id).empty()) return;
    log::warning("worker id " + std::to_string(id) + ": processes left in its cgroup outlived the stop timeout, cgroup.kill");
    x->stop.killed = true;
    if (host_->kill_all(id)) x->leftovers_killed_ns = monotonic_ns();
    signal_family(id, -1, -1, SIGKILL);
    // Shutdown waits for them, but not for ever (check_shutdown_done).
    loop_.add_timer(monotonic_ns() + kLeftoverGraceNs, [this] { check_shutdown_done(); });
  });
}

void Supervisor::kill_leftovers_now(Worker& w) {
  if (w.spec.kill_mode != KillMode::kControlGroup || host_->members(w.id).empty()) return;
  loop_.cancel_timer(w.leftover_timer);
  w.leftover_timer = 0;
  if (host_->freeze(w.id, false)) w.paused = false;
  if (host_->kill_all(w.id)) w.leftovers_killed_ns = monotonic_ns();
  signal_family(w.id, -1, -1, SIGKILL);
  // SIGKILL is quick; what is still dying holds nothing the new process needs
  // beyond its port or file, and the restart waits for that at most this long.
  host_->wait_empty(w.id, 1000);
}

}  // namespace forkwatch
