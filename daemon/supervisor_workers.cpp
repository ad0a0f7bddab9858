// Supervisor: creating and removing workers, config, reload, shutdown.
#include "supervisor_worker.h"

namespace forkwatch {

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
  end_readiness(*w);
  close_notify(*w);
  close_ready_fd(*w);
  if (w->main_pidfd) loop_.remove(w->main_pidfd.get());
  loop_.cancel_timer(w->leftover_timer);
  loop_.cancel_timer(w->pid_file_timer);
  // Pipes stay until EOF: late output of the last process still gets logged.
  workers_.erase(id);
  host_->release(id);
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
      // Stopped in reverse order too: a dependent first (stop_in_reverse).
      held_for_dependents_.push_back(id);
    } else {
      remove_worker(id);
    }
  }
  stop_in_reverse();
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
  dependencies_dirty_ = true;
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
  held_for_dependents_.clear();
  for (auto& [id, w] : workers_) {
    w->restart_after_stop = false;
    held_for_dependents_.push_back(id);
    // Nothing outlives the daemon: what a daemonized program left in its
    // cgroup is stopped now; running workers stop in reverse order below.
    if (w->pid <= 0) stop_leftovers(*w);
  }
  stop_in_reverse();
  check_shutdown_done();
}

void Supervisor::hurry_shutdown() {
  if (hurrying_) return;
  hurrying_ = true;
  // "Now" overrides the order: what still waits for its dependents stops too.
  for (int64_t id : std::exchange(held_for_dependents_, {}))
    if (Worker* w = find(id)) input(*w, WorkerInput::kStop);
  std::vector<int64_t> stopping;
  for (auto& [id, w] : workers_)
    if (w->state == WorkerState::kStopping) stopping.push_back(id);
  log::notice("second stop signal: killing the " + std::to_string(stopping.size()) +
              " workers still stopping, without waiting for their stop timeouts");
  for (int64_t id : stopping)
    if (Worker* w = find(id)) input(*w, WorkerInput::kStopTimeout);
  check_shutdown_done();
}

void Supervisor::check_shutdown_done() {
  if (!held_for_dependents_.empty()) stop_in_reverse();
  if (!shutting_down_) return;
  const int64_t now = monotonic_ns();
  for (auto& [id, w] : workers_) {
    if (w->pid > 0) return;
    // Processes left in its cgroup: wait for their exits (to record them),
    // until a while after cgroup.kill.
    if ((w->leftover_timer != 0 || now - w->leftovers_killed_ns < kLeftoverGraceNs) && !host_->members(id).empty())
      return;
  }
  publish_if_dirty();
  if (on_shutdown_) on_shutdown_();
  loop_.stop();
}

std::vector<std::pair<pid_t, std::pair<int64_t, std::string>>> Supervisor::worker_pids() const {
  std::vector<std::pair<pid_t, std::pair<int64_t, std::string>>> out;
  for (const auto& [pid, id] : pid_index_) out.push_back({pid, {id, workers_.at(id)->name}});
  // Whatever its cgroup holds is the worker's, however it got there
  // (double fork, setsid, a daemonizing program).
  for (const auto& [id, w] : workers_)
    for (pid_t pid : host_->members(id))
      if (!pid_index_.contains(pid)) out.push_back({pid, {id, w->name}});
  return out;
}

}  // namespace forkwatch
