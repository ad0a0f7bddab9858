// Supervisor: events to the sinks, snapshots to the readers.
#include "supervisor_worker.h"

#include "sampler.h"

namespace forkwatch {

void Supervisor::emit(Event e) {
  e.id = ++last_event_id_;
  if (e.ts_ns == 0) e.ts_ns = e.wait ? e.wait->ts_ns : realtime_ns();
  undelivered_.push_back(std::move(e));
  // A long round (a reload starting thousands, a storm reaped at once) hands
  // its events over as it goes: bounded memory, and the stream and the store
  // keep up with it.
  if (undelivered_.size() >= kDeliverAt) {
    dirty_ = true;
    publish_if_dirty();  // the snapshot first, then the events it holds
  }
}

void Supervisor::deliver_events() {
  if (undelivered_.empty()) return;
  for (const Event& e : undelivered_)
    for (EventSink* sink : sinks_) sink->publish(e);
  undelivered_.clear();
  for (EventSink* sink : sinks_) sink->round_done();
}

void Supervisor::emit_state(const Worker& w) {
  Event e;
  e.kind = EventKind::kState;
  e.worker_id = w.id;
  e.pid = w.pid > 0 ? w.pid : 0;
  e.state = std::string(worker_state_name(w.state));
  if (w.state == WorkerState::kFatal) e.detail = w.fatal_reason;
  if (w.state == WorkerState::kWaiting) e.detail = w.waiting_for;
  if (w.state == WorkerState::kRunning && w.spec.ready.kind != ProbeKind::kNone)
    e.detail = "ready (" + std::string(probe_kind_name(w.spec.ready.kind)) + ")";
  emit(std::move(e));
}

WorkerView Supervisor::view(const Worker& w) const {
  WorkerView v;
  v.id = w.id;
  v.name = w.name;
  v.program = w.program;
  v.state = std::string(worker_state_name(w.state));
  v.pid = w.pid;
  if (w.pid > 0) {
    v.uid = w.request.identity.effective_uid;
    v.gid = w.request.identity.effective_gid;
    if (auto t = sampler_ ? sampler_->latest() : nullptr; t && t->tree)
      if (const ProcessInfo* p = t->tree->find(w.pid); p && p->uid >= 0 && p->starttime > 0) {
        v.uid = p->uid;
        v.gid = p->gid;
      }
  }
  v.restarts = w.restarts;
  v.started_at_ns = w.started_at_ns;
  v.last_exit = w.last_exit;
  v.recent_exits.assign(w.recent_exits.begin(), w.recent_exits.end());
  v.spec = w.spec;
  v.fatal_reason = w.fatal_reason;
  v.persistent = w.persistent;
  v.output = w.output;
  v.ready = w.ready;
  v.ready_at_ns = w.ready_at_ns;
  v.status_text = w.status_text;
  v.waiting_for = w.waiting_for;
  v.healthy = w.healthy;
  v.probe_at_ns = w.probe_at_ns;
  v.probe_detail = w.probe_detail;
  v.cgroup = host_->place(w.id);
  v.cgroup_dir = host_->place_dir(w.id);
  v.limits_not_enforced = host_->unenforced(w.id);
  if (v.cgroup.empty())  // process groups: no limit of a cgroup is in force
    for (auto [name, set] : {std::pair{"memory_max", w.spec.memory_max >= 0}, {"memory_high", w.spec.memory_high >= 0},
                             {"pids_max", w.spec.pids_max >= 0}, {"cpu_max", w.spec.cpu_max >= 0}})
      if (set) v.limits_not_enforced.push_back(std::string(name) + ": not enforced, no cgroup (process-group containment)");
  v.paused = w.paused;
  // Read only while no main process runs: a daemonizing program's tree.
  if (w.pid <= 0 && !v.cgroup.empty()) v.processes_left = static_cast<int64_t>(host_->members(w.id).size());
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
  if (sampler_ && sampler_->take_new_sample()) dirty_ = true;
  if (!dirty_) {
    deliver_events();
    return;
  }
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
  // Events after the snapshot that holds their change: a client that sees an
  // event and then reads the snapshot finds what the event said.
  deliver_events();
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
